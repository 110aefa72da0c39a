"""Canary evaluation traffic: the proxy asks every variant the same graded questions itself.

Every ``60 / scoring.canary.rate_per_minute`` seconds, per model, the next item of the canary
set (by default the synthetic multi-hop generator's held-out split; optionally the shipped
GSM8K test set) is sent to **every** variant, pinned to it, with role ``canary``. The same
item to all variants makes their verdicts paired (McNemar), like shadow pairs.

Canaries go through the same :class:`~proxy.service.RequestService` path as user
requests (``service.handle`` with a pinned variant and a discarded response), so they are
routed, timed, recorded and metered exactly like user traffic; they are never shadowed.

Low priority: at most ``max_in_flight`` canaries per variant at once, and a variant that
already serves ``busy_in_flight`` user requests is skipped for that round (counted as
``skipped_busy``): canaries take idle capacity, never a busy variant's.

Budgeted: one :class:`~proxy.canary_budget.CanaryBudget` for all models paces the rounds so
that canaries use at most ``cpu_budget`` cores of process CPU and ``busy_budget`` of each
variant's time on average; ``rate_per_minute`` is the upper bound. Each model's loop waits for
its round to finish, measures it (process CPU time over the round, its longest probe) and
charges the budget before scheduling the next. :meth:`CanaryRunner.budget_status` says what
was used, for the status page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.canary_budget import CanaryBudget, CanaryBudgetStatus
from proxy.config import ModelConfig, ProxySettings
from proxy.context import RequestContext
from proxy.errors import APIError
from proxy.service import RequestService
from proxy.streaming import discard
from scoring.config import CanaryConfig
from scoring.datasets import multihop
from scoring.datasets.gsm8k import iter_gsm8k
from telemetry.scoring_metrics import ScoringMetrics

__all__ = ["CanaryItem", "CanaryRunner", "load_canary_items"]

log = logging.getLogger("quanttrap.canary")

_MULTIHOP_ITEMS = 512
"""Distinct multi-hop problems in the canary cycle (depths 1-8, 64 of each)."""

Register = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class CanaryItem:
    """One canary question: its id in the dataset, the chat messages, the reference and the
    reasoning steps the reference takes (``depth``: accuracy is reported by depth)."""

    item_id: str
    messages: tuple[dict[str, str], ...]
    expected: str
    dataset: str
    depth: int | None = None


def load_canary_items(config: CanaryConfig) -> list[CanaryItem]:
    """The canary cycle for ``config.dataset`` (blocking: reads or generates the set)."""
    if config.dataset == "gsm8k":
        return [
            CanaryItem(
                f"gsm8k/test/{item.index}",
                ({"role": "user", "content": item.question},),
                item.answer,
                "gsm8k",
                item.depth,
            )
            for item in iter_gsm8k()
        ]
    items = multihop.generate(_MULTIHOP_ITEMS, seed=config.seed, split="eval")
    return [
        CanaryItem(
            f"multihop/seed{config.seed}/{i}",
            tuple(multihop.as_chat_messages(item)),
            str(item.answer),
            "multihop",
            item.depth,
        )
        for i, item in enumerate(items)
    ]


async def _timed(probe: Coroutine[Any, Any, None]) -> float:
    """Run a canary probe (which never raises); return how long it occupied the variant (s)."""
    started = time.monotonic()
    await probe
    return time.monotonic() - started


class CanaryRunner:
    """Sends canary rounds per model until stopped (see the module docstring)."""

    def __init__(
        self,
        service: RequestService,
        settings: ProxySettings,
        *,
        register: Register,
        metrics: ScoringMetrics | None = None,
        items: Sequence[CanaryItem] | None = None,
    ) -> None:
        self.config = settings.scoring.canary
        self._service = service
        self._models = settings.models
        self._register = register
        self._metrics = metrics
        self._items: Sequence[CanaryItem] = items or ()
        self._boot = uuid.uuid4().hex[:8]  # round keys never collide with a previous run's
        self.in_flight: dict[tuple[str, str], int] = {
            (m.name, v.name): 0 for m in settings.models for v in m.variants
        }
        self.counts: dict[tuple[str, str, str], int] = {}
        """(model, variant, outcome) -> probes; outcome: sent, completed, failed,
        skipped_busy, skipped_in_flight."""
        self._loops: list[asyncio.Task[None]] = []
        self._probes: set[asyncio.Task[float]] = set()
        self.budget = CanaryBudget(
            self.config.cpu_budget, self.config.busy_budget, clock=time.monotonic
        )

    def budget_status(self) -> CanaryBudgetStatus:
        """The canary budget and its measured use (for the status page)."""
        return self.budget.status()

    async def start(self) -> None:
        if not self._items:
            self._items = await asyncio.to_thread(load_canary_items, self.config)
        if not self._items:
            raise ValueError(f"canary dataset {self.config.dataset!r} has no items")
        for model in self._models:
            self._loops.append(asyncio.create_task(self._run(model), name=f"canary-{model.name}"))

    async def stop(self) -> None:
        tasks = [*self._loops, *self._probes]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()

    async def _run(self, model: ModelConfig) -> None:
        interval = 60.0 / self.config.rate_per_minute
        round_no = 0
        next_at = time.monotonic()
        while True:
            next_at = self.budget.next_start(next_at + interval)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - next_at > interval:
                next_at = time.monotonic()  # fell behind (a stalled loop): do not burst
            started, cpu = time.monotonic(), time.process_time()
            probes = self._launch(model, round_no)
            round_no += 1
            busy = 0.0
            if probes:
                done, _ = await asyncio.wait(probes)
                busy = max(task.result() for task in done)
            self.budget.charge(started, time.process_time() - cpu, busy, interval)

    def launch_round(self, model: ModelConfig, round_no: int) -> int:
        """Send round ``round_no``'s item to every variant that has room; return how many."""
        return len(self._launch(model, round_no))

    def _launch(self, model: ModelConfig, round_no: int) -> list[asyncio.Task[float]]:
        item = self._items[round_no % len(self._items)]
        pair_key = f"canary-{self._boot}-{round_no}"
        launched: list[asyncio.Task[float]] = []
        for variant in model.variants:
            key = (model.name, variant.name)
            mine = self.in_flight[key]
            if mine >= self.config.max_in_flight:
                self._count(key, "skipped_in_flight")
                continue
            users = self._service.in_flight.get(key, 0) - mine
            if users >= self.config.busy_in_flight:
                self._count(key, "skipped_busy")
                continue
            self.in_flight[key] = mine + 1
            self._count(key, "sent")
            task = asyncio.create_task(
                _timed(self._probe(model.name, variant.name, item, pair_key))
            )
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)
            launched.append(task)
        return launched

    async def _probe(self, model: str, variant: str, item: CanaryItem, pair_key: str) -> None:
        key = (model, variant)
        request_id = f"canary-{uuid.uuid4().hex[:16]}"
        self._register(request_id, item.item_id, pair_key)
        body: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in item.messages],
            "max_tokens": self.config.max_tokens,
            "temperature": 0,
        }
        if self.config.stream:
            body["stream"] = True
        ctx = RequestContext(
            "chat",
            "chat",
            request_id,
            body,
            role="canary",
            pinned=variant,
            forward_headers={"x-request-id": request_id, "x-quanttrap-role": "canary"},
            expected_answer=item.expected,
            dataset=item.dataset,
            reference_depth=item.depth,
        )
        outcome = "completed"
        try:
            await self._service.handle(ctx, discard)
        except APIError as exc:
            outcome = "failed"
            log.info("canary to %s/%s failed: %s", model, variant, exc.message)
        except Exception:
            outcome = "failed"
            log.exception("canary to %s/%s failed unexpectedly", model, variant)
        finally:
            self.in_flight[key] -= 1
        self._count(key, outcome)

    def _count(self, key: tuple[str, str], outcome: str) -> None:
        full = (key[0], key[1], outcome)
        self.counts[full] = self.counts.get(full, 0) + 1
        if self._metrics is not None:
            self._metrics.canary(key[0], key[1], outcome)
