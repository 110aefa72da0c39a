"""Confidence intervals for the pillars and the SI of one variant.

Each pillar is a ratio of the variant's measurement to the anchor's (or the reverse), so each
gets the matching interval from :mod:`scoring.stats`:

- TSI = Acc_v / Acc_a — Katz log interval for a ratio of proportions;
- SSI = E_a / E_v — log-scale delta-method interval for a ratio of means (carbon
  intensities are fixed scalars and scale it);
- ESI — the interval of G_tps = TPS_v / TPS_a (ratio of means), mapped through ESI's
  formula, which is increasing in G_tps; peak VRAM is one reading per variant and is treated
  as exact.

The SI interval is conservative: each pillar's interval is taken at confidence
``1 − (1 − c)/3`` (Bonferroni), and since SI increases in every pillar under both policies,
SI evaluated at the lower and upper ends covers the true SI with probability at least ``c``.
ESI and the SI at those ends are the formula trees of :mod:`scoring.assemble` (the ones the
PromQL rules render), evaluated with the interval ends as inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoring.assemble import economic_of_gain, si_of_pillars
from scoring.pillars import SIConfig
from scoring.stats import (
    Interval,
    SampleSummary,
    ratio_of_means_interval,
    ratio_of_proportions_interval,
)

__all__ = ["PillarIntervals", "VariantSample", "pillar_intervals", "si_interval"]


@dataclass(frozen=True, slots=True)
class VariantSample:
    """Sample-level measurements of one variant in one comparison window.

    ``correct`` / ``graded`` count graded evaluation requests; ``tokens_per_s`` and
    ``energy_j_per_query`` summarise per-request values; ``vram_gb`` is the peak GPU memory
    (GB); ``carbon_g_per_kwh`` the grid intensity. ``None`` = not measured.
    """

    correct: int | None = None
    graded: int | None = None
    tokens_per_s: SampleSummary | None = None
    energy_j_per_query: SampleSummary | None = None
    vram_gb: float | None = None
    carbon_g_per_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class PillarIntervals:
    """Raw (unclipped) pillar intervals; ``None`` where the inputs were not measured."""

    tsi: Interval | None
    esi: Interval | None
    ssi: Interval | None


def pillar_intervals(
    anchor: VariantSample,
    variant: VariantSample,
    *,
    economic_lambda: float = 0.5,
    confidence: float = 0.95,
) -> PillarIntervals:
    """Interval for each raw pillar of ``variant`` against ``anchor``."""
    tsi = None
    if (
        anchor.correct is not None
        and anchor.graded
        and variant.correct is not None
        and variant.graded
    ):
        tsi = ratio_of_proportions_interval(
            variant.correct, variant.graded, anchor.correct, anchor.graded, confidence
        )

    esi = None
    if anchor.tokens_per_s is not None and variant.tokens_per_s is not None:
        g = ratio_of_means_interval(variant.tokens_per_s, anchor.tokens_per_s, confidence)
        g_vram = None
        if anchor.vram_gb is not None and variant.vram_gb is not None:
            g_vram = anchor.vram_gb / variant.vram_gb
        if g_vram is not None or economic_lambda == 1.0:
            cfg = SIConfig(economic_lambda=economic_lambda)
            ends = [economic_of_gain(x, g_vram, cfg) for x in (g.estimate, g.low, g.high)]
            if ends[0] is not None and ends[1] is not None and ends[2] is not None:
                esi = Interval(ends[0], ends[1], ends[2], confidence)

    ssi = None
    if anchor.energy_j_per_query is not None and variant.energy_j_per_query is not None:
        if (anchor.carbon_g_per_kwh is None) != (variant.carbon_g_per_kwh is None):
            raise ValueError("give the carbon intensity for both variants or for neither")
        e = ratio_of_means_interval(
            anchor.energy_j_per_query, variant.energy_j_per_query, confidence
        )
        scale = 1.0
        if anchor.carbon_g_per_kwh is not None and variant.carbon_g_per_kwh is not None:
            scale = anchor.carbon_g_per_kwh / variant.carbon_g_per_kwh
        ssi = Interval(e.estimate * scale, e.low * scale, e.high * scale, confidence)
    return PillarIntervals(tsi, esi, ssi)


def si_interval(
    anchor: VariantSample,
    variant: VariantSample,
    config: SIConfig | None = None,
    confidence: float = 0.95,
) -> Interval | None:
    """A conservative interval for the (bounded) SI; ``None`` if a pillar is not measured."""
    cfg = config if config is not None else SIConfig()
    per_pillar = 1.0 - (1.0 - confidence) / 3.0
    p = pillar_intervals(
        anchor, variant, economic_lambda=cfg.economic_lambda, confidence=per_pillar
    )
    if p.tsi is None or p.esi is None or p.ssi is None:
        return None

    def si_at(t: float, e: float, s: float) -> float:
        return si_of_pillars(t, e, s, cfg)  # the SI tree clips the pillars itself

    return Interval(
        si_at(p.tsi.estimate, p.esi.estimate, p.ssi.estimate),
        si_at(p.tsi.low, p.esi.low, p.ssi.low),
        si_at(p.tsi.high, p.esi.high, p.ssi.high),
        confidence,
    )
