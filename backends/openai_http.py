"""An OpenAI-compatible HTTP upstream: vLLM, SGLang, TGI, llama.cpp server, OpenAI itself.

One pool of keep-alive connections per upstream (:mod:`backends.http1`), opened in
:meth:`OpenAIHTTPBackend.start`. Not httpx, whose pool is a documented bottleneck for Python
proxies under concurrency, and not aiohttp, which costs twice the CPU per request and 1.6× per
streamed chunk (all three measured side by side in ``benchmarks/upstream_client.py``).

Timeouts: ``connect_timeout_s`` bounds the TCP/TLS connect, ``read_timeout_s`` bounds every wait
for bytes, including the wait for the response to start; a timeout before the response started
is a :class:`BackendTimeout` (failover is safe), one during a stream a
:class:`BackendStreamError`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from backends.base import (
    BackendConnectError,
    BackendRequest,
    BackendResponse,
    BackendServerError,
    BackendStreamError,
    BackendTimeout,
    MemoryReport,
)
from backends.config import OpenAIBackendConfig
from backends.http1 import (
    BodyTooLarge,
    ConnectError,
    ConnectionPool,
    ConnectTimeout,
    HTTPError,
    ReadTimeout,
    Response,
)

__all__ = ["OpenAIHTTPBackend"]

_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "responses": "/responses",
    "messages": "/messages",
    "embeddings": "/embeddings",
}
_TYPED_EVENTS = frozenset({"responses", "messages"})
"""Endpoints whose streams are typed events (``event:`` lines), ending with a terminal one."""
_TERMINAL_EVENTS = (
    b"event: response.completed",
    b"event: response.failed",
    b"event: response.incomplete",
    b"event: message_stop",
    b"event: error",
)
_CLIENT_HEADERS = ("retry-after", "x-ratelimit-", "anthropic-ratelimit-", "retry-after-ms")
"""Upstream response headers passed on to the client (prefixes): agents back off by them."""
_READY_CACHE_S = 2.0
_MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest non-streamed answer the proxy holds (streams pass through in pieces)."""


class OpenAIHTTPBackend:
    """Serves a variant by calling an OpenAI-compatible server over HTTP."""

    reports_tokens = False

    def __init__(self, name: str, config: OpenAIBackendConfig) -> None:
        self.name = name
        self.config = config
        url = urlsplit(config.base_url.rstrip("/"))
        self._origin = f"{url.scheme}://{url.netloc}"
        self._path = url.path
        self._pool: ConnectionPool | None = None
        self._auth: tuple[str, str] | None = None
        self._ready_at = 0.0
        self._ready = False

    async def start(self) -> None:
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env, "")
            if not key:
                raise RuntimeError(
                    f"variant {self.name!r}: environment variable "
                    f"{self.config.api_key_env} (backend.api_key_env) is not set"
                )
            self._auth = ("Authorization", f"Bearer {key}")
        self._pool = ConnectionPool(
            self._origin,
            max_connections=self.config.max_connections,
            connect_timeout=self.config.connect_timeout_s,
            read_timeout=self.config.read_timeout_s,
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def memory(self) -> MemoryReport | None:
        return None  # another process's memory: declare it in scoring.memory_gb

    async def ready(self) -> bool:
        """``GET {base_url}/models``, cached for two seconds: cheap, never runs inference."""
        now = time.monotonic()
        if now - self._ready_at < _READY_CACHE_S:
            return self._ready
        pool = self._require_pool()
        try:
            async with asyncio.timeout(min(2.0, self.config.read_timeout_s)):
                resp = await pool.request("GET", self._path + "/models", self._headers({}))
                await resp.read()
            ok = resp.status < 500 and resp.status != 404
        except (TimeoutError, HTTPError):
            ok = False
        self._ready, self._ready_at = ok, time.monotonic()
        return ok

    async def send(self, request: BackendRequest) -> BackendResponse:
        pool = self._require_pool()
        body: Any = request.body
        if self.config.model is not None:
            body = {**body, "model": self.config.model}
        try:
            resp = await pool.request(
                "POST",
                self._path + _PATHS[request.endpoint],
                self._headers(request.headers),
                orjson.dumps(body),
            )
        except ReadTimeout as exc:
            raise BackendTimeout(f"{self.name}: no response within the timeout") from exc
        except ConnectTimeout as exc:
            raise BackendTimeout(f"{self.name}: {exc}") from exc
        except ConnectError as exc:
            raise BackendConnectError(f"{self.name}: {exc}") from exc
        except HTTPError as exc:
            raise BackendConnectError(f"{self.name}: {exc}") from exc

        if resp.status >= 500:
            retry_after = resp.headers.get("retry-after", "").encode("latin-1")
            raise BackendServerError(resp.status, await self._read_or_empty(resp), retry_after)
        content_type = resp.headers.get("content-type", "application/json")
        passed = _client_headers(resp.headers)
        if request.stream and resp.status == 200 and content_type.startswith("text/event-stream"):
            typed = request.endpoint in _TYPED_EVENTS
            return BackendResponse(
                status=200,
                event_batches=self._event_batches(resp, typed=typed),
                content_type="text/event-stream",
                headers=passed,
            )
        try:
            data = await resp.read(limit=_MAX_BODY_BYTES)
        except BodyTooLarge as exc:
            # Held whole in memory (and parsed): a runaway answer must not take the proxy down.
            raise BackendServerError(502, f"{self.name}: {exc}".encode()) from exc
        except HTTPError as exc:
            raise BackendTimeout(f"{self.name}: body not received: {exc}") from exc
        return BackendResponse(
            status=resp.status, body=data, content_type=content_type, headers=passed
        )

    async def _event_batches(self, resp: Response, *, typed: bool) -> AsyncIterator[list[bytes]]:
        """Yield the data payloads of the SSE events that arrived together; ends at [DONE].

        Takes whatever the socket has delivered and splits complete events with one
        ``bytes.split``: a line-by-line reader costs two awaits per event, and batching lets
        the proxy forward a burst of events with one write. For ``typed`` streams (Responses,
        Messages) each whole event block is yielded as it came, and the stream ends at its
        terminal event.
        """
        buffer = b""
        try:
            while data := await resp.receive():
                if b"\r" in data:  # SSE allows CRLF and CR line ends; normalise to LF
                    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                buffer = buffer + data if buffer else data
                if b"\n\n" not in buffer:
                    continue
                *events, buffer = buffer.split(b"\n\n")
                payloads = _blocks(events) if typed else _payloads(events)
                if payloads and _is_last(payloads[-1], typed):
                    # Only the body's framing can follow: keep the connection for reuse.
                    resp.release_when_done()
                    yield payloads
                    return
                if payloads:
                    yield payloads
        except HTTPError as exc:
            raise BackendStreamError(f"{self.name}: stream broke: {exc}") from exc
        finally:
            resp.close()  # a no-op once released; otherwise the upstream learns we left
        if buffer.strip():  # a last event without its blank line
            tail = _blocks([buffer]) if typed else _payloads([buffer])
            if tail:
                yield tail
                if _is_last(tail[-1], typed):
                    return
        end = "its terminal event" if typed else "[DONE]"
        raise BackendStreamError(f"{self.name}: upstream closed the stream before {end}")

    def _headers(self, extra: Any) -> list[tuple[str, str]]:
        headers = [("Content-Type", "application/json"), *extra.items()]
        if self._auth is not None:
            headers.append(self._auth)
        return headers

    def _require_pool(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError(f"backend {self.name!r} used before start()")
        return self._pool

    @staticmethod
    async def _read_or_empty(resp: Response) -> bytes:
        try:
            return await resp.read()
        except HTTPError:
            return b""


def _client_headers(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in headers.items()
        if name.startswith(_CLIENT_HEADERS)
    )


def _blocks(events: list[bytes]) -> list[bytes]:
    """Whole typed-event blocks, kept as they came (blank keep-alive blocks dropped)."""
    return [event for event in events if event.strip()]


def _is_last(event: bytes, typed: bool) -> bool:
    if not typed:
        return event == b"[DONE]"
    return event.startswith(_TERMINAL_EVENTS) or event.endswith(b"data: [DONE]")


def _payloads(events: list[bytes]) -> list[bytes]:
    """The ``data`` of each event; comments, ``event:``, ``id:`` and ``retry:`` lines dropped."""
    payloads = []
    for event in events:
        if event.startswith(b"data: ") and b"\n" not in event:
            payloads.append(event[6:])  # the usual one-line event
            continue
        data = [
            line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
        ]
        if data:
            payloads.append(b"\n".join(data))
    return payloads
