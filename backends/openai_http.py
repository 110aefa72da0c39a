"""An OpenAI-compatible HTTP upstream: vLLM, SGLang, TGI, llama.cpp server, OpenAI itself.

One pooled ``aiohttp`` session per upstream, opened in :meth:`OpenAIHTTPBackend.start`. aiohttp
rather than httpx on this path because httpx's connection pool is a documented bottleneck for
Python proxies under concurrency (measured in ``benchmarks/proxy_overhead.py``).

Timeouts: ``connect_timeout_s`` bounds the TCP/TLS connect, ``read_timeout_s`` bounds every wait
for bytes, including the wait for the response to start; a timeout before the response started
is a :class:`BackendTimeout` (failover is safe), one during a stream a
:class:`BackendStreamError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from backends.base import (
    BackendConnectError,
    BackendRequest,
    BackendResponse,
    BackendServerError,
    BackendStreamError,
    BackendTimeout,
)
from backends.config import OpenAIBackendConfig

__all__ = ["OpenAIHTTPBackend"]

_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
_READY_CACHE_S = 2.0


class OpenAIHTTPBackend:
    """Serves a variant by calling an OpenAI-compatible server over HTTP."""

    def __init__(self, name: str, config: OpenAIBackendConfig) -> None:
        self.name = name
        self.config = config
        self._base = config.base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._auth: str | None = None
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
            self._auth = f"Bearer {key}"
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.config.connect_timeout_s,
            sock_read=self.config.read_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            # SSE lines are read whole; a tool call's arguments can make one line long.
            read_bufsize=1 << 20,
            skip_auto_headers=("User-Agent",),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ready(self) -> bool:
        """``GET {base_url}/models``, cached for two seconds: cheap, never runs inference."""
        now = time.monotonic()
        if now - self._ready_at < _READY_CACHE_S:
            return self._ready
        session = self._require_session()
        try:
            async with session.get(
                self._base + "/models",
                headers=self._headers({}),
                timeout=aiohttp.ClientTimeout(total=min(2.0, self.config.read_timeout_s)),
            ) as resp:
                await resp.read()
                ok = resp.status < 500 and resp.status not in (404,)
        except (TimeoutError, aiohttp.ClientError, OSError):
            ok = False
        self._ready, self._ready_at = ok, time.monotonic()
        return ok

    async def send(self, request: BackendRequest) -> BackendResponse:
        session = self._require_session()
        body: Any = request.body
        if self.config.model is not None:
            body = {**body, "model": self.config.model}
        try:
            resp = await session.post(
                self._base + _PATHS[request.endpoint],
                data=orjson.dumps(body),
                headers=self._headers(request.headers),
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise BackendTimeout(f"{self.name}: no response within the timeout") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise BackendConnectError(f"{self.name}: {exc}") from exc

        if resp.status >= 500:
            data = await self._read_or_empty(resp)
            raise BackendServerError(resp.status, data)
        content_type = resp.headers.get("Content-Type", "application/json")
        if request.stream and resp.status == 200 and content_type.startswith("text/event-stream"):
            return BackendResponse(
                status=200,
                event_batches=self._event_batches(resp),
                content_type="text/event-stream",
            )
        try:
            data = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            resp.release()
            raise BackendTimeout(f"{self.name}: body not received: {exc}") from exc
        return BackendResponse(status=resp.status, body=data, content_type=content_type)

    async def _event_batches(self, resp: aiohttp.ClientResponse) -> AsyncIterator[list[bytes]]:
        """Yield the data payloads of the SSE events that arrived together; ends at [DONE].

        Reads whatever the socket has (``readany``) and splits complete events with one
        ``bytes.split``: a line-by-line reader costs two awaits per event, and batching lets
        the proxy forward a burst of events with one write.
        """
        buffer = b""
        try:
            while True:
                data = await resp.content.readany()
                if not data:
                    break
                if b"\r" in data:  # SSE allows CRLF and CR line ends; normalise to LF
                    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                buffer = buffer + data if buffer else data
                if b"\n\n" not in buffer:
                    continue
                *events, buffer = buffer.split(b"\n\n")
                payloads = _payloads(events)
                if payloads:
                    yield payloads
                    if payloads[-1] == b"[DONE]":
                        return
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise BackendStreamError(
                f"{self.name}: stream broke: {exc or type(exc).__name__}"
            ) from exc
        finally:
            resp.release()
        tail = _payloads([buffer]) if buffer.strip() else []
        if tail:  # a last event without its blank line
            yield tail
            if tail[-1] == b"[DONE]":
                return
        raise BackendStreamError(f"{self.name}: upstream closed the stream before [DONE]")

    def _headers(self, extra: Any) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **extra}
        if self._auth is not None:
            headers["Authorization"] = self._auth
        return headers

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"backend {self.name!r} used before start()")
        return self._session

    @staticmethod
    async def _read_or_empty(resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return b""
        finally:
            resp.release()


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
