"""Verdicts from an epoch's evidence: margins, paired and unpaired accuracy, held answers."""

from __future__ import annotations

import random

import pytest

from scoring.verdicts import Margins, VerdictSettings, carry, decide
from scoring.windows import EvidenceCell, Observation

SETTINGS = VerdictSettings(
    alpha=0.05, margins=Margins(0.01, 0.05, 0.05), tune_samples=300, min_graded=20, min_requests=10
)


def _cell(n: int, tps: float, joules: float, accuracy: float, seed: int) -> EvidenceCell:
    rng = random.Random(seed)
    cell = EvidenceCell()
    for i in range(n):
        cell.add(
            Observation(
                at=float(i), model="m", variant="v", role="primary", bucket="1", ok=True,
                gen_tokens=100, gen_s=100 / (tps * rng.lognormvariate(0, 0.2)),
                completion_tokens=101, energy_j=joules * rng.lognormvariate(0, 0.3),
                energy_method="nvml_counter", correct=rng.random() < accuracy,
            )
        )  # fmt: skip
    return cell


def test_no_difference_answers_no_to_every_question() -> None:
    v = decide(_cell(400, 50, 300, 0.43, 1), _cell(400, 50, 300, 0.43, 2), "nvml_counter",
               SETTINGS, since=0.0)  # fmt: skip
    assert (v.less_accurate, v.slower, v.more_energy) == (False, False, False)
    assert v.speed is not None and v.speed.low < 1 < v.speed.high
    assert v.energy is not None and v.energy.confidence == pytest.approx(1 - 0.05 / 3)
    assert v.accuracy is not None and v.accuracy.confidence == pytest.approx(1 - 0.05 / 6)


def test_a_significant_difference_inside_the_margin_is_no_trap() -> None:
    # 3 % slower and 3 % more energy, measured so precisely that both exclude parity.
    v = decide(_cell(20_000, 48.5, 309, 0.43, 3), _cell(20_000, 50, 300, 0.43, 4),
               "nvml_counter", SETTINGS, since=0.0)  # fmt: skip
    assert v.speed is not None and v.speed.high < 1.0  # significant ...
    assert v.energy is not None and v.energy.low > 1.0
    assert v.slower is False and v.more_energy is False  # ... but inside the 5 % margins
    strict = VerdictSettings(0.05, Margins(0.01, 0.0, 0.0), 300, 20, 10)
    w = decide(_cell(20_000, 48.5, 309, 0.43, 3), _cell(20_000, 50, 300, 0.43, 4),
               "nvml_counter", strict, since=0.0)  # fmt: skip
    assert w.slower is True and w.more_energy is True


def test_beyond_the_margin_is_flagged() -> None:
    v = decide(_cell(400, 38, 380, 0.43, 5), _cell(400, 50, 300, 0.43, 6), "nvml_counter",
               SETTINGS, since=0.0)  # fmt: skip
    assert v.slower is True and v.more_energy is True
    assert v.energy_method == "nvml_counter"


def test_paired_verdicts_decide_where_unpaired_counts_cannot() -> None:
    variant, anchor = EvidenceCell(), EvidenceCell()
    # 600 prompts: the anchor alone right on 60, the variant alone on 12 (−8 points).
    for both, a_only, v_only, neither in [(200, 60, 12, 328)]:
        variant.pairs[:] = [both, a_only, v_only, neither]
        variant.graded, variant.correct = 600, both + v_only
        anchor.graded, anchor.correct = 600, both + a_only
    v = decide(variant, anchor, None, SETTINGS, since=0.0)
    assert v.accuracy is not None and v.accuracy.high > -0.01  # unpaired: undecided
    assert v.accuracy_paired is not None and v.accuracy_paired.high < -0.01
    assert v.less_accurate is True
    assert v.speed is None and v.slower is None and v.energy is None  # nothing measured


def test_too_few_samples_leave_the_questions_open() -> None:
    v = decide(_cell(5, 30, 500, 0.1, 7), _cell(5, 50, 300, 0.9, 8), "nvml_counter",
               SETTINGS, since=0.0)  # fmt: skip
    assert (v.less_accurate, v.slower, v.more_energy) == (None, None, None)


def test_held_answers_last_until_confirmed_or_excluded() -> None:
    fresh = decide(EvidenceCell(), EvidenceCell(), None, SETTINGS, since=10.0)
    held = carry(fresh, frozenset({"more_energy"}))
    assert held.more_energy is True and held.carried == ("more_energy",)
    healthy = decide(_cell(400, 50, 300, 0.43, 9), _cell(400, 50, 300, 0.43, 10),
                     "nvml_counter", SETTINGS, since=10.0)  # fmt: skip
    assert healthy.excludes("more_energy")
    released = carry(healthy, frozenset({"more_energy"}))
    assert released.more_energy is False and released.carried == ()


def test_the_running_intersection_keeps_an_answer_within_its_epoch() -> None:
    v, a = _cell(100, 42, 300, 0.43, 11), _cell(100, 50, 300, 0.43, 12)
    first = decide(v, a, "nvml_counter", SETTINGS, since=5.0)
    assert first.slower is True and first.speed is not None
    # The epoch goes on with a long stretch at parity: alone, its evidence no longer decides.
    v.merge(_cell(200, 50, 300, 0.43, 13))
    a.merge(_cell(200, 50, 300, 0.43, 14))
    alone = decide(v, a, "nvml_counter", SETTINGS, since=5.0)
    assert alone.slower is False and alone.speed is not None
    # Intersected with what the sequence said before (still a valid CS): the answer stays.
    kept = decide(v, a, "nvml_counter", SETTINGS, since=5.0, previous=first)
    assert kept.speed is not None
    assert kept.speed.high == pytest.approx(min(alone.speed.high, first.speed.high))
    assert kept.speed.low == pytest.approx(max(alone.speed.low, first.speed.low))
    assert kept.slower is True
    # A new epoch starts afresh.
    fresh = decide(v, a, "nvml_counter", SETTINGS, since=6.0, previous=first)
    assert fresh.speed == alone.speed and fresh.slower is False
