"""One SI table: every variant of a model scored against its anchor.

:func:`score_variants` is what the ``quanttrap si`` command prints and what the live windows
recompute: for each :class:`~scoring.pillars.VariantMeasurement` it derives COR, latency per
hop, the raw and bounded pillars, the SI, energy per token, the regime, and then the
scaling-law divergences between variants ordered by bits. Missing inputs are listed in
``VariantScore.missing`` and the quantities that needed them are ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scoring.assemble import Side, assemble
from scoring.pillars import (
    Pillars,
    SIConfig,
    VariantMeasurement,
    carbon_adjusted_energy_g,
    casting_overhead_ratio,
    energy_per_token_j,
    latency_per_hop_s,
    residency_gain,
    throughput_gain,
)
from scoring.regimes import (
    Divergence,
    RegimeVerdict,
    Tolerances,
    classify_regime,
    scaling_law_divergences,
)

__all__ = ["Scorecard", "VariantScore", "choose_anchor", "score_variants"]


@dataclass(frozen=True, slots=True)
class VariantScore:
    """Everything derived for one variant. Ratios are unitless; ``None`` = not computable."""

    measurement: VariantMeasurement
    is_anchor: bool
    latency_per_hop_s: float
    cor: float
    throughput_gain: float
    residency_gain: float | None
    raw: Pillars
    bounded: Pillars
    si: float | None
    """SI over the bounded pillars (the published definition)."""
    si_raw: float | None
    """The same aggregate over raw pillars: above 1 when a variant beats the anchor."""
    energy_j_per_token: float | None
    verdict: RegimeVerdict
    missing: tuple[str, ...]
    """Human-readable reasons why some quantities are ``None``."""

    @property
    def name(self) -> str:
        return self.measurement.name

    @property
    def bits(self) -> int:
        return self.measurement.bits


@dataclass(frozen=True, slots=True)
class Scorecard:
    """The scored table, in input order, plus the divergence pairs across it."""

    anchor: str
    config: SIConfig
    tolerances: Tolerances
    scores: tuple[VariantScore, ...]
    divergences: tuple[Divergence, ...]

    def score(self, name: str) -> VariantScore:
        for s in self.scores:
            if s.name == name:
                return s
        raise KeyError(name)


def choose_anchor(
    measurements: Sequence[VariantMeasurement], anchor: str | None = None
) -> VariantMeasurement:
    """The named anchor, or else the unique variant with the most bits."""
    if not measurements:
        raise ValueError("no variants to score")
    if anchor is not None:
        for m in measurements:
            if m.name == anchor:
                return m
        names = ", ".join(m.name for m in measurements)
        raise ValueError(f"anchor {anchor!r} is not one of the variants ({names})")
    top = max(m.bits for m in measurements)
    best = [m for m in measurements if m.bits == top]
    if len(best) > 1:
        tied = ", ".join(m.name for m in best)
        raise ValueError(f"several variants have the most bits ({top}): {tied}; name the anchor")
    return best[0]


def score_variants(
    measurements: Iterable[VariantMeasurement],
    *,
    anchor: str | None = None,
    config: SIConfig | None = None,
    tolerances: Tolerances | None = None,
) -> Scorecard:
    """Score every variant against the anchor (named, or the one with the most bits)."""
    items = tuple(measurements)
    names = [m.name for m in items]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    cfg = config if config is not None else SIConfig()
    tol = tolerances if tolerances is not None else Tolerances()
    ref = choose_anchor(items, anchor)
    scores = tuple(_score_one(ref, m, cfg, tol) for m in items)
    divergences = scaling_law_divergences((s.name, s.bits, s.si) for s in scores)
    return Scorecard(ref.name, cfg, tol, scores, divergences)


def _score_one(
    anchor: VariantMeasurement, v: VariantMeasurement, cfg: SIConfig, tol: Tolerances
) -> VariantScore:
    missing: list[str] = []
    g_vram = None
    if anchor.vram_gb is not None and v.vram_gb is not None:
        g_vram = residency_gain(anchor.vram_gb, v.vram_gb)
    elif cfg.economic_lambda < 1.0:
        missing.append(_absent("vram_gb", anchor, v))
    if anchor.accuracy is None or v.accuracy is None:
        missing.append(_absent("accuracy", anchor, v))
    elif anchor.accuracy == 0:
        missing.append(f"anchor {anchor.name} has accuracy 0: the trust pillar is undefined")
    if anchor.energy_j_per_query is None or v.energy_j_per_query is None:
        missing.append(_absent("energy_j_per_query", anchor, v))
    if (anchor.carbon_g_per_kwh is None) != (v.carbon_g_per_kwh is None):
        raise ValueError("give the carbon intensity for both variants or for neither")
    # COR, the pillars and the SI: the formula trees the PromQL rules render (scoring.assemble).
    parts = assemble(_side(anchor), _side(v), cfg)

    per_token = None
    if v.energy_j_per_query is not None and v.completion_tokens_per_query is not None:
        per_token = energy_per_token_j(v.energy_j_per_query, v.completion_tokens_per_query)

    return VariantScore(
        measurement=v,
        is_anchor=v is anchor,
        latency_per_hop_s=latency_per_hop_s(v.tokens_per_s),
        cor=casting_overhead_ratio(anchor.tokens_per_s, v.tokens_per_s),
        throughput_gain=throughput_gain(anchor.tokens_per_s, v.tokens_per_s),
        residency_gain=g_vram,
        raw=parts.raw,
        bounded=parts.bounded,
        si=parts.si,
        si_raw=parts.si_raw,
        energy_j_per_token=per_token,
        verdict=classify_regime(anchor, v, tol),
        missing=tuple(missing),
    )


def _side(m: VariantMeasurement) -> Side:
    """The formulas' inputs: energy carbon-adjusted when an intensity is given (CAES)."""
    energy = m.energy_j_per_query
    if energy is not None and m.carbon_g_per_kwh is not None:
        energy = carbon_adjusted_energy_g(energy, m.carbon_g_per_kwh)
    return Side(m.accuracy, m.tokens_per_s, m.vram_gb, energy)


def _absent(field_name: str, anchor: VariantMeasurement, v: VariantMeasurement) -> str:
    who = [m.name for m in (anchor, v) if getattr(m, field_name) is None]
    return f"{field_name} not measured for {', '.join(dict.fromkeys(who))}"
