"""Sliding windows: running sums equal direct statistics, evidence expires, memory is bounded."""

from __future__ import annotations

import random
import statistics

import pytest

from scoring.stats import ratio_of_means_interval
from scoring.windows import (
    AgreementCell,
    EvidenceCell,
    Observation,
    RatioSums,
    RunningStats,
    SlidingWindow,
)


def test_running_stats_merge_equals_one_pass() -> None:
    rng = random.Random(3)
    xs = [rng.lognormvariate(3, 0.5) for _ in range(101)]
    parts = [RunningStats() for _ in range(4)]
    for i, x in enumerate(xs):
        parts[i % 4].add(x)
    merged = RunningStats()
    for p in parts:
        merged.merge(p)
    summary = merged.summary()
    assert summary is not None and summary.n == 101
    assert summary.mean == pytest.approx(statistics.fmean(xs))
    assert summary.variance == pytest.approx(statistics.variance(xs))
    assert RunningStats().summary() is None


def test_ratio_sums_give_the_ratio_estimator_and_its_variance() -> None:
    rng = random.Random(5)
    sums = RatioSums()
    pairs = []
    for _ in range(200):
        tokens = rng.randint(20, 200)
        seconds = tokens / rng.gauss(40.0, 4.0)
        sums.add(tokens, seconds)
        pairs.append((tokens, seconds))
    summary = sums.summary()
    assert summary is not None
    r = sum(t for t, _ in pairs) / sum(s for _, s in pairs)
    assert summary.mean == pytest.approx(r)  # total tokens over total generation time
    # Linearised variance of R: var(t - R s) / (n * mean(s)^2).
    d = [t - r * s for t, s in pairs]
    s_bar = statistics.fmean(s for _, s in pairs)
    var_r = statistics.variance(d) / (len(pairs) * s_bar**2)
    assert summary.variance / summary.n == pytest.approx(var_r)
    # Two such windows compare through the usual ratio-of-means interval.
    interval = ratio_of_means_interval(summary, summary)
    assert interval.low < 1.0 < interval.high


def test_sliding_window_expires_slot_by_slot() -> None:
    w: SlidingWindow[AgreementCell] = SlidingWindow(60.0, 10.0, AgreementCell)
    for t in range(0, 60, 5):  # two comparisons per 10 s slot
        cell = w.cell(float(t), now=float(t))
        assert cell is not None
        cell.agree += 1
    assert w.total(59.0).agree == 12
    assert w.total(65.0).agree == 10  # the slot [0, 10) left the window
    assert w.total(119.0).agree == 0
    assert len(w) == 0


def test_sliding_window_memory_is_bounded_and_old_evidence_refused() -> None:
    w: SlidingWindow[AgreementCell] = SlidingWindow(30.0, 1.0, AgreementCell)
    for t in range(10_000):
        cell = w.cell(float(t), now=float(t))
        assert cell is not None
        cell.agree += 1
        assert len(w) <= w.max_slots == 30
    assert w.cell(100.0, now=10_000.0) is None  # older than the window: ignored
    future = w.cell(20_000.0, now=10_000.0)  # clock skew: booked now, not in the future
    assert future is not None
    future.agree += 1
    assert w.total(10_000.0).agree == 30


def test_evidence_cell_keeps_energy_methods_apart() -> None:
    cell = EvidenceCell()
    for method, joules in (("nvml_counter", 10.0), ("hli", 50.0), ("nvml_counter", 12.0)):
        cell.add(_obs(energy_j=joules, energy_method=method, completion_tokens=10))
    assert cell.energy["nvml_counter"].per_query.n == 2
    assert cell.energy["nvml_counter"].per_query.mean == pytest.approx(11.0)
    assert cell.energy["hli"].per_query.mean == pytest.approx(50.0)
    assert cell.energy["nvml_counter"].j_per_token == pytest.approx(22.0 / 20)
    cell.add(_obs(energy_j=None))
    assert set(cell.energy) == {"nvml_counter", "hli"}  # "none" is not a method


def test_failed_requests_count_but_carry_no_evidence() -> None:
    cell = EvidenceCell()
    cell.add(_obs(ok=False, correct=False, gen_tokens=10, gen_s=1.0))
    assert (cell.requests, cell.failed, cell.graded, cell.speed.n) == (1, 1, 0, 0)


def _obs(**changes: object) -> Observation:
    base: dict[str, object] = {
        "at": 0.0,
        "model": "m",
        "variant": "v",
        "role": "primary",
        "bucket": "1",
        "ok": True,
    }
    return Observation(**{**base, **changes})  # type: ignore[arg-type]
