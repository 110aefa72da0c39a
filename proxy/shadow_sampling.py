"""Which shadow copies run when the concurrency cap is reached: per-bucket shares. Pure.

The paper's trap depends on batch size, so shadow evidence is compared within batch-size
buckets (:func:`scoring.windows.batch_bucket`). With first-come-first-served admission under
``shadow.max_concurrency``, coverage collapses exactly where it matters: at 16 in flight only
47% of copies ran, at 64 only 22%, and copies of the slow, busy periods hold every slot while
the load moves through the other buckets, so those get none.

Method: the cap is shared fairly among the *active* buckets (those that offered a copy in the
last ``active_s`` seconds, default 2 s, or have copies in flight). The window is short on
purpose: a bucket the load has moved away from must not keep slots idle (in the simulation of
``tests/proxy/test_shadow_sampling.py`` a 60-s window cost a third of all copies; 0.5-2 s cost
under 7% when only one bucket is busy at a time). Each active bucket is entitled to
``share = max(1, cap // active)`` slots. A copy runs when

1. a slot is free, and its bucket holds fewer than ``share`` slots, or
2. a slot is free *beyond* the slots still owed to the other active buckets (each under its
   share is owed the difference): a bucket may borrow idle capacity, but never the slots
   another bucket is entitled to.

So a bucket that just became active always finds a slot within one copy's duration, and an
idle cap is still used fully by whoever is busy. Copies that do not run are counted per
bucket (``dropped``), next to ``offered`` and ``run``: the status page shows coverage per
bucket. Caveat: with more active buckets than slots (``cap`` below the number of buckets)
each gets one slot at most while slots last; fairness is then in admission order.

The shadow dispatcher calls :meth:`ShadowSampler.admit` with the bucket of the batch size in
force when the request arrives (e.g. ``batch_bucket(in_flight of the primary variant)``), and
:meth:`ShadowSampler.release` with the same bucket when an admitted copy ends, however it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["BucketCoverage", "ShadowSampler", "ShadowSamplingStats"]


@dataclass(frozen=True, slots=True)
class BucketCoverage:
    """One batch-size bucket's shadow copies since start."""

    bucket: str
    offered: int
    """Copies the sampling rate chose (before the cap)."""
    run: int
    """Copies admitted under the cap."""
    dropped: int
    """Copies refused at the cap (``offered - run``)."""
    in_flight: int
    """Copies of this bucket running now."""

    @property
    def coverage(self) -> float | None:
        """Share of offered copies that ran; ``None`` before any was offered."""
        return self.run / self.offered if self.offered else None


@dataclass(frozen=True, slots=True)
class ShadowSamplingStats:
    """The shadow cap and its use per bucket, for the status page."""

    cap: int
    in_flight: int
    active_buckets: int
    share: int
    """Slots each active bucket is entitled to now."""
    buckets: tuple[BucketCoverage, ...]


class ShadowSampler:
    """Per-bucket fair shares of the shadow concurrency cap (see the module docstring).

    Not thread-safe: call from the event loop only.
    """

    def __init__(
        self,
        cap: int,
        *,
        clock: Callable[[], float],
        active_s: float = 2.0,
        buckets: Iterable[str] = (),
    ) -> None:
        if cap < 1:
            raise ValueError("the shadow cap must be at least 1")
        self.cap = cap
        self._clock = clock
        self._active_s = active_s
        self._in_flight: dict[str, int] = {}
        self._last_offer: dict[str, float] = {}
        self._offered: dict[str, int] = {}
        self._run: dict[str, int] = {}
        for bucket in buckets:  # buckets to report even before any traffic
            self._offered[bucket] = self._run[bucket] = self._in_flight[bucket] = 0
        self._total = 0

    def admit(self, bucket: str) -> bool:
        """Whether a copy of a request in ``bucket`` runs now (counted either way).

        ``True`` takes a slot: call :meth:`release` with the same bucket when the copy ends.
        """
        now = self._clock()
        self._last_offer[bucket] = now
        self._offered[bucket] = self._offered.get(bucket, 0) + 1
        mine = self._in_flight.get(bucket, 0)
        if not self._may_run(bucket, mine, now):
            return False
        self._in_flight[bucket] = mine + 1
        self._run[bucket] = self._run.get(bucket, 0) + 1
        self._total += 1
        return True

    def release(self, bucket: str) -> None:
        """An admitted copy of ``bucket`` ended (completed, failed or cancelled)."""
        held = self._in_flight.get(bucket, 0)
        if held <= 0:
            raise ValueError(f"release of bucket {bucket!r} without an admitted copy")
        self._in_flight[bucket] = held - 1
        self._total -= 1

    def stats(self) -> ShadowSamplingStats:
        now = self._clock()
        active = self._active(now)
        return ShadowSamplingStats(
            cap=self.cap,
            in_flight=self._total,
            active_buckets=len(active),
            share=self._share(len(active)),
            buckets=tuple(
                BucketCoverage(
                    bucket=b,
                    offered=self._offered.get(b, 0),
                    run=self._run.get(b, 0),
                    dropped=self._offered.get(b, 0) - self._run.get(b, 0),
                    in_flight=self._in_flight.get(b, 0),
                )
                for b in sorted(self._offered)
            ),
        )

    # -- the rule ------------------------------------------------------------------------------

    def _may_run(self, bucket: str, mine: int, now: float) -> bool:
        free = self.cap - self._total
        if free <= 0:
            return False
        active = self._active(now)
        share = self._share(len(active))
        if mine < share:
            return True
        owed = sum(max(0, share - self._in_flight.get(b, 0)) for b in active if b != bucket)
        return free > owed

    def _active(self, now: float) -> list[str]:
        horizon = now - self._active_s
        return [
            b
            for b, at in self._last_offer.items()
            if at >= horizon or self._in_flight.get(b, 0) > 0
        ]

    def _share(self, active: int) -> int:
        return max(1, self.cap // max(1, active))
