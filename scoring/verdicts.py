"""Trap verdicts valid at every look: confidence sequences over an epoch's evidence.

The three regime questions of :mod:`scoring.regimes` are answered from **all the evidence of
the current epoch** (not the sliding window, whose estimates stay descriptive), with
confidence sequences (:mod:`scoring.sequential`) instead of fixed-sample tests, and with a
**practical-significance margin** on each question:

- **less accurate** ⇔ the CS for ``Acc_v − Acc_a`` lies below ``−δ`` (``trap.accuracy_tolerance``),
  from unpaired graded traffic, or from paired verdicts on the same prompt (shadow pairs, canary
  rounds: the per-prompt difference ``variant_ok − anchor_ok``), whichever decides first;
- **slower** ⇔ the CS for ``TPS_v / TPS_a`` lies below ``1 − m_speed`` (``trap.speed_tolerance``,
  5 % by default);
- **more energy** ⇔ the CS for ``E_v / E_a`` (J per query, one measurement method on both
  sides) lies above ``1 + m_energy`` (``trap.energy_tolerance``, 5 % by default).

A question is answered "no" once both sides have the minimum samples and the CS does not cross
the margin, ``None`` before. A significant difference inside the margin is not a trap.

**What the level covers.** ``α = 1 − scoring.confidence`` is spent per model, variant, batch
bucket and epoch: each ratio CS runs at ``α/3``, each accuracy CS (paired, unpaired) at
``α/6``. A flag is a one-sided crossing of a two-sided CS, so the chance that a variant which
is no trap in that bucket is *ever* flagged during the epoch is at most ``α/2`` (Bonferroni over
the questions), however often it is evaluated — up to the asymptotic approximation of plug-in
variances for speed, energy and paired accuracy (unpaired accuracy uses the Bernoulli bound
σ ≤ ½ and is exact up to the two-sample combination). It is not a family-wise level over
variants and buckets: with ``k`` cells the chance that some cell false-flags is at most ``kα/2``.

**Two independent samples.** The CS of a difference (or log ratio) of two independent means
uses ``se² = σ_v²/n_v + σ_a²/n_a`` and the effective count ``t = 2 / (1/n_v + 1/n_a)`` (the
harmonic mean of the two counts, for which the per-sample variance is ``(σ_v² + σ_a²)/2``).
Ratios are taken on the log scale (delta method), so their CS is positive and asymmetric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final, Literal

from scoring.sequential import confidence_sequence
from scoring.stats import Interval
from scoring.windows import EnergySums, EvidenceCell, RatioSums

__all__ = ["QUESTIONS", "Margins", "Question", "VerdictSettings", "Verdicts", "carry", "decide"]

Question = Literal["less_accurate", "slower", "more_energy"]
QUESTIONS: Final[tuple[Question, ...]] = ("less_accurate", "slower", "more_energy")

_BERNOULLI_VARIANCE_BOUND = 0.25


@dataclass(frozen=True, slots=True)
class Margins:
    """Practical-significance margins: ``accuracy`` absolute (fraction), the others relative."""

    accuracy: float
    speed: float
    energy: float


@dataclass(frozen=True, slots=True)
class VerdictSettings:
    """How the verdicts are decided (from :class:`~scoring.config.ScoringConfig`).

    ``alpha`` is the error budget per model, variant, bucket and epoch; ``tune_samples`` the
    per-side sample count at which the confidence sequences are tightest; ``min_graded`` /
    ``min_requests`` the counts each side needs before a question is answered at all.
    """

    alpha: float
    margins: Margins
    tune_samples: float
    min_graded: int
    min_requests: int


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The epoch's answers and the confidence sequences they rest on (``None``: not yet).

    ``accuracy`` is the CS of ``Acc_v − Acc_a`` from unpaired counts, ``accuracy_paired`` the
    CS of the paired difference; ``speed`` is the CS of ``TPS_v / TPS_a``, ``energy`` that of
    ``E_v / E_a`` by ``energy_method``. Each interval's ``confidence`` is its own level.
    ``since`` is the epoch's start (Unix time).
    """

    since: float
    alpha: float
    margins: Margins
    accuracy: Interval | None
    accuracy_paired: Interval | None
    speed: Interval | None
    energy: Interval | None
    energy_method: str | None
    less_accurate: bool | None
    slower: bool | None
    more_energy: bool | None
    carried: tuple[Question, ...] = ()
    """Answers held "yes" from the previous epoch, not yet confirmed or excluded by this one."""

    def answer(self, question: Question) -> bool | None:
        return {
            "less_accurate": self.less_accurate,
            "slower": self.slower,
            "more_energy": self.more_energy,
        }[question]

    def excludes(self, question: Question) -> bool:
        """Whether this epoch's CS lies entirely on the no-trap side of the margin."""
        m = self.margins
        if question == "less_accurate":
            return any(cs is not None and cs.low >= -m.accuracy
                       for cs in (self.accuracy, self.accuracy_paired))  # fmt: skip
        if question == "slower":
            return self.speed is not None and self.speed.low >= 1.0 - m.speed
        return self.energy is not None and self.energy.high <= 1.0 + m.energy


def carry(verdicts: Verdicts, held: frozenset[Question]) -> Verdicts:
    """Hold the previous epoch's "yes" answers until this epoch confirms or excludes them.

    A new epoch starts with no evidence; without this a real trap would clear its alert at
    every epoch boundary and raise it again an hour later. A held answer adds no new false
    flag (it was raised under the previous epoch's budget); it ends when the new epoch's
    sequence lies on the no-trap side of the margin (see :meth:`Verdicts.excludes`), or with
    the new epoch (the scorer never holds a held answer again).
    """
    kept = tuple(
        q for q in QUESTIONS
        if q in held and verdicts.answer(q) is not True and not verdicts.excludes(q)
    )  # fmt: skip
    if not kept:
        return verdicts
    return replace(
        verdicts,
        less_accurate=True if "less_accurate" in kept else verdicts.less_accurate,
        slower=True if "slower" in kept else verdicts.slower,
        more_energy=True if "more_energy" in kept else verdicts.more_energy,
        carried=kept,
    )


def decide(
    variant: EvidenceCell,
    anchor: EvidenceCell,
    energy_method: str | None,
    settings: VerdictSettings,
    since: float,
    previous: Verdicts | None = None,
) -> Verdicts:
    """Answer the three questions from one epoch's merged evidence of both sides.

    ``previous`` is the last verdict of the same epoch (same ``since``): each sequence is
    intersected with everything it said before (its *running intersection*, still a
    confidence sequence at the same level), so an answer does not flap back and forth as the
    estimate wanders along the margin.
    """
    m, a = settings.margins, settings.alpha
    prev = previous if previous is not None and previous.since == since else None
    unpaired = _intersect(
        _accuracy_unpaired(variant, anchor, settings, a / 6.0), prev.accuracy if prev else None
    )
    paired = _intersect(
        _accuracy_paired(variant.pairs, settings, a / 6.0), prev.accuracy_paired if prev else None
    )
    less: bool | None = None
    for cs in (unpaired, paired):
        if cs is not None:
            less = bool(less) or cs.high < -m.accuracy
    speed = _intersect(
        _ratio_cs(_speed_moments(variant.speed), _speed_moments(anchor.speed), settings, a / 3),
        prev.speed if prev else None,
    )
    slower = None if speed is None else speed.high < 1.0 - m.speed
    energy = None
    if energy_method is not None:
        energy = _ratio_cs(
            _energy_moments(variant.energy.get(energy_method)),
            _energy_moments(anchor.energy.get(energy_method)),
            settings,
            a / 3.0,
        )
        if prev is not None and prev.energy_method == energy_method:
            energy = _intersect(energy, prev.energy)
    more_energy = None if energy is None else energy.low > 1.0 + m.energy
    return Verdicts(
        since=since,
        alpha=a,
        margins=m,
        accuracy=unpaired,
        accuracy_paired=paired,
        speed=speed,
        energy=energy,
        energy_method=energy_method if energy is not None else None,
        less_accurate=less,
        slower=slower,
        more_energy=more_energy,
    )


def _intersect(current: Interval | None, before: Interval | None) -> Interval | None:
    """The running intersection; the estimate is the current one."""
    if current is None or before is None:
        return current
    low, high = max(current.low, before.low), min(current.high, before.high)
    if low > high:  # disjoint: the data moved away from its own past (drift); show today's
        return current
    return Interval(current.estimate, low, high, current.confidence)


def _two_sample_samples(n_v: int, n_a: int) -> float:
    return 2.0 / (1.0 / n_v + 1.0 / n_a)


def _accuracy_unpaired(
    v: EvidenceCell, a: EvidenceCell, s: VerdictSettings, alpha: float
) -> Interval | None:
    if min(v.graded, a.graded) < s.min_graded:
        return None
    diff = v.correct / v.graded - a.correct / a.graded
    se = math.sqrt(_BERNOULLI_VARIANCE_BOUND * (1.0 / v.graded + 1.0 / a.graded))
    cs = confidence_sequence(
        diff, se, _two_sample_samples(v.graded, a.graded), alpha, s.tune_samples
    )
    return Interval(diff, max(-1.0, cs.low), min(1.0, cs.high), cs.confidence)


def _accuracy_paired(pairs: list[int], s: VerdictSettings, alpha: float) -> Interval | None:
    """CS of the mean of ``D = variant_ok − anchor_ok`` over pairs.

    ``pairs`` is (both, anchor only, variant only, neither). The plug-in variance gets one
    pseudo-discordant pair, so that a run of concordant pairs does not claim zero variance.
    """
    n = sum(pairs)
    if n < s.min_graded:
        return None
    b, c = pairs[1], pairs[2]
    d = (c - b) / n
    second_moment = (b + c + 1.0) / (n + 1.0)
    variance = max(second_moment - d * d, 1.0 / (n + 1.0))
    cs = confidence_sequence(d, math.sqrt(variance / n), n, alpha, s.tune_samples)
    return Interval(d, max(-1.0, cs.low), min(1.0, cs.high), cs.confidence)


_Moments = tuple[int, float, float]
"""(samples, mean, per-sample relative variance)."""


def _speed_moments(sums: RatioSums) -> _Moments | None:
    summary = sums.summary()
    if summary is None:
        return None
    # RatioSums.summary() carries variance = n·Var(R): the per-sample variance of R.
    return summary.n, summary.mean, summary.variance / (summary.mean * summary.mean)


def _energy_moments(sums: EnergySums | None) -> _Moments | None:
    if sums is None:
        return None
    summary = sums.per_query.summary()
    if summary is None or summary.mean <= 0:
        return None
    return summary.n, summary.mean, summary.variance / (summary.mean * summary.mean)


def _ratio_cs(
    v: _Moments | None, a: _Moments | None, s: VerdictSettings, alpha: float
) -> Interval | None:
    """CS of ``mean_v / mean_a`` on the log scale (delta method)."""
    if v is None or a is None or min(v[0], a[0]) < s.min_requests:
        return None
    (n_v, mean_v, rv_v), (n_a, mean_a, rv_a) = v, a
    log_ratio = math.log(mean_v / mean_a)
    se = math.sqrt(rv_v / n_v + rv_a / n_a)
    cs = confidence_sequence(log_ratio, se, _two_sample_samples(n_v, n_a), alpha, s.tune_samples)
    return Interval(math.exp(log_ratio), math.exp(cs.low), math.exp(cs.high), cs.confidence)
