"""The per-request handle: what the proxy calls while one request runs.

``Telemetry.start_request`` returns a :class:`RequestTelemetry`; the proxy calls
:meth:`~RequestTelemetry.tokens` per streamed chunk, :meth:`~RequestTelemetry.upstream_headers`
for the upstream call, :meth:`~RequestTelemetry.failover` when it moves to another variant,
and :meth:`~RequestTelemetry.finish` exactly once (in a ``finally``: also on errors and
cancellation). ``finish`` records every metric at once and returns a :class:`PendingRecord`;
awaiting it gives the :class:`RequestRecord` with ``energy_j`` filled in, which for a measured
GPU happens at the next energy sample (at most one sampling period later).

The base class is the no-op handle (telemetry disabled). Every method of the real handle
catches its own errors: telemetry never fails a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

from scoring.records import RequestRecord
from telemetry.attribution import EnergyShare, EnergyTicket

__all__ = ["NOOP_REQUEST", "PendingRecord", "RequestTelemetry"]


class PendingRecord:
    """A finished request's record, waiting for its energy figure.

    ``await pending`` (or ``await pending.wait()``) returns the record with ``energy_j`` and
    ``energy_method`` set (and the fields telemetry learnt: trace and session ids, prior
    agent turns, batch size where the record had none); it never blocks the event loop, and
    after ``timeout_s`` it returns the record with ``energy_j=None, energy_method="none"``
    (the figure still reaches the metrics and the span when the sample arrives). The energy
    histogram and the span end do not depend on anybody awaiting: they happen when the
    sample arrives.
    """

    __slots__ = ("_changes", "_record", "_ticket", "_timeout")

    def __init__(
        self,
        record: RequestRecord,
        ticket: EnergyTicket | None = None,
        timeout_s: float = 2.0,
        changes: dict[str, Any] | None = None,
    ) -> None:
        self._record = record
        self._ticket = ticket
        self._timeout = timeout_s
        self._changes = changes

    def done(self) -> bool:
        return self._ticket is None or self._ticket.done()

    def record_nowait(self) -> RequestRecord:
        """The record as known now (energy ``None``/``none`` if not resolved yet)."""
        return self._complete(None if self._ticket is None else self._ticket.result())

    async def wait(self) -> RequestRecord:
        ticket = self._ticket
        if ticket is None:
            return self._complete(None)
        share = ticket.result()
        if share is None:
            share = await ticket.wait(self._timeout)
        return self._complete(share)

    def __await__(self) -> Any:
        return self.wait().__await__()

    def on_ready(self, fn: Callable[[RequestRecord], None]) -> None:
        """Call ``fn(record)`` on the running event loop once the energy figure is known, or
        after the timeout with ``energy_method="none"``: exactly once, and no task per request
        (a loop callback, woken from the sampler thread)."""
        ticket = self._ticket
        if ticket is None or ticket.done():
            fn(self.record_nowait())
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

    def _complete(self, share: EnergyShare | None) -> RequestRecord:
        if self._ticket is None and not self._changes:
            return self._record
        changes = dict(self._changes) if self._changes else {}
        if self._ticket is not None:
            measured = share is not None and share.energy_j is not None
            changes["energy_j"] = share.energy_j if share is not None and measured else None
            changes["energy_method"] = share.method if share is not None and measured else "none"
        return dataclasses.replace(self._record, **changes)


class RequestTelemetry:
    """One request's telemetry handle. This base class does nothing (telemetry disabled)."""

    __slots__ = ()

    @property
    def trace_id(self) -> str | None:
        """Trace id the client sent in ``traceparent`` (32 hex digits), else ``None``."""
        return None

    @property
    def session_id(self) -> str | None:
        """The session header's value (truncated to 128 characters), else ``None``."""
        return None

    @property
    def agent_turns_before(self) -> int:
        """Prior assistant and tool turns in the request's ``messages``."""
        return 0

    @property
    def agent_chain_position(self) -> int:
        """Calls seen before this one with the same session id (or client trace id)."""
        return 0

    def first_token(self) -> None:
        """The first token reached the proxy (``tokens`` marks it too if not called)."""

    def tokens(self, n: int = 1) -> None:
        """``n`` more generated tokens arrived (call per streamed chunk; about 1 µs)."""

    def failover(self, to_variant: str, error_type: str | None = None) -> None:
        """The current variant failed before any byte; the request moves to ``to_variant``."""

    def upstream_headers(self) -> dict[str, str]:
        """Headers to add to the upstream call (W3C ``traceparent``/``tracestate``)."""
        return {}

    def finish(
        self,
        record: RequestRecord,
        *,
        response_id: str | None = None,
        response_model: str | None = None,
    ) -> PendingRecord:
        """Record everything about the finished request; returns the pending record."""
        return PendingRecord(record)


NOOP_REQUEST = RequestTelemetry()
