"""The interface every source of tokens implements.

A backend receives one OpenAI request body and answers with a :class:`BackendResponse`: either
a complete body (non-streaming, or an upstream error to pass through) or a stream of SSE
event payloads. Routing, failover and shadowing in ``proxy`` only ever see this interface, so
an HTTP upstream (vLLM, SGLang, TGI, llama.cpp server) and the in-process engine are
interchangeable.

Exceptions (the only ones a backend may raise)::

    BackendError
    ├── BackendUnavailable        before the first byte: failover to the next variant is safe
    │   ├── BackendConnectError   connection refused / DNS / reset while connecting
    │   ├── BackendTimeout        no response headers within the read timeout
    │   └── BackendServerError    the backend answered 5xx before any body byte
    └── BackendStreamError        the stream broke after it started: too late to fail over
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Backend",
    "BackendConnectError",
    "BackendError",
    "BackendRequest",
    "BackendResponse",
    "BackendServerError",
    "BackendStreamError",
    "BackendTimeout",
    "BackendUnavailable",
    "Endpoint",
    "ExecutionInfo",
    "MemoryReport",
    "TokenCallback",
]

Endpoint = Literal["chat", "completions", "responses", "messages", "embeddings"]
"""The OpenAI-compatible route a request came in on (``messages`` is Anthropic's Messages API):
backends that do not serve one answer it with a 404 in the client's error shape."""


class BackendError(Exception):
    """Base of every error a backend raises."""


class BackendUnavailable(BackendError):
    """Nothing was received yet: another variant may serve this request instead."""


class BackendConnectError(BackendUnavailable):
    pass


class BackendTimeout(BackendUnavailable):
    pass


class BackendServerError(BackendUnavailable):
    def __init__(self, status: int, body: bytes = b"", retry_after: bytes = b"") -> None:
        super().__init__(f"backend answered HTTP {status}")
        self.status = status
        self.body = body
        self.retry_after = retry_after
        """The upstream's ``Retry-After`` header value, if it sent one."""


class BackendStreamError(BackendError):
    """The stream broke part-way; what was already sent to the client stays sent."""


TokenCallback = Callable[[int], None]
"""``on_tokens(n)``: ``n`` more tokens were generated for this request (may be called from a
worker thread; must be cheap and never raise)."""


@dataclass(frozen=True, slots=True)
class MemoryReport:
    """One variant's memory, in bytes (see ``backends/engine/memory.py`` for the method)."""

    weights_bytes: int
    """Storage of the variant's parameters, buffers and quantization state."""
    peak_bytes: int
    """Peak while serving, with the scope given by ``method``."""
    method: str


@dataclass(slots=True)
class BackendRequest:
    """One call to a backend.

    ``body`` is the client's parsed JSON body; a backend must not mutate it (shadow copies
    share it) and substitutes its own served model name when it builds the upstream call.
    ``headers`` holds the headers to propagate (W3C ``traceparent``, request id).
    ``attempt_id`` is unique per upstream attempt. ``on_tokens`` is called by backends that
    declare ``reports_tokens`` as tokens are generated (the in-process engine, per decode
    step): energy attribution then follows the real decode steps, not streamed chunks.
    """

    endpoint: Endpoint
    body: Mapping[str, Any]
    stream: bool
    request_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    attempt_id: str = ""
    on_tokens: TokenCallback | None = None


@dataclass(slots=True)
class ExecutionInfo:
    """What the backend learnt while serving: filled in as it goes, read when it is done."""

    batch_size: int | None = None
    """Requests decoded together with this one (the largest batch it was part of)."""
    gpu_uuids: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BackendResponse:
    """A backend's answer.

    For ``stream=True`` requests answered with status 200, ``events`` yields each SSE event's
    ``data`` payload as bytes (the JSON chunk, and finally ``b"[DONE]"``) — or, for the APIs
    whose streams are typed events (Responses, Messages: ``typed_events``), each whole event
    block (``event: <type>\ndata: <json>``, without the blank line) up to the terminal event,
    so that the proxy forwards it byte for byte; a backend that
    receives events in bursts may instead set ``event_batches``, which yields lists of the
    payloads that arrived together, so the proxy can forward a burst with one write. Otherwise
    ``body`` holds the whole response body. ``status`` may be a 4xx that the proxy passes
    through.
    """

    status: int
    body: bytes = b""
    events: AsyncIterator[bytes] | None = None
    event_batches: AsyncIterator[list[bytes]] | None = None
    content_type: str = "application/json"
    info: ExecutionInfo = field(default_factory=ExecutionInfo)
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """Upstream response headers the client should see (``Retry-After``, rate limits)."""
    parsed: dict[str, Any] | None = None
    """The body parsed as JSON, once the proxy has checked it (parsed once, read twice)."""

    @property
    def streaming(self) -> bool:
        return self.events is not None or self.event_batches is not None

    def batches(self) -> AsyncIterator[list[bytes]]:
        """The stream as bursts, whichever way the backend provides it."""
        if self.event_batches is not None:
            return self.event_batches
        if self.events is None:
            raise ValueError("not a streaming response")
        return _one_by_one(self.events)

    async def aclose(self) -> None:
        """Release the connection or batch slot behind the stream early (client went away)."""
        for stream in (self.events, self.event_batches):
            if stream is not None and hasattr(stream, "aclose"):
                await stream.aclose()


async def _one_by_one(events: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    async for event in events:
        yield [event]


@runtime_checkable
class Backend(Protocol):
    """A source of completions for one variant.

    Capabilities are declared, not probed: ``reports_tokens`` says whether the backend calls
    ``request.on_tokens`` itself (else the proxy counts streamed chunks), and :meth:`memory`
    returns the variant's memory residency when the backend can know it (``None`` otherwise).
    """

    name: str
    reports_tokens: bool

    async def send(self, request: BackendRequest) -> BackendResponse:
        """Serve one request. Raises :class:`BackendUnavailable` before the first byte."""
        ...

    def memory(self) -> MemoryReport | None:
        """The variant's weights and peak memory, or ``None`` when this backend cannot tell
        (an HTTP upstream). May raise before :meth:`start`."""
        ...

    async def ready(self) -> bool:
        """Cheap readiness check (no inference): is the backend reachable and loaded?"""
        ...

    async def start(self) -> None:
        """Acquire resources (connection pools, model weights, child processes)."""
        ...

    async def aclose(self) -> None:
        """Release everything acquired in :meth:`start`."""
        ...
