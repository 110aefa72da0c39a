"""Intervals carried by the pillars and the SI."""

from __future__ import annotations

import math

import pytest

from scoring.intervals import VariantSample, pillar_intervals, si_interval
from scoring.pillars import SIConfig
from scoring.stats import SampleSummary, ratio_of_means_interval, ratio_of_proportions_interval

ANCHOR = VariantSample(
    correct=569,
    graded=1319,
    tokens_per_s=SampleSummary(1319, 44.6, 4.0),
    energy_j_per_query=SampleSummary(1319, 311.7, 900.0),
    vram_gb=14.5,
)
NF4 = VariantSample(
    correct=520,
    graded=1319,
    tokens_per_s=SampleSummary(1319, 36.5, 4.0),
    energy_j_per_query=SampleSummary(1319, 503.1, 2500.0),
    vram_gb=4.5,
)


def test_each_pillar_gets_the_matching_ratio_interval() -> None:
    p = pillar_intervals(ANCHOR, NF4)
    assert p.tsi == ratio_of_proportions_interval(520, 1319, 569, 1319)
    assert p.ssi == ratio_of_means_interval(ANCHOR.energy_j_per_query, NF4.energy_j_per_query)  # type: ignore[arg-type]
    assert p.esi is not None
    g = ratio_of_means_interval(NF4.tokens_per_s, ANCHOR.tokens_per_s)  # type: ignore[arg-type]
    g_vram = 14.5 / 4.5
    assert p.esi.low == pytest.approx(1 / (0.5 / g.low + 0.5 / g_vram))
    assert p.esi.high == pytest.approx(1 / (0.5 / g.high + 0.5 / g_vram))
    for ci in (p.tsi, p.esi, p.ssi):
        assert ci is not None and ci.low < ci.estimate < ci.high


def test_carbon_intensity_scales_the_energy_interval() -> None:
    a = VariantSample(energy_j_per_query=SampleSummary(10, 100.0, 25.0), carbon_g_per_kwh=400.0)
    v = VariantSample(energy_j_per_query=SampleSummary(10, 200.0, 100.0), carbon_g_per_kwh=100.0)
    ssi = pillar_intervals(a, v).ssi
    assert ssi is not None
    assert ssi.estimate == pytest.approx((100 * 400) / (200 * 100))
    with pytest.raises(ValueError):
        pillar_intervals(a, VariantSample(energy_j_per_query=SampleSummary(10, 200.0, 1.0)))


def test_unmeasured_pillars_have_no_interval() -> None:
    p = pillar_intervals(VariantSample(), VariantSample())
    assert (p.tsi, p.esi, p.ssi) == (None, None, None)
    assert si_interval(ANCHOR, VariantSample(correct=1, graded=2)) is None


def test_si_interval_is_bonferroni_conservative_and_brackets_the_estimate() -> None:
    ci = si_interval(ANCHOR, NF4)
    assert ci is not None
    assert ci.low < ci.estimate < ci.high
    # The point estimate is the bounded SI of the point pillars.
    tsi, ssi = 520 / 569, 311.7 / 503.1
    assert ci.estimate == pytest.approx((tsi + 1.0 + ssi) / 3)
    # Wider than an SI built from 95 % pillar intervals (each pillar at 98.33 % instead).
    p95 = pillar_intervals(ANCHOR, NF4)
    assert p95.tsi is not None and p95.ssi is not None
    narrow_low = (p95.tsi.low + 1.0 + p95.ssi.low) / 3
    assert ci.low < narrow_low


def test_si_interval_shrinks_to_the_point_with_exact_measurements() -> None:
    exact_a = VariantSample(
        1000, 2000, SampleSummary(5, 40.0, 0.0), SampleSummary(5, 300.0, 0.0), 14.0
    )
    exact_v = VariantSample(
        900, 2000, SampleSummary(5, 30.0, 0.0), SampleSummary(5, 400.0, 0.0), 14.0
    )
    ci = si_interval(exact_a, exact_v, SIConfig(policy="geometric"))
    assert ci is not None
    # Only the accuracy counts carry sampling error here.
    assert ci.high - ci.low < 0.1
    esi = 1 / (0.5 / 0.75 + 0.5 / 1.0)
    assert ci.estimate == pytest.approx(math.prod((0.9, esi, 0.75)) ** (1 / 3))
