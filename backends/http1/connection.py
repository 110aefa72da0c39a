"""One keep-alive connection: an asyncio protocol that feeds httptools and buffers the body.

The parser's callbacks run inside ``data_received``; a reader waiting on :meth:`Connection.news`
is woken once per read, whatever the read held.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

import httptools

from backends.http1.errors import HTTPError, ReadTimeout, RemoteProtocolError


class ConnectionOwner(Protocol):
    """What a connection needs of the pool that owns it (the pool implements it)."""

    loop: asyncio.AbstractEventLoop
    read_timeout: float

    def connection_idle(self, conn: Connection) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...


__all__ = ["Connection"]

_HIGH_WATER = 1 << 20  # buffered response bytes past which the socket stops being read


class Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, pool: ConnectionOwner) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.holds_slot = True  # counts against the pool's limit until it closes
        self._parser: httptools.HttpResponseParser | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.headers_done = False
        self.complete = False
        self.received_any = False
        self.error: HTTPError | None = None
        self._body: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._finish_on_complete = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes while idle: the connection is out of step, drop it
            self._fail(RemoteProtocolError("unexpected bytes on an idle connection"))
            return
        self._last_read = self._loop.time()
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(RemoteProtocolError(f"malformed HTTP response: {exc}"))
        except httptools.HttpParserUpgrade:
            self._fail(RemoteProtocolError("the upstream switched protocols"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.connection_closed(self)
        if self._parser is None or self.complete:
            return
        if self.headers_done and self._reads_to_close():
            self.on_message_complete()  # a body without length ends when the server closes
            return
        reason = f": {exc}" if exc else ""
        self._fail(RemoteProtocolError(f"the upstream closed the connection{reason}"))

    def pause_writing(self) -> None:  # request bodies are small; the kernel buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()  # only valid until the body ends
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._cancel_timer()
        if self._finish_on_complete:
            self.finish()
        self._wake()

    # -- used by the pool and Response -----------------------------------------------------

    def send_request(self, raw: bytes) -> None:
        assert self.transport is not None
        self._reset()
        self._parser = httptools.HttpResponseParser(self)
        self._last_read = self._loop.time()
        self._timer = self._loop.call_at(self._last_read + self._pool.read_timeout, self._check)
        self.transport.write(raw)

    def take_body(self) -> bytes:
        """Everything buffered so far (and reading resumed if it was paused)."""
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return body

    @property
    def has_body(self) -> bool:
        return bool(self._body)

    def news(self) -> asyncio.Future[None]:
        """A future done when the connection has news: headers, body, the end, or an error.

        A future rather than a coroutine: awaiting it directly saves a frame per chunk."""
        fut = self._waiter = self._loop.create_future()
        return fut

    def reusable(self) -> bool:
        return self.complete and not self.closed and self.error is None and self.keep_alive

    def finish(self) -> None:
        """The response is done with: back to the pool when reusable, otherwise closed."""
        self._cancel_timer()
        if self.reusable():
            self._parser = None
            self._pool.connection_idle(self)
        else:
            self.close()

    def finish_when_complete(self, grace_s: float) -> None:
        """Like :meth:`finish`, once the rest of a body known to be ending has arrived; closed
        if it has not within ``grace_s``."""
        if self.complete or self.error is not None:
            self.finish()
            return
        self._finish_on_complete = True
        self._cancel_timer()
        self._timer = self._loop.call_later(grace_s, self.close)
        self._body.clear()  # nobody will read the rest
        self._buffered = 0

    def close(self) -> None:
        self._cancel_timer()
        if not self.closed and self.transport is not None:
            self.transport.close()
        self.closed = True
        self._pool.connection_closed(self)

    # -- private ---------------------------------------------------------------------------

    def _reads_to_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # not cancelled
                waiter.set_result(None)

    def _fail(self, error: HTTPError) -> None:
        if self.error is None:
            self.error = error
        self._wake()
        self.close()

    def _check(self) -> None:
        """Read-timeout timer: fire only after ``read_timeout`` without a byte."""
        self._timer = None
        if self.complete or self.closed:
            return
        if self._paused:  # nobody is reading: not the upstream's fault
            self._last_read = self._loop.time()
        deadline = self._last_read + self._pool.read_timeout
        if deadline > self._loop.time():
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._fail(ReadTimeout(f"no bytes from the upstream in {self._pool.read_timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
