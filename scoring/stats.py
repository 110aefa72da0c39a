"""Small-sample statistics for live SI estimates: intervals and paired tests.

Every live number quantrap shows carries its uncertainty, and a trap alert fires only on a
significant difference. This module holds the few procedures that needs, written on the
standard library alone (``statistics.NormalDist`` for the normal quantile and ``math.erfc`` /
``math.lgamma`` for tail probabilities) so that ``scoring`` stays dependency-free:

- :func:`wilson_interval` — a proportion (accuracy). Unlike the Wald interval it stays inside
  [0, 1] and keeps near-nominal coverage at the small counts of a fresh window.
- :func:`mcnemar_exact` and :func:`mcnemar_chi2` — paired binary outcomes (primary and shadow
  graded on the same prompt). Only discordant pairs carry information.
- :func:`ratio_of_means_interval` — a ratio of two positive means (energy per query, tokens
  per second), by the delta method on the log scale.
- :func:`ratio_of_proportions_interval` — a ratio of two proportions (accuracy ratio = the
  trust pillar), by Katz's log method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "Interval",
    "McNemarResult",
    "SampleSummary",
    "mcnemar_chi2",
    "mcnemar_exact",
    "ratio_of_means_interval",
    "ratio_of_proportions_interval",
    "wilson_interval",
    "z_critical",
]

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``.

    Units are those of the estimated quantity (a fraction for accuracy, a plain ratio for the
    pillars). ``confidence`` is the nominal coverage, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    confidence: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """Outcome of a McNemar test on paired binary outcomes.

    ``first_only`` (b) counts pairs where only the first member succeeded (e.g. anchor right,
    variant wrong); ``second_only`` (c) the reverse. ``statistic`` is the chi-square value for
    :func:`mcnemar_chi2` and ``min(b, c)`` for :func:`mcnemar_exact`; ``p_value`` is two-sided.
    """

    statistic: float
    p_value: float
    first_only: int
    second_only: int
    method: str

    @property
    def discordant(self) -> int:
        return self.first_only + self.second_only


@dataclass(frozen=True, slots=True)
class SampleSummary:
    """Count, mean and sample variance (``ddof=1``) of a positive measured quantity.

    Units are the quantity's own (joules per query, tokens per second); the summary is all
    the interval functions need, so a live window can keep running sums instead of samples.
    """

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"a sample summary needs n >= 1, got {self.n}")
        if not math.isfinite(self.mean) or not math.isfinite(self.variance):
            raise ValueError("mean and variance must be finite")
        if self.variance < 0:
            raise ValueError(f"variance must be >= 0, got {self.variance}")

    @classmethod
    def of(cls, values: Iterable[float]) -> SampleSummary:
        """Summarise ``values`` with Welford's update (one pass, numerically stable)."""
        n = 0
        mean = 0.0
        m2 = 0.0
        for x in values:
            n += 1
            delta = x - mean
            mean += delta / n
            m2 += delta * (x - mean)
        if n == 0:
            raise ValueError("cannot summarise an empty sample")
        return cls(n=n, mean=mean, variance=m2 / (n - 1) if n > 1 else 0.0)


def z_critical(confidence: float) -> float:
    """Two-sided standard-normal critical value, e.g. 1.959964 for ``confidence=0.95``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for ``successes / trials``.

    ``trials`` must be positive: an empty window has no accuracy, and the caller should say
    "not measured" rather than show an interval of [0, 1].
    """
    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    z = z_critical(confidence)
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / trials + z2n / (4.0 * trials))
    # Clamp the rounding residue at the boundaries (p = 0 or 1 give exactly 0 or 1 in theory).
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), confidence)


def mcnemar_exact(first_only: int, second_only: int) -> McNemarResult:
    """McNemar's exact test: a two-sided binomial test of ``b`` out of ``b + c`` at p = 1/2.

    Preferred when ``b + c`` is small (below about 25). With no discordant pairs there is no
    evidence of a difference and the p-value is 1.
    """
    _check_counts(first_only, second_only)
    n = first_only + second_only
    k = min(first_only, second_only)
    if n == 0:
        return McNemarResult(0.0, 1.0, first_only, second_only, "exact")
    # Sum the binomial lower tail in log space: 2**-n underflows a float for n > 1074.
    log_terms = [_log_comb(n, i) - n * math.log(2.0) for i in range(k + 1)]
    top = max(log_terms)
    tail = math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms)
    return McNemarResult(float(k), min(1.0, 2.0 * tail), first_only, second_only, "exact")


def mcnemar_chi2(first_only: int, second_only: int) -> McNemarResult:
    """McNemar's chi-square test with Edwards' continuity correction, 1 degree of freedom.

    ``statistic = max(|b - c| - 1, 0)**2 / (b + c)``; the clamp at 0 means that equal counts
    (where the correction exceeds the difference) read as "no evidence", p = 1.
    """
    _check_counts(first_only, second_only)
    n = first_only + second_only
    if n == 0:
        return McNemarResult(0.0, 1.0, first_only, second_only, "chi2")
    diff = max(abs(first_only - second_only) - 1, 0)
    statistic = diff * diff / n
    # The upper tail of chi-square(1) at x equals P(|Z| > sqrt(x)) = erfc(sqrt(x / 2)).
    p_value = math.erfc(math.sqrt(statistic / 2.0))
    return McNemarResult(statistic, p_value, first_only, second_only, "chi2")


def ratio_of_means_interval(
    numerator: SampleSummary, denominator: SampleSummary, confidence: float = 0.95
) -> Interval:
    """Interval for ``mean(numerator) / mean(denominator)`` of two independent samples.

    Delta method on the log scale: ``Var(log x̄) ≈ s² / (n x̄²)``, so
    ``log R ± z·sqrt(s_num²/(n_num·x̄_num²) + s_den²/(n_den·x̄_den²))``. Working on the log
    scale keeps the interval positive and asymmetric, as a ratio of positive quantities should
    be. Both means must be positive. A single observation (variance 0) contributes no width:
    the caller decides whether such an interval is worth showing.
    """
    if numerator.mean <= 0 or denominator.mean <= 0:
        raise ValueError("a ratio of means needs positive means")
    ratio = numerator.mean / denominator.mean
    se = math.sqrt(_relative_variance(numerator) + _relative_variance(denominator))
    spread = math.exp(z_critical(confidence) * se)
    return Interval(ratio, ratio / spread, ratio * spread, confidence)


def ratio_of_proportions_interval(
    successes_num: int,
    trials_num: int,
    successes_den: int,
    trials_den: int,
    confidence: float = 0.95,
) -> Interval:
    """Katz log interval for ``(x1/n1) / (x2/n2)``.

    ``SE(log RR) = sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)``. When either count of successes is 0 the
    log is undefined; then 0.5 is added to each success count and 1 to each trial count (the
    usual Haldane–Anscombe correction), which the estimate reflects too. For paired outcomes
    (primary and shadow on the same prompts) this treats the two samples as independent and is
    therefore conservative; McNemar is the paired test.
    """
    for name, x, n in (("num", successes_num, trials_num), ("den", successes_den, trials_den)):
        if n <= 0 or not 0 <= x <= n:
            raise ValueError(f"{name}: need 0 <= successes <= trials and trials > 0, got {x}/{n}")
    x1, n1, x2, n2 = (
        float(successes_num),
        float(trials_num),
        float(successes_den),
        float(trials_den),
    )
    if successes_num == 0 or successes_den == 0:
        x1, n1, x2, n2 = x1 + 0.5, n1 + 1.0, x2 + 0.5, n2 + 1.0
    ratio = (x1 / n1) / (x2 / n2)
    se = math.sqrt(max(1.0 / x1 - 1.0 / n1 + 1.0 / x2 - 1.0 / n2, 0.0))
    spread = math.exp(z_critical(confidence) * se)
    return Interval(ratio, ratio / spread, ratio * spread, confidence)


def _relative_variance(s: SampleSummary) -> float:
    return s.variance / (s.n * s.mean * s.mean)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _check_counts(first_only: int, second_only: int) -> None:
    if first_only < 0 or second_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {first_only}, {second_only}")
