"""The live scorer's trap flag on seeded streams: silent under A/A, raised by a true effect.

A stream is tagged evaluation traffic to the anchor and one variant, with heavy-tailed speed
and energy (lognormal answer lengths), evaluated every 5 simulated minutes as the runtime
would every few seconds (fewer looks keep the test fast; the verdicts hold at any looks).
"""

from __future__ import annotations

import random

from scoring.config import ScoringConfig
from scoring.live import LiveScorer, ModelSpec
from scoring.snapshot import BucketRow
from scoring.windows import Observation

SPEC = ModelSpec("m", "bf16", (("bf16", 16), ("nf4", 4)))


def _stream(
    *, hours: float, rate: float, seed: int, accuracy: float = 0.43, speed: float = 1.0,
    energy: float = 1.0, look_s: float = 300.0,
) -> list[BucketRow | None]:  # fmt: skip
    """The nf4 row at every look; ``rate`` graded requests a minute per variant."""
    rng = random.Random(seed)
    scorer = LiveScorer(ScoringConfig(), [SPEC])
    rows: list[BucketRow | None] = []
    t = 0.0
    for look in range(1, int(hours * 3600 / look_s) + 1):
        now = look * look_s
        for variant, acc, spd, joules in (
            ("bf16", 0.43, 1.0, 1.0),
            ("nf4", accuracy, speed, energy),
        ):
            t = now - look_s
            while True:
                t += rng.expovariate(rate / 60.0)
                if t >= now:
                    break
                tokens = max(1, round(200 * rng.lognormvariate(0, 0.5)))
                tps = 40 * spd * rng.lognormvariate(0, 0.15)
                scorer.ingest(
                    Observation(
                        at=t, model="m", variant=variant, role="primary", bucket="1", ok=True,
                        gen_tokens=tokens, gen_s=tokens / tps, completion_tokens=tokens,
                        energy_j=1.5 * tokens * joules * rng.lognormvariate(0, 0.1),
                        energy_method="nvml_counter", dataset="gsm8k", correct=rng.random() < acc,
                    ),
                    now,
                )  # fmt: skip
        snap = scorer.evaluate(now)
        nf4 = next(v for v in snap.models[0].variants if v.variant == "nf4")
        rows.append(next((r for r in nf4.buckets if r.bucket == "1"), None))
    return rows


def test_a_and_a_traffic_never_flags_a_trap_in_a_day() -> None:
    for seed in (1, 2, 3):
        rows = _stream(hours=24, rate=2.0, seed=seed)
        assert not any(r is not None and r.trap for r in rows), seed
        last = rows[-1]
        assert last is not None and last.verdicts is not None
        # Every question was answered "no", so the regime is "no trap" rather than unknown.
        assert last.significant == (False, False, False) and last.regime == "no_trap"


def test_a_true_energy_effect_is_flagged_and_stays_flagged() -> None:
    rows = _stream(hours=6, rate=10.0, seed=4, energy=1.2)
    flags = [r is not None and r.trap for r in rows]
    first = flags.index(True)
    assert first * 5 <= 120  # within two hours at 10 graded requests a minute
    assert all(flags[first:])  # the running intersection keeps it within the epoch
    last = rows[-1]
    assert last is not None and last.verdicts is not None and last.verdicts.energy is not None
    assert last.verdicts.energy.low > 1.05 and last.regime == "efficiency_trap"
    assert last.verdicts.more_energy and not last.verdicts.slower


def test_a_true_slowdown_is_flagged_within_the_hour() -> None:
    rows = _stream(hours=2, rate=2.0, seed=5, speed=0.8)
    flags = [r is not None and r.trap for r in rows]
    assert True in flags and flags.index(True) * 5 <= 60
    last = rows[-1]
    assert last is not None and last.significant[1] is True
