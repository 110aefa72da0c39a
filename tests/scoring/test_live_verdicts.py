"""The live scorer's trap flag on seeded streams: silent under A/A, raised by a true effect.

A stream is evaluation traffic to the anchor and one variant — tagged (independent prompts)
or shadow pairs (the variant answers the anchor's prompts) — with heavy-tailed speed and
energy (lognormal answer lengths), evaluated every 5 simulated minutes as the runtime would
every few seconds (fewer looks keep the test fast; the verdicts hold at any looks).
"""

from __future__ import annotations

import random

import pytest

from scoring.config import ScoringConfig
from scoring.live import LiveScorer, ModelSpec
from scoring.snapshot import BucketRow
from scoring.windows import Observation

SPEC = ModelSpec("m", "bf16", (("bf16", 16), ("nf4", 4)))
ANCHOR_ACCURACY = 0.43
COPY = 0.8


def _arrivals(rng: random.Random, rate: float, start: float, end: float) -> list[float]:
    times, t = [], start
    while (t := t + rng.expovariate(rate / 60.0)) < end:
        times.append(t)
    return times


def _stream(
    *, hours: float, rate: float, seed: int, accuracy: float = ANCHOR_ACCURACY,
    speed: float = 1.0, energy: float = 1.0, paired: bool = False, look_s: float = 300.0,
) -> list[BucketRow | None]:  # fmt: skip
    """The nf4 row at every look; ``rate`` graded requests a minute per variant.

    ``paired``: nf4 answers the anchor's prompts (shadow pairs): it repeats the anchor's
    verdict with probability 0.8, else draws anew at the rate that gives its accuracy.
    """
    rng = random.Random(seed)
    scorer = LiveScorer(ScoringConfig(), [SPEC])
    fresh = (accuracy - COPY * ANCHOR_ACCURACY) / (1 - COPY)
    rows: list[BucketRow | None] = []
    for look in range(1, int(hours * 3600 / look_s) + 1):
        now = look * look_s
        anchor_at = _arrivals(rng, rate, now - look_s, now)
        anchor_ok = [rng.random() < ANCHOR_ACCURACY for _ in anchor_at]
        variant_at = anchor_at if paired else _arrivals(rng, rate, now - look_s, now)
        for variant, times, spd, joules in (
            ("bf16", anchor_at, 1.0, 1.0),
            ("nf4", variant_at, speed, energy),
        ):
            for k, at in enumerate(times):
                if variant == "bf16":
                    ok = anchor_ok[k]
                elif paired:
                    ok = anchor_ok[k] if rng.random() < COPY else rng.random() < fresh
                else:
                    ok = rng.random() < accuracy
                tokens = max(1, round(200 * rng.lognormvariate(0, 0.5)))
                tps = 40 * spd * rng.lognormvariate(0, 0.15)
                scorer.ingest(
                    Observation(
                        at=at, model="m", variant=variant, role="primary", bucket="1", ok=True,
                        gen_tokens=tokens, gen_s=tokens / tps, completion_tokens=tokens,
                        energy_j=1.5 * tokens * joules * rng.lognormvariate(0, 0.1),
                        energy_method="nvml_counter", dataset="gsm8k", correct=ok,
                        pair_key=f"{look}-{k}" if paired else None,
                    ),
                    now,
                )  # fmt: skip
        snap = scorer.evaluate(now)
        nf4 = next(v for v in snap.models[0].variants if v.variant == "nf4")
        rows.append(next((r for r in nf4.buckets if r.bucket == "1"), None))
    return rows


def _flags(rows: list[BucketRow | None]) -> list[bool]:
    return [r is not None and r.trap for r in rows]


@pytest.mark.parametrize("paired", [False, True], ids=["tagged", "shadow"])
def test_a_and_a_traffic_never_flags_a_trap_in_a_day(paired: bool) -> None:
    for seed in (1, 2, 3):
        rows = _stream(hours=24, rate=2.0, seed=seed, paired=paired)
        assert not any(_flags(rows)), seed
        last = rows[-1]
        assert last is not None and last.verdicts is not None
        # Every question was answered "no", so the regime is "no trap" rather than unknown.
        assert last.significant == (False, False, False) and last.regime == "no_trap"
        assert (last.verdicts.accuracy_paired is not None) is paired


def test_a_true_energy_effect_is_flagged_and_stays_flagged() -> None:
    rows = _stream(hours=6, rate=10.0, seed=4, energy=1.2)
    flags = _flags(rows)
    first = flags.index(True)
    assert first * 5 <= 120  # within two hours at 10 graded requests a minute
    assert all(flags[first:])  # the running intersection keeps it within the epoch
    last = rows[-1]
    assert last is not None and last.verdicts is not None and last.verdicts.energy is not None
    assert last.verdicts.energy.low > 1.05 and last.regime == "efficiency_trap"
    assert last.verdicts.more_energy and not last.verdicts.slower


def test_a_true_slowdown_is_flagged_within_the_hour() -> None:
    rows = _stream(hours=2, rate=2.0, seed=5, speed=0.8)
    flags = _flags(rows)
    assert True in flags and flags.index(True) * 5 <= 60
    last = rows[-1]
    assert last is not None and last.significant[1] is True


def test_a_true_accuracy_loss_is_flagged_from_shadow_pairs() -> None:
    rows = _stream(hours=8, rate=10.0, seed=6, accuracy=0.35, paired=True)
    flags = _flags(rows)
    assert True in flags and flags.index(True) * 5 <= 4 * 60
    last = rows[-1]
    assert last is not None and last.verdicts is not None
    assert last.pairs[1] > last.pairs[2] > 0  # shadow pairs were booked
    paired = last.verdicts.accuracy_paired
    assert paired is not None and paired.high < -0.01 and last.regime == "accuracy_trap"
