"""Significant evidence and the latch: traps need significance, and alerts do not flap."""

from __future__ import annotations

import random

import pytest

from scoring.evidence import (
    RegimeLatch,
    accuracy_evidence,
    difference_interval,
    live_regime,
)
from scoring.regimes import Regime


@pytest.mark.parametrize(
    ("counts", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((6, 7, 2, 7), 0.0582, 0.8062),
        ((5, 56, 0, 29), -0.0381, 0.1926),
        ((0, 10, 0, 20), -0.1611, 0.2775),
    ],
)
def test_difference_interval_matches_newcombe(
    counts: tuple[int, int, int, int], low: float, high: float
) -> None:
    interval = difference_interval(*counts)
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)


def test_accuracy_needs_significance_beyond_the_tolerance() -> None:
    kwargs = {"tolerance": 0.01, "min_graded": 20, "confidence": 0.95}
    none = (0, 0, 0, 0)
    clear = accuracy_evidence((90, 100), (55, 100), none, **kwargs)  # type: ignore[arg-type]
    assert clear.less_accurate is True and clear.difference is not None
    assert clear.difference.high < -0.01
    noisy = accuracy_evidence((90, 100), (85, 100), none, **kwargs)  # type: ignore[arg-type]
    assert noisy.less_accurate is False  # 5 points worse, but not significantly
    few = accuracy_evidence((10, 10), (0, 10), none, **kwargs)  # type: ignore[arg-type]
    assert few.less_accurate is None  # below the minimum: unknown, never guessed


def test_paired_verdicts_detect_what_unpaired_counts_cannot() -> None:
    # 400 prompts; the variant loses 14 the anchor gets right and wins 2: 3 points worse.
    pairs = (340, 14, 2, 44)  # both right, anchor only, variant only, both wrong
    anchor = (pairs[0] + pairs[1], 400)
    variant = (pairs[0] + pairs[2], 400)
    kwargs = {"tolerance": 0.01, "min_graded": 20, "confidence": 0.95}
    unpaired = accuracy_evidence(anchor, variant, (0, 0, 0, 0), **kwargs)  # type: ignore[arg-type]
    paired = accuracy_evidence(anchor, variant, pairs, **kwargs)  # type: ignore[arg-type]
    assert unpaired.less_accurate is False
    assert paired.less_accurate is True
    assert paired.paired is not None and paired.paired.p_value < 0.01


@pytest.mark.parametrize(
    ("less", "slower", "more", "considered", "regime"),
    [
        (True, True, None, False, "full_trap"),
        (True, False, None, False, "accuracy_trap"),
        (False, True, None, False, "efficiency_trap"),
        (False, False, None, False, "no_trap"),  # no energy at all: accuracy and speed decide
        (False, False, None, True, "undetermined"),  # energy measured but not comparable
        (False, False, True, True, "efficiency_trap"),
        (True, None, True, True, "full_trap"),
        (None, True, True, True, "undetermined"),
    ],
)
def test_live_regime_table(
    less: bool | None, slower: bool | None, more: bool | None, considered: bool, regime: str
) -> None:
    assert live_regime(less, slower, more, energy_considered=considered) == regime


def test_latch_turns_on_after_consecutive_support_and_off_after_k() -> None:
    latch = RegimeLatch(on_after=2, off_after=3)
    assert latch.update("full_trap") == "undetermined"  # one evaluation is not enough
    assert latch.update("full_trap") == "full_trap" and latch.trap
    assert latch.update("no_trap") == "full_trap"
    assert latch.update("no_trap") == "full_trap"
    assert latch.update("no_trap") == "no_trap" and not latch.trap  # K = 3 without support


def test_latch_does_not_flap_on_alternating_evidence() -> None:
    latch = RegimeLatch(on_after=2, off_after=3)
    for _ in range(2):
        latch.update("full_trap")
    flags = []
    for i in range(100):  # evidence that crosses the significance boundary every evaluation
        latch.update("full_trap" if i % 2 else "no_trap")
        flags.append(latch.trap)
    assert all(flags)  # stays on: never K consecutive evaluations against it

    quiet = RegimeLatch(on_after=2, off_after=3, initial="no_trap")
    seen = []
    for i in range(100):
        quiet.update("full_trap" if i % 2 else "no_trap")
        seen.append(quiet.trap)
    assert not any(seen)  # never two consecutive trap evaluations: never on


def test_latch_on_a_null_variant_rarely_alerts() -> None:
    # A variant equal to the anchor: each evaluation shows "significant" evidence with the
    # test's false-positive rate (5 %). The raw verdict flips ~190 times in 2000 evaluations.
    rng = random.Random(11)
    latch = RegimeLatch(on_after=2, off_after=3, initial="no_trap")
    raw_flips = latch_changes = 0
    previous_raw: Regime = "no_trap"
    previous_flag = latch.trap
    for _ in range(2000):
        raw: Regime = "full_trap" if rng.random() < 0.05 else "no_trap"
        raw_flips += raw != previous_raw
        previous_raw = raw
        latch.update(raw)
        latch_changes += latch.trap != previous_flag
        previous_flag = latch.trap
    assert raw_flips > 150
    assert latch_changes <= 20  # two consecutive false positives are needed: p = 0.0025


def test_latch_moves_between_trap_labels_only_with_k_evaluations() -> None:
    latch = RegimeLatch(on_after=1, off_after=3)
    latch.update("full_trap")
    for regime in ("efficiency_trap", "efficiency_trap"):
        assert latch.update(regime) == "full_trap"
    assert latch.update("efficiency_trap") == "efficiency_trap"
    assert latch.trap
    with pytest.raises(ValueError):
        RegimeLatch(on_after=0)
