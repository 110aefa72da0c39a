"""One request, one context: what a request *is*, built once at the route.

The route reads the HTTP request once into a :class:`RequestContext` — ids, role, operation,
the headers the proxy honours, evaluation tags, timings — and every later stage reads it:
routing, each upstream attempt (a fresh attempt id per failover, shadow copy and canary),
telemetry's observer and, at the end, the one :class:`~core.records.RequestRecord`. Shadow
copies and canary probes are contexts of their own, derived from (or shaped like) a user's.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backends.base import Endpoint
from core.records import Operation, Role

__all__ = ["Attempt", "RequestContext", "new_id"]


_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def new_id() -> str:
    """A fresh id, unique across processes: 16 random hex digits drawn once per process, then
    a counter (32 hex digits in all). Cheaper than ``uuid4`` (no system call per id), which
    matters on the hot path: every request and every attempt gets one."""
    return f"{_PREFIX}{next(_COUNTER):016x}"


@dataclass(slots=True)
class Attempt:
    """One upstream attempt of a request: its own id, variant and start time."""

    attempt_id: str
    variant: str
    started: float
    """``time.perf_counter()`` when the attempt began."""
    started_at: float
    """Unix time when the attempt began."""


@dataclass(slots=True)
class RequestContext:
    """Everything the proxy knows about one request (or one shadow copy, or one canary).

    Mutable only in its flags (``disconnected``, ``ending``); everything else is set at the
    route (or by :meth:`shadow_copy`) and read by every stage.
    """

    operation: Operation
    endpoint: Endpoint
    request_id: str
    body: dict[str, Any]
    """The body as it goes upstream (evaluation tags removed); never mutated."""
    started: float = field(default_factory=time.perf_counter)
    """``time.perf_counter()`` when the request arrived."""
    started_at: float = field(default_factory=time.time)
    """Unix time when the request arrived."""
    role: Role = "primary"
    pinned: str | None = None
    """Variant pinned by the client (``X-Quanttrap-Variant``): never fails over."""
    trace_headers: Mapping[str, str] = field(default_factory=dict)
    """The client's ``traceparent``/``tracestate``, continued upstream."""
    forward_headers: Mapping[str, str] = field(default_factory=dict)
    """Other headers passed to the upstream as they came (request id and the like)."""
    session_id: str | None = None
    """The configured session header's value (``telemetry.session_header``)."""
    pair_id: str | None = None
    """Set on a mirrored request and its shadow copies: ties them together."""
    expected_answer: str | None = None
    """Reference answer of evaluation traffic (header ``X-Quanttrap-Expected`` or
    ``metadata.expected_answer``); never forwarded to the model."""
    dataset: str | None = None
    reference_depth: int | None = None
    """Reasoning steps the reference needs; never forwarded to the model."""
    agent_turns_before: int = 0
    """This call's position in its agent task, counted from the history it carries."""
    disconnected: bool = False
    """Set when the client hung up before the response ended."""
    ending: bool = False
    """Set just before the last body message: a hang-up after it needs no cancelling."""

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def model(self) -> str:
        """The model the client asked for (validated to be a string at the route)."""
        model = self.body.get("model")
        return model if type(model) is str else ""

    def new_attempt(self, variant: str) -> Attempt:
        return Attempt(new_id(), variant, time.perf_counter(), time.time())

    def shadow_copy(self, pair_id: str) -> RequestContext:
        """The same call as a shadow copy: role ``shadow``, its own clock, the pair's id."""
        return RequestContext(
            operation=self.operation,
            endpoint=self.endpoint,
            request_id=self.request_id,
            body=self.body,
            role="shadow",
            trace_headers=self.trace_headers,
            forward_headers={**self.forward_headers, "x-quanttrap-role": "shadow"},
            session_id=self.session_id,
            pair_id=pair_id,
            expected_answer=self.expected_answer,
            dataset=self.dataset,
            reference_depth=self.reference_depth,
            agent_turns_before=self.agent_turns_before,
        )
