"""Splitting each GPU's measured energy among the requests that shared it.

A GPU serving a batch spends energy on all its requests at once, so a request's energy is an
*apportionment*, not a measurement. The rule, per GPU and per sampling interval (between two
reads of its cumulative counter):

- the requests *in flight* in the interval are those of the variants placed on that GPU that
  were running at any moment of it (started before its end, not finished before its start);
- if any of them produced tokens in the interval, the interval's energy is split in
  proportion to the tokens each produced; requests that produced none get nothing;
- if none produced tokens (prefill, queueing, a non-streaming upstream that reports tokens
  only at the end), it is split equally among them;
- with nothing in flight the interval is *idle*, booked to the GPU's variants equally.

So ``sum(attributed) + sum(idle) == sum(counter deltas)`` for every interval (exactly, up to
float rounding; tested with random schedules), and idle power is **not** included in a
request's energy. An interval that cannot be measured (a failed read, a counter that went
backwards) is booked to nobody: the requests in flight then get ``energy_j=None`` and method
``none`` rather than an undercount.

Threads: :meth:`request_started`, :meth:`tokens` and :meth:`request_finished` may be called
from any thread (event loop, engine worker), each O(1) under one short lock; :meth:`sample`
is called by the sampler thread only. A request's final figure is known only at the sample
after it finished, so :meth:`request_finished` returns an :class:`EnergyTicket` resolved then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from telemetry.energy_source import EnergyMethod, GpuReading, MeasuredMethod

__all__ = ["EnergyAttributor", "EnergyShare", "EnergyTicket", "IntervalReport"]

_log = logging.getLogger("quanttrap.telemetry")
_TICKETS_LOCK = threading.Lock()
"""Shared by all tickets: each critical section is a few operations, and a lock per ticket
would be one more allocation per request."""


@dataclass(frozen=True, slots=True)
class EnergyShare:
    """Energy apportioned to one request.

    ``energy_j`` is joules (its share of every interval it was in flight; idle excluded),
    ``None`` when it could not be measured; ``method`` says how it was obtained;
    ``intervals`` counts the sampling intervals it spanned.
    """

    energy_j: float | None
    method: EnergyMethod
    intervals: int = 0


_UNMEASURED = EnergyShare(None, "none", 0)


class EnergyTicket:
    """The future energy share of a finished request, resolved by the sampler thread."""

    __slots__ = ("_callbacks", "_share")

    def __init__(self) -> None:
        self._share: EnergyShare | None = None
        self._callbacks: list[Callable[[EnergyShare], None]] = []

    def done(self) -> bool:
        return self._share is not None

    def result(self) -> EnergyShare | None:
        """The share if resolved, else ``None`` (never blocks)."""
        return self._share

    def add_done_callback(self, fn: Callable[[EnergyShare], None]) -> None:
        """Call ``fn(share)`` once resolved: now if already, else in the resolving thread."""
        with _TICKETS_LOCK:
            share = self._share
            if share is None:
                self._callbacks.append(fn)
                return
        fn(share)

    async def wait(self, timeout: float | None = None) -> EnergyShare | None:
        """Await the share without blocking the event loop; ``None`` after ``timeout`` s."""
        if self._share is not None:
            return self._share
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[EnergyShare | None] = loop.create_future()

        def _set(share: EnergyShare | None) -> None:
            if not fut.done():
                fut.set_result(share)

        def _wake(share: EnergyShare) -> None:
            # RuntimeError: the loop closed meanwhile, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set, share)

        # A plain timer rather than asyncio.wait_for: no extra task per waiting request.
        timer = None if timeout is None else loop.call_later(timeout, _set, None)
        self.add_done_callback(_wake)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()

    def resolve(self, share: EnergyShare) -> None:
        """Set the share (first call wins) and run the callbacks in this thread."""
        with _TICKETS_LOCK:
            if self._share is not None:
                return
            self._share = share
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(share)
            except Exception:  # one consumer's bug must not starve the others
                _log.exception("energy ticket callback failed")


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """What one :meth:`EnergyAttributor.sample` booked, in millijoules per variant group."""

    measured_mj: float
    """Sum of the counter deltas of the GPUs measured in this interval."""
    attributed_mj: Mapping[str, float]
    idle_mj: Mapping[str, float]
    methods: Mapping[str, MeasuredMethod]
    """Per group: ``nvml_power`` if any of its GPUs was integrated, else ``nvml_counter``."""
    unmeasured_gpus: tuple[str, ...]


class _Slot:
    __slots__ = ("complete", "energy_mj", "finished", "group", "intervals", "iv_tokens",
                 "power", "ticket", "tokens")  # fmt: skip

    def __init__(self, group: str) -> None:
        self.group = group
        self.tokens = 0
        self.iv_tokens = 0
        self.energy_mj = 0.0
        self.intervals = 0
        self.finished = False
        self.complete = True
        self.power = False
        self.ticket: EnergyTicket | None = None


class EnergyAttributor:
    """Books GPU energy to requests. ``groups`` maps a variant key to its GPUs' UUIDs."""

    def __init__(self, groups: Mapping[str, Sequence[str]]) -> None:
        self._group_gpus = {g: tuple(u) for g, u in groups.items() if u}
        gpu_groups: dict[str, list[str]] = {}
        for g, uuids in self._group_gpus.items():
            for u in uuids:
                gpu_groups.setdefault(u, []).append(g)
        self._gpu_groups = {u: tuple(gs) for u, gs in gpu_groups.items()}
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._by_group: dict[str, dict[int, _Slot]] = {g: {} for g in self._group_gpus}
        self._last_mj: dict[str, float] = {}
        self._gpu_method: dict[str, MeasuredMethod] = {}

    def groups(self) -> Mapping[str, tuple[str, ...]]:
        return self._group_gpus

    @property
    def live(self) -> int:
        """Requests started and not finished yet."""
        with self._lock:
            return len(self._slots)

    def has_group(self, group: str) -> bool:
        return group in self._group_gpus

    def request_started(self, request_id: str, group: str) -> None:
        """Start booking energy to ``request_id`` (ignored for a group without GPUs).

        The key must be unique among the requests in flight (the proxy uses attempt ids):
        a key already metered raises ``ValueError`` rather than silently taking over the
        other request's slot, which would leave one of them with nobody's share.
        """
        members = self._by_group.get(group)
        if members is None:
            return
        slot = _Slot(group)
        with self._lock:
            if request_id in self._slots:
                raise ValueError(f"energy key {request_id!r} is already being metered")
            self._slots[request_id] = slot
            members[id(slot)] = slot

    def tokens(self, request_id: str, n: int) -> None:
        """``request_id`` produced ``n`` more tokens (thread-safe, O(1))."""
        with self._lock:
            slot = self._slots.get(request_id)
            if slot is not None:
                slot.tokens += n

    def request_finished(self, request_id: str) -> EnergyTicket:
        """Stop booking; the ticket resolves at the next sample (which closes the interval)."""
        ticket = EnergyTicket()
        with self._lock:
            slot = self._slots.pop(request_id, None)
            if slot is not None:
                slot.finished = True
                slot.ticket = ticket
        if slot is None:
            ticket.resolve(_UNMEASURED)
        return ticket

    def sample(
        self,
        readings: Sequence[GpuReading],
        on_booked: Callable[[IntervalReport], None] | None = None,
    ) -> IntervalReport:
        """Close the current interval with these readings and book its energy.

        ``on_booked(report)`` runs after booking and *before* the finished requests' tickets
        resolve, so the exported counters already hold every joule a finished request's
        record reports (a scrape never sees a request's energy ahead of the totals).
        """
        snapshot: dict[str, list[_Slot]] = {}
        finished: list[_Slot] = []
        with self._lock:
            for group, members in self._by_group.items():
                slots = list(members.values())
                for s in slots:
                    s.iv_tokens, s.tokens = s.tokens, 0
                    s.intervals += 1
                    if s.finished:
                        del members[id(s)]
                        finished.append(s)
                snapshot[group] = slots
        by_uuid = {r.uuid: r for r in readings}
        attributed = dict.fromkeys(self._group_gpus, 0.0)
        idle = dict.fromkeys(self._group_gpus, 0.0)
        measured = 0.0
        unmeasured: list[str] = []
        for gpu, groups in self._gpu_groups.items():
            on_gpu = [s for g in groups for s in snapshot[g]]
            reading = by_uuid.get(gpu)
            last = self._last_mj.pop(gpu, None)
            if reading is not None:
                self._last_mj[gpu] = reading.energy_mj
                self._gpu_method[gpu] = reading.method
            delta = None if reading is None or last is None else reading.energy_mj - last
            if delta is None or delta < 0:
                # No baseline, a failed read or a counter reset: this interval is unknown.
                if reading is None or last is not None:
                    unmeasured.append(gpu)
                for s in on_gpu:
                    s.complete = False
                continue
            measured += delta
            if not on_gpu:
                _split(delta, [1] * len(groups), groups, idle)
                continue
            weights = [s.iv_tokens for s in on_gpu]
            if not any(weights):
                weights = [1] * len(on_gpu)
            shares = _shares(delta, weights)
            for s, share in zip(on_gpu, shares, strict=True):
                s.energy_mj += share
                attributed[s.group] += share
                if reading is not None and reading.method == "nvml_power":
                    s.power = True
        report = IntervalReport(
            measured_mj=measured,
            attributed_mj=attributed,
            idle_mj=idle,
            methods={g: self._group_method(g) for g in self._group_gpus},
            unmeasured_gpus=tuple(unmeasured),
        )
        try:
            if on_booked is not None:
                on_booked(report)
        finally:  # a failing consumer must not leave finished requests waiting forever
            for s in finished:
                assert s.ticket is not None
                s.ticket.resolve(_share_of(s))
        return report

    def _group_method(self, group: str) -> MeasuredMethod:
        methods = {self._gpu_method.get(u) for u in self._group_gpus[group]}
        return "nvml_power" if "nvml_power" in methods else "nvml_counter"

    def group_method(self, group: str) -> MeasuredMethod | None:
        """The method of ``group``'s latest readings, ``None`` before the first one."""
        if group not in self._group_gpus:
            return None
        if not any(u in self._gpu_method for u in self._group_gpus[group]):
            return None
        return self._group_method(group)

    def close(self) -> None:
        """Resolve every pending ticket as unmeasured and forget all requests."""
        with self._lock:
            pending = [s for m in self._by_group.values() for s in m.values()]
            for m in self._by_group.values():
                m.clear()
            self._slots.clear()
        for s in pending:
            if s.ticket is not None:
                s.ticket.resolve(_UNMEASURED)


def _shares(total: float, weights: Sequence[int]) -> list[float]:
    """``total`` split in proportion to ``weights``; the rounding residue goes to the
    largest weight so that the shares add up to ``total``."""
    wsum = sum(weights)
    shares = [total * w / wsum for w in weights]
    k = max(range(len(weights)), key=weights.__getitem__)
    shares[k] += total - sum(shares)
    return shares


def _split(
    total: float, weights: Sequence[int], keys: Sequence[str], into: dict[str, float]
) -> None:
    for key, share in zip(keys, _shares(total, weights), strict=True):
        into[key] += share


def _share_of(slot: _Slot) -> EnergyShare:
    if not slot.complete:
        return EnergyShare(None, "none", slot.intervals)
    method: MeasuredMethod = "nvml_power" if slot.power else "nvml_counter"
    return EnergyShare(slot.energy_mj / 1000.0, method, slot.intervals)
