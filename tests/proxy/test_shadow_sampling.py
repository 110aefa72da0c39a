"""Shadow sampling under the cap: per-bucket shares keep evidence in every batch-size bucket.

The simulations are discrete-event models of a proxy (no asyncio, no sockets): requests arrive
as Poisson processes, every request is offered a copy (sample rate 1), a copy holds a slot for
``2 s x (1 + batch / 16)`` (slower at larger batches, as de-quantization is paid per step), and
the cap is 8 (the default ``shadow.max_concurrency``). "First come" is today's rule: a copy
runs if a slot is free.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence

import pytest

from proxy.shadow_sampling import ShadowSampler
from scoring.windows import batch_bucket

CAP = 8
SERVICE_S = 2.0


class FirstCome:
    """Today's rule, for comparison: a copy runs whenever a slot is free."""

    def __init__(self, cap: int) -> None:
        self.cap, self.total = cap, 0

    def admit(self, bucket: str) -> bool:
        if self.total >= self.cap:
            return False
        self.total += 1
        return True

    def release(self, bucket: str) -> None:
        self.total -= 1


Policy = ShadowSampler | FirstCome
Counts = dict[str, tuple[int, int]]  # bucket -> (offered, run)


def _copy_s(batch: float) -> float:
    return SERVICE_S * (1 + batch / 16)


def simulate_mixed(make: Callable[[Callable[[], float]], Policy], loads: Sequence[int],
                   duration_s: float = 600.0, seed: int = 2) -> Counts:  # fmt: skip
    """Several primaries at once (e.g. weighted routing), each at a steady number in flight;
    a copy's bucket is its primary's batch size."""
    rng = random.Random(seed)
    now = [0.0]
    policy = make(lambda: now[0])
    events: list[tuple[float, int, str]] = []  # (time, primary index or -1 for an end, bucket)
    for i, load in enumerate(loads):
        heapq.heappush(events, (rng.expovariate(load / SERVICE_S), i, batch_bucket(load)))
    counts: dict[str, list[int]] = {}
    while events:
        t, i, bucket = heapq.heappop(events)
        if t > duration_s:
            break
        now[0] = t
        if i < 0:
            policy.release(bucket)
            continue
        seen = counts.setdefault(bucket, [0, 0])
        seen[0] += 1
        if policy.admit(bucket):
            seen[1] += 1
            heapq.heappush(events, (t + _copy_s(loads[i]), -1, bucket))
        heapq.heappush(events, (t + rng.expovariate(loads[i] / SERVICE_S), i, bucket))
    return {b: (o, r) for b, (o, r) in counts.items()}


def simulate_swing(make: Callable[[Callable[[], float]], Policy], peak: int,
                   duration_s: float = 1200.0, period_s: float = 120.0,
                   seed: int = 1) -> Counts:  # fmt: skip
    """One primary whose load swings from 1 to ``peak`` in flight and back every period."""
    rng = random.Random(seed)
    now = [0.0]
    policy = make(lambda: now[0])
    ends: list[tuple[float, str]] = []
    counts: dict[str, list[int]] = {}
    t = 0.0
    while t < duration_s:
        phase = (t % period_s) / period_s
        level = 1 + (peak - 1) * (1 - abs(2 * phase - 1))
        t += rng.expovariate(level / SERVICE_S)
        now[0] = t
        while ends and ends[0][0] <= t:
            policy.release(heapq.heappop(ends)[1])
        bucket = batch_bucket(max(1, round(level)))
        seen = counts.setdefault(bucket, [0, 0])
        seen[0] += 1
        if policy.admit(bucket):
            seen[1] += 1
            heapq.heappush(ends, (t + _copy_s(level), bucket))
    return {b: (o, r) for b, (o, r) in counts.items()}


def _shares(clock: Callable[[], float]) -> Policy:
    return ShadowSampler(CAP, clock=clock)


def _first_come(clock: Callable[[], float]) -> Policy:
    return FirstCome(CAP)


@pytest.mark.parametrize("busy", [16, 64])
def test_every_bucket_keeps_evidence_when_buckets_are_busy_at_once(busy: int) -> None:
    """A busy primary (16 or 64 in flight) beside quiet ones (4 and 1 in flight)."""
    shares = simulate_mixed(_shares, (busy, 4, 1))
    first = simulate_mixed(_first_come, (busy, 4, 1))
    quiet = batch_bucket(1)
    # First come: the busy bucket's long copies hold the slots; the quiet bucket starves.
    assert first[quiet][1] < 0.25 * first[quiet][0]
    # Shares: every bucket gets copies (hundreds in ten minutes), the quiet one most of what
    # it offered ...
    for bucket, (offered, run) in shares.items():
        assert run >= 100, (bucket, offered, run)
    assert shares[quiet][1] >= 0.6 * shares[quiet][0]
    assert shares[quiet][1] >= 3 * first[quiet][1]
    # ... and no capacity is lost: as many copies run in all (shorter copies get slots).
    assert sum(r for _, r in shares.values()) >= sum(r for _, r in first.values())


@pytest.mark.parametrize("peak", [16, 64])
def test_one_bucket_at_a_time_loses_little_against_first_come(peak: int) -> None:
    """Load swinging 1 -> peak -> 1: every bucket gets copies; the idle cap is still used."""
    shares = simulate_swing(_shares, peak)
    first = simulate_swing(_first_come, peak)
    for bucket, (offered, run) in shares.items():
        assert run >= min(offered, 20), (bucket, offered, run)
    assert sum(r for _, r in shares.values()) >= 0.9 * sum(r for _, r in first.values())


def test_a_lone_bucket_may_use_the_whole_cap_and_never_more() -> None:
    sampler = ShadowSampler(CAP, clock=lambda: 0.0)
    assert [sampler.admit("32+") for _ in range(CAP + 2)] == [True] * CAP + [False, False]
    stats = sampler.stats()
    assert stats.in_flight == CAP and stats.active_buckets == 1 and stats.share == CAP
    (row,) = stats.buckets
    assert (row.offered, row.run, row.dropped, row.in_flight) == (10, 8, 2, 8)
    assert row.coverage == 0.8


def test_a_newly_busy_bucket_gets_the_next_free_slot_and_keeps_its_share() -> None:
    now = [0.0]
    sampler = ShadowSampler(CAP, clock=lambda: now[0])
    for _ in range(CAP):
        assert sampler.admit("32+")
    assert not sampler.admit("1")  # full: counted as dropped for bucket 1
    sampler.release("32+")
    assert not sampler.admit("32+")  # the freed slot is owed to bucket 1 (active, 0 of 4)
    assert sampler.admit("1")
    for _ in range(3):
        sampler.release("32+")
    assert not sampler.admit("32+")  # 3 free, all owed to bucket 1 (1 of 4 held) ...
    assert sampler.admit("1") and sampler.admit("1") and sampler.admit("1")
    assert not sampler.admit("1")  # ... which now holds its share of 4, and the cap is full
    now[0] = 10.0  # bucket 1 has gone quiet and its copies end: nothing is held back for it
    for _ in range(4):
        sampler.release("1")
    assert [sampler.admit("32+") for _ in range(5)] == [True] * 4 + [False]
    dropped = {b.bucket: b.dropped for b in sampler.stats().buckets}
    assert dropped == {"1": 2, "32+": 3}


def test_release_without_admit_is_an_error() -> None:
    sampler = ShadowSampler(2, clock=lambda: 0.0, buckets=("1", "2-3"))
    assert [b.bucket for b in sampler.stats().buckets] == ["1", "2-3"]  # listed before traffic
    with pytest.raises(ValueError):
        sampler.release("1")
    with pytest.raises(ValueError):
        ShadowSampler(0, clock=lambda: 0.0)
