"""Mirroring a sample of traffic to other variants, off the user's critical path.

A shadow copy is the same request sent to another variant, in the same streaming mode, as a
background task: the user's response never waits for it and never fails because of it. Copies
are bounded per model by ``shadow.max_concurrency``; a copy that would exceed it is dropped and
counted. Each finished copy is joined with its primary's record under one pair id and handed to
the pair sinks (scoring compares them).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.buckets import BATCH_BUCKETS
from core.records import RequestRecord, ShadowPair
from proxy.config import ModelConfig
from proxy.context import RequestContext, new_id
from proxy.shadow_sampling import ShadowSampler

__all__ = ["PairSink", "PendingPair", "ShadowDispatcher"]

log = logging.getLogger("quanttrap.shadow")

PairSink = Callable[[ShadowPair], None]
RunShadow = Callable[[str, RequestContext], Awaitable[RequestRecord]]


class PendingPair:
    """The primary half of a pair, filled in when the user's request finishes."""

    __slots__ = ("_primary", "pair_id")

    def __init__(self, pair_id: str) -> None:
        self.pair_id = pair_id
        self._primary: asyncio.Future[RequestRecord] = asyncio.get_running_loop().create_future()

    def set_primary(self, record: RequestRecord) -> None:
        if not self._primary.done():
            self._primary.set_result(record)

    async def primary(self) -> RequestRecord:
        return await self._primary


class ShadowDispatcher:
    def __init__(
        self,
        model: ModelConfig,
        run_shadow: RunShadow,
        sinks: Sequence[PairSink],
        rng: random.Random | None = None,
        on_count: Callable[[str, str, Any], None] | None = None,
    ) -> None:
        self.model = model
        self._on_count = on_count
        self._run = run_shadow
        self._sinks = list(sinks)
        self._rng = rng or random.Random()
        self._rate = model.shadow.sample_rate
        self._variants = model.shadow.variants
        self._cap = model.shadow.max_concurrency
        # The cap is shared fairly among the batch-size buckets that have traffic, so that a
        # busy bucket cannot starve the others of evidence (proxy/shadow_sampling.py).
        self.sampler = ShadowSampler(self._cap, clock=time.monotonic, buckets=BATCH_BUCKETS[:-1])
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts: Counter[tuple[str, str]] = Counter()
        """(variant, outcome) -> count; outcome is sent, completed, failed, dropped (over the
        bucket's share of the cap) or skipped (a Responses follow-up the shadow never saw)."""

    def _count(self, variant: str, outcome: str) -> None:
        self.counts[variant, outcome] += 1
        if self._on_count is not None:
            self._on_count(self.model.name, variant, outcome)

    def add_sink(self, sink: PairSink) -> None:
        self._sinks.append(sink)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def maybe_launch(
        self, primary_variant: str, ctx: RequestContext, bucket: str
    ) -> PendingPair | None:
        """Decide whether to mirror this request; if so start the copies and return the pair.

        ``bucket`` is the batch-size bucket the primary runs in (its variant's requests in
        flight): copies are admitted by that bucket's share of the cap.
        """
        if not self._variants or self._rng.random() >= self._rate:
            return None
        targets = [v for v in self._variants if v != primary_variant]
        if not targets:
            return None
        if ctx.operation == "responses" and ctx.body.get("previous_response_id"):
            # The shadow never saw the conversation the upstream stored: nothing to compare.
            for variant in targets:
                self._count(variant, "skipped")
            return None
        pending = PendingPair(new_id())
        # The same call, marked for the upstream as a shadow copy so its operators can tell.
        copy = ctx.shadow_copy(pending.pair_id)
        for variant in targets:
            if not self.sampler.admit(bucket):
                self._count(variant, "dropped")
                task = asyncio.create_task(self._emit_dropped(variant, pending))
            else:
                self._in_flight += 1
                self._count(variant, "sent")
                task = asyncio.create_task(self._shadow(variant, copy, pending, bucket))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return pending

    async def _shadow(
        self, variant: str, ctx: RequestContext, pending: PendingPair, bucket: str
    ) -> None:
        try:
            record = await self._run(variant, ctx)
        except asyncio.CancelledError:
            raise
        except Exception:  # a shadow must never take anything else down
            log.exception("shadow copy to %s/%s failed unexpectedly", self.model.name, variant)
            self._count(variant, "failed")
            return
        finally:
            self._in_flight -= 1
            self.sampler.release(bucket)
        self._count(variant, "completed" if record.ok else "failed")
        primary = await pending.primary()
        self._publish(ShadowPair(pending.pair_id, primary, record))

    async def _emit_dropped(self, variant: str, pending: PendingPair) -> None:
        primary = await pending.primary()
        self._publish(
            ShadowPair(
                pending.pair_id,
                primary,
                None,
                dropped_reason=f"concurrency cap ({self._cap}, shared by batch-size bucket)",
            )
        )

    def _publish(self, pair: ShadowPair) -> None:
        for sink in self._sinks:
            try:
                sink(pair)
            except Exception:
                log.exception("pair sink failed")

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
