"""The per-attempt observer: what the pipeline calls while one upstream attempt runs.

``Telemetry.start_attempt`` returns a :class:`RequestObserver` for one attempt (a primary's
first choice, each failover, each shadow copy, each canary probe). The pipeline calls
:meth:`~RequestObserver.upstream_headers` for the upstream call, :meth:`~RequestObserver.tokens`
as tokens arrive, :meth:`~RequestObserver.failover` when the attempt failed before any byte and
the request moves on, and :meth:`~RequestObserver.finish` exactly once with the attempt's
:class:`~core.records.AttemptOutcome`. The observer never changes the request or its record:
``finish`` returns a :class:`PendingFacts`, which resolves to the :class:`TelemetryFacts` that
telemetry learnt (energy share, agent chain position, logical hops, span ids), at the next
energy sample for a measured GPU (at most one sampling period later). The pipeline builds the
record once from the context, the outcome and these facts.

The base class is the no-op observer (telemetry disabled). Every method of the real observer
catches its own errors: telemetry never fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.records import AttemptOutcome
from telemetry.attribution import EnergyShare, EnergyTicket

__all__ = ["NOOP_OBSERVER", "PendingFacts", "RequestObserver", "TelemetryFacts"]


@dataclass(frozen=True, slots=True)
class TelemetryFacts:
    """What telemetry learnt about one attempt, returned to the pipeline.

    ``energy_j`` is joules apportioned to the attempt (``None`` when no method measured it;
    ``energy_method`` then says ``none``); ``batch_size`` is the upstream's running batch
    scraped from its metrics when the backend itself did not report one.
    """

    energy_j: float | None = None
    energy_method: str = "none"
    batch_size: int | None = None
    trace_id: str | None = None
    """The client's W3C trace id (32 hex digits), if it sent a ``traceparent``."""
    span_id: str | None = None
    """The attempt's own span id (16 hex digits), when spans are recorded."""
    agent_chain_position: int = 0
    """Calls seen before this one with the same session id or client trace id; always 0 for
    shadow copies and canaries, which never advance a chain."""
    logical_hops: int | None = None


NO_FACTS = TelemetryFacts()


class PendingFacts:
    """An attempt's telemetry facts, waiting for its energy figure.

    ``await pending`` returns the facts with the energy share; it never blocks the event loop,
    and after ``timeout_s`` it returns them with ``energy_j=None, energy_method="none"`` (the
    figure still reaches the metrics and the span when the sample arrives).
    """

    __slots__ = ("_base", "_ticket", "_timeout")

    def __init__(
        self,
        base: TelemetryFacts = NO_FACTS,
        ticket: EnergyTicket | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        self._base = base
        self._ticket = ticket
        self._timeout = timeout_s

    def done(self) -> bool:
        return self._ticket is None or self._ticket.done()

    def facts_nowait(self) -> TelemetryFacts:
        """The facts as known now (energy ``None``/``none`` if not resolved yet)."""
        return self._complete(None if self._ticket is None else self._ticket.result())

    async def wait(self) -> TelemetryFacts:
        ticket = self._ticket
        if ticket is None:
            return self._base
        share = ticket.result()
        if share is None:
            share = await ticket.wait(self._timeout)
        return self._complete(share)

    def __await__(self) -> Any:
        return self.wait().__await__()

    def on_ready(self, fn: Callable[[TelemetryFacts], None]) -> None:
        """Call ``fn(facts)`` on the running event loop once the energy figure is known, or
        after the timeout with ``energy_method="none"``: exactly once, and no task per
        attempt (a loop callback, woken from the sampler thread)."""
        ticket = self._ticket
        if ticket is None or ticket.done():
            fn(self.facts_nowait())
            return
        loop = asyncio.get_running_loop()
        fired = False

        def fire(share: EnergyShare | None) -> None:
            nonlocal fired
            if fired:
                return
            fired = True
            timer.cancel()
            fn(self._complete(share))

        def from_sampler(share: EnergyShare) -> None:
            # RuntimeError: the loop closed meanwhile; nobody is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fire, share)

        timer = loop.call_later(self._timeout, fire, None)
        ticket.add_done_callback(from_sampler)

    def _complete(self, share: EnergyShare | None) -> TelemetryFacts:
        if self._ticket is None:
            return self._base
        if share is None or share.energy_j is None:
            base = self._base
            if base.energy_j is None and base.energy_method == "none":
                return base  # nothing to change: no copy on the hot path
            return dataclasses.replace(base, energy_j=None, energy_method="none")
        return dataclasses.replace(self._base, energy_j=share.energy_j, energy_method=share.method)


class RequestObserver:
    """One attempt's observer. This base class does nothing (telemetry disabled)."""

    __slots__ = ()

    def first_token(self) -> None:
        """The first generated token reached the proxy (``tokens`` marks it too)."""

    def tokens(self, n: int = 1) -> None:
        """``n`` more generated tokens arrived (per streamed chunk, or per decode step from
        the engine's worker thread; about 1 µs)."""

    def failover(self, to_variant: str, error_type: str | None = None) -> None:
        """This attempt failed before any byte; the request moves on to ``to_variant``."""

    def upstream_headers(self) -> dict[str, str]:
        """Headers to add to the upstream call (W3C ``traceparent``/``tracestate``)."""
        return {}

    def finish(self, outcome: AttemptOutcome) -> PendingFacts:
        """Record everything about the finished attempt; returns its pending facts."""
        return PendingFacts()


NOOP_OBSERVER = RequestObserver()
