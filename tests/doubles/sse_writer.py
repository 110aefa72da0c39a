"""TEST DOUBLE: writing a server-sent event stream, with the double's faults built in.

One writer per streamed response: ``event:`` lines when the API has them (Responses,
Messages), the configured delay before each generated piece, the ``break_after_chunks``
fault (the connection is dropped after N generated pieces, as a crashing server would) and the
``error_after_chunks`` one (the server reports an error in the stream after N pieces).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

__all__ = ["Broken", "EventWriter", "Failed"]


class Broken(Exception):
    """The configured fault fired: the connection was aborted mid-stream."""


class Failed(Exception):
    """The configured error fired: the stream is to end with the API's error event."""


class EventWriter:
    def __init__(self, request: web.Request, config: dict[str, Any]) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **config.get("response_headers", {}),
            }
        )
        self._delay = float(config.get("chunk_delay_ms", 0)) / 1000
        self._break_after = config.get("break_after_chunks")
        self._fail_after = config.get("error_after_chunks")
        self._generated = 0
        self.sent = 0
        """Events sent so far."""

    async def open(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, obj: Any, event: str | None = None) -> None:
        """One event: ``event: <name>`` (when given) and ``data: <json>``."""
        head = b"event: " + event.encode() + b"\n" if event else b""
        await self.response.write(head + b"data: " + orjson.dumps(obj) + b"\n\n")
        self.sent += 1

    async def generated(self, obj: Any, event: str | None = None) -> None:
        """An event that carries a generated piece: delayed, and counted for the fault."""
        if self._break_after is not None and self._generated >= self._break_after:
            assert self.request.transport is not None
            self.request.transport.abort()  # a crash mid-stream, not a clean end
            raise Broken
        if self._fail_after is not None and self._generated >= self._fail_after:
            raise Failed
        if self._delay:
            await asyncio.sleep(self._delay)
        self._generated += 1
        await self.send(obj, event)

    async def pause(self, ms: float) -> None:
        if ms:
            await asyncio.sleep(ms / 1000)

    async def close(self, done: bytes = b"") -> web.StreamResponse:
        if done:
            await self.response.write(done)
        await self.response.write_eof()
        return self.response
