"""Statistics checked against published tables and hand computation."""

from __future__ import annotations

import math
import statistics
from fractions import Fraction

import pytest

from scoring.stats import (
    SampleSummary,
    mcnemar_chi2,
    mcnemar_exact,
    ratio_of_means_interval,
    ratio_of_proportions_interval,
    wilson_interval,
    z_critical,
)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (Wilson score, no correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_table(
    successes: int, trials: int, low: float, high: float
) -> None:
    ci = wilson_interval(successes, trials)
    assert ci.estimate == pytest.approx(successes / trials)
    assert ci.low == pytest.approx(low, abs=6e-5)
    assert ci.high == pytest.approx(high, abs=6e-5)


def test_wilson_stays_inside_unit_interval_at_the_edges() -> None:
    all_right = wilson_interval(29, 29)
    assert all_right.high == 1.0
    assert 0.85 < all_right.low < 1.0  # the Wald interval would collapse to [1, 1]


def test_wilson_narrows_with_more_trials_and_widens_with_confidence() -> None:
    small, large = wilson_interval(4, 10), wilson_interval(400, 1000)
    assert (large.high - large.low) < (small.high - small.low)
    c90, c99 = wilson_interval(40, 100, 0.90), wilson_interval(40, 100, 0.99)
    assert c99.low < c90.low and c99.high > c90.high


@pytest.mark.parametrize(("successes", "trials"), [(1, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_impossible_counts(successes: int, trials: int) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, trials)


def test_z_critical_is_the_two_sided_normal_quantile() -> None:
    assert z_critical(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_critical(0.90) == pytest.approx(1.644854, abs=1e-6)
    with pytest.raises(ValueError):
        z_critical(1.0)


def test_mcnemar_exact_by_hand() -> None:
    # b = 6, c = 16: p = 2 * P(X <= 6), X ~ Bin(22, 1/2).
    # C(22, 0..6) = 1 + 22 + 231 + 1540 + 7315 + 26334 + 74613 = 110056.
    result = mcnemar_exact(6, 16)
    assert result.p_value == pytest.approx(2 * 110056 / 2**22, rel=1e-12)
    assert (result.first_only, result.second_only, result.discordant) == (6, 16, 22)
    assert mcnemar_exact(16, 6).p_value == pytest.approx(result.p_value, rel=1e-12)


def test_mcnemar_exact_matches_exact_rational_arithmetic_for_larger_counts() -> None:
    b, c = 20, 40
    n = b + c
    exact = Fraction(2 * sum(math.comb(n, i) for i in range(b + 1)), 2**n)
    assert mcnemar_exact(b, c).p_value == pytest.approx(float(exact), rel=1e-9)


def test_mcnemar_exact_survives_counts_where_two_to_the_minus_n_underflows() -> None:
    # n = 3000: 2**-3000 is 0.0 as a float; the log-space sum must still give a sensible p.
    balanced = mcnemar_exact(1500, 1500)
    skewed = mcnemar_exact(1400, 1600)
    assert balanced.p_value == pytest.approx(1.0)
    assert 0.0 < skewed.p_value < 0.001
    # ... and agree with the chi-square approximation, which is good at this size.
    assert skewed.p_value == pytest.approx(mcnemar_chi2(1400, 1600).p_value, rel=0.05)


def test_mcnemar_chi2_with_continuity_by_hand() -> None:
    result = mcnemar_chi2(6, 16)
    assert result.statistic == pytest.approx((16 - 6 - 1) ** 2 / 22)
    # chi-square(1) upper tail at x is the two-sided normal tail at sqrt(x).
    expected_p = 2 * (1 - statistics.NormalDist().cdf(math.sqrt(81 / 22)))
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)


def test_mcnemar_without_discordant_pairs_is_no_evidence() -> None:
    assert mcnemar_exact(0, 0).p_value == 1.0
    assert mcnemar_chi2(0, 0).p_value == 1.0
    assert mcnemar_chi2(5, 5).p_value == 1.0  # correction larger than the difference
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_sample_summary_matches_statistics_module() -> None:
    values = [311.7, 290.2, 330.9, 305.0, 320.4]
    s = SampleSummary.of(values)
    assert s.n == 5
    assert s.mean == pytest.approx(statistics.fmean(values))
    assert s.variance == pytest.approx(statistics.variance(values))
    assert SampleSummary.of([4.0]).variance == 0.0
    with pytest.raises(ValueError):
        SampleSummary.of([])


def test_ratio_of_means_by_hand() -> None:
    # R = 10 / 5 = 2; SE(log R)^2 = 4 / (16 * 100) + 1 / (25 * 25) = 0.0025 + 0.0016.
    ci = ratio_of_means_interval(SampleSummary(16, 10.0, 4.0), SampleSummary(25, 5.0, 1.0))
    half = 1.959964 * math.sqrt(0.0041)
    assert ci.estimate == 2.0
    assert ci.low == pytest.approx(2 * math.exp(-half), rel=1e-6)
    assert ci.high == pytest.approx(2 * math.exp(half), rel=1e-6)
    # Log scale: the interval is asymmetric around the ratio, multiplicatively symmetric.
    assert ci.high / ci.estimate == pytest.approx(ci.estimate / ci.low)


def test_ratio_of_means_needs_positive_means() -> None:
    with pytest.raises(ValueError):
        ratio_of_means_interval(SampleSummary(3, 0.0, 1.0), SampleSummary(3, 1.0, 1.0))


def test_ratio_of_proportions_katz_by_hand() -> None:
    # RR = 0.4 / 0.5 = 0.8; SE(log RR) = sqrt(1/40 - 1/100 + 1/50 - 1/100) = sqrt(0.025).
    ci = ratio_of_proportions_interval(40, 100, 50, 100)
    half = 1.959964 * math.sqrt(0.025)
    assert ci.estimate == pytest.approx(0.8)
    assert ci.low == pytest.approx(0.8 * math.exp(-half), rel=1e-6)
    assert ci.high == pytest.approx(0.8 * math.exp(half), rel=1e-6)


def test_ratio_of_proportions_corrects_zero_counts() -> None:
    # 0/10 vs 5/10 -> (0.5/11) / (5.5/11) with SE from the corrected cells.
    ci = ratio_of_proportions_interval(0, 10, 5, 10)
    assert ci.estimate == pytest.approx(0.5 / 5.5)
    assert 0 < ci.low < ci.estimate < ci.high
    with pytest.raises(ValueError):
        ratio_of_proportions_interval(3, 2, 1, 2)
