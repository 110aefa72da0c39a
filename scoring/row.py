"""Scoring one variant against its anchor in one batch-size bucket (one row of the live table).

Inputs are two merged window cells (:class:`~scoring.windows.EvidenceCell`), the same bucket
on both sides, for the estimates shown; and the same bucket's evidence since the start of the
verdict epoch, from which the regime questions are answered with anytime-valid confidence
sequences and practical-significance margins (:mod:`scoring.verdicts`). Each quantity is
computed only from enough samples (``trap.min_graded`` graded evaluations,
``trap.min_requests`` measured requests per side); otherwise it is ``None`` and ``missing``
says what is lacking. Energy is compared by one measurement method present on both sides
(preferring the NVML counter, then NVML power, then HLI), never a mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scoring.assemble import Side, assemble
from scoring.config import ScoringConfig
from scoring.evidence import accuracy_evidence, live_regime
from scoring.intervals import VariantSample, pillar_intervals, si_interval
from scoring.pillars import SIConfig, clip_unit
from scoring.snapshot import BucketRow, EnergyView, PillarView
from scoring.stats import (
    Interval,
    SampleSummary,
    ratio_of_means_interval,
    wilson_interval,
    z_critical,
)
from scoring.verdicts import Margins, Question, Verdicts, VerdictSettings, carry, decide
from scoring.windows import EnergySums, EvidenceCell

__all__ = ["ENERGY_METHOD_PREFERENCE", "RowInputs", "score_row", "verdict_settings"]

ENERGY_METHOD_PREFERENCE = ("nvml_counter", "nvml_power", "hli")


@dataclass(frozen=True, slots=True)
class RowInputs:
    """One bucket's merged evidence for a variant and its anchor; memory in GB or ``None``."""

    bucket: str
    variant: EvidenceCell
    anchor: EvidenceCell
    is_anchor: bool
    variant_memory_gb: float | None
    anchor_memory_gb: float | None
    anchor_name: str
    epoch_variant: EvidenceCell | None = None
    """The variant's evidence since ``epoch_since`` (``None``: decide on the window's)."""
    epoch_anchor: EvidenceCell | None = None
    epoch_since: float = 0.0
    held: frozenset[Question] = frozenset()
    """Answers held "yes" from the previous epoch (:func:`scoring.verdicts.carry`)."""
    previous: Verdicts | None = None
    """The last verdicts of this row (their running intersection continues in the epoch)."""


def verdict_settings(config: ScoringConfig) -> VerdictSettings:
    """The verdict rules of ``config``: its level, margins, tuning and minimum counts."""
    trap = config.trap
    return VerdictSettings(
        alpha=1.0 - config.confidence,
        margins=Margins(trap.accuracy_tolerance, trap.speed_tolerance, trap.energy_tolerance),
        tune_samples=trap.tune_samples,
        min_graded=trap.min_graded,
        min_requests=trap.min_requests,
    )


def _verdicts(inputs: RowInputs, config: ScoringConfig) -> Verdicts:
    v = inputs.epoch_variant if inputs.epoch_variant is not None else inputs.variant
    a = inputs.epoch_anchor if inputs.epoch_anchor is not None else inputs.anchor
    method, note = _energy_method(v, a, config.trap.min_requests, False)
    decided = decide(
        v,
        a,
        method if note is None else None,
        verdict_settings(config),
        inputs.epoch_since,
        inputs.previous,
    )
    return carry(decided, inputs.held)


def score_row(inputs: RowInputs, config: ScoringConfig) -> BucketRow:
    v, a = inputs.variant, inputs.anchor
    conf, tol = config.confidence, config.trap
    v_speed, a_speed = v.speed.summary(), a.speed.summary()
    method, energy_note = _energy_method(v, a, tol.min_requests, inputs.is_anchor)
    energy = _energy_view(v.energy.get(method) if method else None, method, energy_note, conf)
    base = BucketRow(
        bucket=inputs.bucket,
        requests=v.requests,
        failed=v.failed,
        graded=v.graded,
        correct=v.correct,
        speed_samples=v.speed.n,
        accuracy=wilson_interval(v.correct, v.graded, conf) if v.graded else None,
        tokens_per_s=_mean_interval(v_speed, conf),
        energy=energy,
        memory_gb=inputs.variant_memory_gb,
        energy_considered=bool(v.energy or a.energy),
    )
    if inputs.is_anchor:
        one = PillarView(Interval(1.0, 1.0, 1.0, conf), 1.0)
        return replace(
            base,
            cor=Interval(0.0, 0.0, 0.0, conf),
            trust=one,
            economic=one,
            energy_pillar=one,
            si=Interval(1.0, 1.0, 1.0, conf),
            si_raw=1.0,
            regime_now="anchor",
            regime="anchor",
        )
    missing: list[str] = []
    # Accuracy.
    acc_ok = a.graded >= tol.min_graded and v.graded >= tol.min_graded
    if not acc_ok:
        missing.append(
            f"accuracy: needs {tol.min_graded} graded evaluations on each side "
            f"(variant {v.graded}, anchor {a.graded})"
        )
    acc = accuracy_evidence(
        (a.correct, a.graded),
        (v.correct, v.graded),
        (v.pairs[0], v.pairs[1], v.pairs[2], v.pairs[3]),
        tolerance=tol.accuracy_tolerance,
        min_graded=tol.min_graded,
        confidence=conf,
    )
    # Speed.
    speed_ok = (
        v_speed is not None
        and a_speed is not None
        and min(v.speed.n, a.speed.n) >= tol.min_requests
    )
    gain = cor = None
    if speed_ok and v_speed is not None and a_speed is not None:
        gain = ratio_of_means_interval(v_speed, a_speed, conf)
        cor = Interval(1 / gain.estimate - 1, 1 / gain.high - 1, 1 / gain.low - 1, conf)
    else:
        missing.append(
            f"speed: needs {tol.min_requests} measured requests on each side "
            f"(variant {v.speed.n}, anchor {a.speed.n})"
        )
    # Energy, one method on both sides.
    e_v = v.energy.get(method) if method else None
    e_a = a.energy.get(method) if method else None
    ssi_interval = None
    if e_v is not None and e_a is not None and energy.available and energy_note is None:
        s_v, s_a = e_v.per_query.summary(), e_a.per_query.summary()
        if s_v is not None and s_a is not None and s_v.mean > 0 and s_a.mean > 0:
            ssi_interval = ratio_of_means_interval(s_a, s_v, conf)
    if ssi_interval is None:
        missing.append(energy_note or "energy: not comparable")
    # Memory.
    if (
        inputs.variant_memory_gb is None or inputs.anchor_memory_gb is None
    ) and config.economic_lambda < 1.0:
        missing.append("memory: unknown (HTTP upstream? declare it in scoring.memory_gb)")

    # The regime rests on the epoch's anytime-valid verdicts, never on the window's tests.
    verdicts = _verdicts(inputs, config)
    regime_now = live_regime(
        verdicts.less_accurate,
        verdicts.slower,
        verdicts.more_energy,
        energy_considered=base.energy_considered,
    )
    si_cfg = SIConfig(
        config.trust_weight,
        config.economic_weight,
        config.energy_weight,
        config.economic_lambda,
        config.policy,
    )
    a_sample = VariantSample(
        correct=a.correct if acc_ok else None,
        graded=a.graded if acc_ok else None,
        tokens_per_s=a_speed if speed_ok else None,
        energy_j_per_query=e_a.per_query.summary() if ssi_interval and e_a else None,
        vram_gb=inputs.anchor_memory_gb,
    )
    v_sample = VariantSample(
        correct=v.correct if acc_ok else None,
        graded=v.graded if acc_ok else None,
        tokens_per_s=v_speed if speed_ok else None,
        energy_j_per_query=e_v.per_query.summary() if ssi_interval and e_v else None,
        vram_gb=inputs.variant_memory_gb,
    )
    intervals = pillar_intervals(
        a_sample, v_sample, economic_lambda=config.economic_lambda, confidence=conf
    )
    # The point pillars and SI: the formula trees the PromQL rules render (scoring.assemble).
    parts = assemble(
        Side(
            a.correct / a.graded if acc_ok else None,
            a_speed.mean if speed_ok and a_speed is not None else None,
            inputs.anchor_memory_gb,
            e_a.per_query.mean if ssi_interval is not None and e_a is not None else None,
        ),
        Side(
            v.correct / v.graded if acc_ok else None,
            v_speed.mean if speed_ok and v_speed is not None else None,
            inputs.variant_memory_gb,
            e_v.per_query.mean if ssi_interval is not None and e_v is not None else None,
        ),
        si_cfg,
    )
    if acc_ok and a.correct == 0:
        missing.append("trust: the anchor's accuracy is 0, the pillar is undefined")
    tsi, esi, ssi = parts.raw.as_tuple()
    si = None
    if parts.si is not None:
        point = parts.si
        bounds = si_interval(a_sample, v_sample, si_cfg, conf)
        low, high = (bounds.low, bounds.high) if bounds else (point, point)
        si = Interval(point, min(low, point), max(high, point), conf)
    si_raw = parts.si_raw
    return replace(
        base,
        cor=cor,
        accuracy_difference=acc.difference,
        pairs=(v.pairs[0], v.pairs[1], v.pairs[2], v.pairs[3]),
        paired=acc.paired,
        trust=_pillar(tsi, intervals.tsi),
        economic=_pillar(esi, intervals.esi),
        energy_pillar=_pillar(ssi, intervals.ssi),
        si=si,
        si_raw=si_raw,
        regime_now=regime_now,
        significant=(verdicts.less_accurate, verdicts.slower, verdicts.more_energy),
        verdicts=verdicts,
        missing=tuple(missing),
    )


def _energy_method(
    v: EvidenceCell, a: EvidenceCell, minimum: int, is_anchor: bool
) -> tuple[str | None, str | None]:
    """The method to show and compare, and why energy cannot be compared (``None`` if it can)."""
    if not v.energy and not a.energy:
        return None, "energy: unavailable (no method measured it: method none)"
    if is_anchor:
        return _most_sampled(v), None
    common = [m for m in _ordered(v.energy) if m in a.energy]
    if not common:
        v_m = ", ".join(sorted(v.energy)) or "none"
        a_m = ", ".join(sorted(a.energy)) or "none"
        return _most_sampled(v), (
            f"energy: measured by different methods (variant {v_m}, anchor {a_m}); never mixed"
        )
    for m in common:
        if min(v.energy[m].per_query.n, a.energy[m].per_query.n) >= minimum:
            return m, None
    m = common[0]
    return m, (
        f"energy: needs {minimum} measured requests on each side by {m} "
        f"(variant {v.energy[m].per_query.n}, anchor {a.energy[m].per_query.n})"
    )


def _ordered(methods: dict[str, EnergySums]) -> list[str]:
    known = [m for m in ENERGY_METHOD_PREFERENCE if m in methods]
    return known + sorted(m for m in methods if m not in ENERGY_METHOD_PREFERENCE)


def _most_sampled(cell: EvidenceCell) -> str | None:
    if not cell.energy:
        return None
    return max(_ordered(cell.energy), key=lambda m: cell.energy[m].per_query.n)


def _energy_view(
    sums: EnergySums | None, method: str | None, note: str | None, conf: float
) -> EnergyView:
    if sums is None or method is None:
        return EnergyView("none", False, 0, None, None, note or "energy: not measured")
    return EnergyView(
        method=method,
        available=True,
        samples=sums.per_query.n,
        j_per_query=_mean_interval(sums.per_query.summary(), conf),
        j_per_token=sums.j_per_token,
        reason=note,
    )


def _mean_interval(summary: SampleSummary | None, conf: float) -> Interval | None:
    """Normal interval of a mean (``variance / n`` is the squared standard error)."""
    if summary is None:
        return None
    half = z_critical(conf) * math.sqrt(summary.variance / summary.n)
    return Interval(summary.mean, max(0.0, summary.mean - half), summary.mean + half, conf)


def _pillar(point: float | None, interval: Interval | None) -> PillarView:
    if point is None:
        return PillarView(None, None)
    if interval is None:
        return PillarView(None, clip_unit(point))
    low, high = min(interval.low, point), max(interval.high, point)
    return PillarView(Interval(point, low, high, interval.confidence), clip_unit(point))
