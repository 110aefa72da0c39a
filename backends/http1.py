"""A small pooled HTTP/1.1 client for the upstream path, on asyncio protocols and httptools.

Why not aiohttp or httpx: the proxy's cost per streamed chunk is the cost of one read from the
upstream and one write to the client, and a general client adds a stream reader, a timer
reset and several coroutine hops to every read (measured side by side in
``benchmarks/upstream_client.py``; results in ``docs/benchmarks.md``). This client parses
with httptools (the parser uvicorn uses) straight from the protocol callback and keeps a
buffer per response, so a chunk costs one wake-up.

Scope: what an OpenAI-compatible upstream needs and no more. One origin per pool;
keep-alive connections reused last-in first-out; request bodies with ``Content-Length``;
responses with ``Content-Length``, chunked or read to close; TLS; a connect timeout and a read
(inactivity) timeout; back-pressure (a response nobody reads stops the socket being read).
No redirects, cookies, proxies, compression (no ``Accept-Encoding`` is sent) or HTTP/2.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

import httptools

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "HTTPError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Response",
]

_HIGH_WATER = 1 << 20  # buffered response bytes past which the socket stops being read


class HTTPError(Exception):
    """Base of every error this client raises."""


class ConnectError(HTTPError):
    """No connection: refused, unresolvable, TLS failure, or not connected in time."""


class ConnectTimeout(ConnectError):
    """Not connected within the connect timeout."""


class ReadTimeout(HTTPError):
    """No byte arrived within the read timeout."""


class RemoteProtocolError(HTTPError):
    """The server closed the connection early or sent something that is not HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._loop = pool._loop
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
        self._pool._forget(self)
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
            self._pool._release(self)
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
        self._pool._forget(self)

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


class Response:
    """A response whose headers have arrived; the body is read with :meth:`read` or, as it
    arrives, with :meth:`receive`. Call :meth:`close` (or read to the end) to free the
    connection."""

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.headers = conn.headers
        """Header names are lower-case; a repeated header keeps its last value."""

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while chunk := await self.receive():
            parts.append(chunk)
        return b"".join(parts)

    async def receive(self) -> bytes:
        """The body received since the last call, waiting for some if there is none yet;
        ``b""`` at the end of the body (and the connection is released). Raises
        :class:`HTTPError` (and closes the connection) if the body does not arrive whole."""
        conn = self._conn
        if conn is None:
            return b""
        try:
            while True:
                if conn.has_body:
                    return conn.take_body()
                if conn.error is not None:
                    raise conn.error
                if conn.complete:
                    self.close()
                    return b""
                await conn.news()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the connection: reused if the body was read to the end, else closed (the
        server learns that nobody wants the rest)."""
        if self._conn is not None:
            self._conn.finish()
            self._conn = None

    def release_when_done(self, grace_s: float = 1.0) -> None:
        """Give the connection back once the rest of the body (which the caller knows is only
        its framing, such as a chunked body's last chunk) has arrived, without waiting for it."""
        if self._conn is not None:
            self._conn.finish_when_complete(grace_s)
            self._conn = None


class ConnectionPool:
    """Keep-alive connections to one origin (``scheme://host:port``), at most
    ``max_connections`` at once; callers past that wait up to ``connect_timeout`` for one to
    be free."""

    def __init__(
        self,
        origin: str,
        *,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` defaults to the system's trusted CAs (``SSL_CERT_FILE`` honoured)."""
        url = urlsplit(origin)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {origin!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        default_port = self._port == (443 if url.scheme == "https" else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._ssl = None
        if url.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Send a request; return when the response's headers have arrived.

        A reused connection that the server closed just before the request gets one retry on
        a fresh connection, as long as not a byte of the response had arrived.
        """
        raw = self._encode(method, target, headers, body)
        for attempt in (0, 1):
            conn, reused = await self._acquire()
            try:
                conn.send_request(raw)
                while not conn.headers_done:
                    if conn.error is not None:
                        raise conn.error
                    await conn.news()
            except RemoteProtocolError:
                conn.close()
                if reused and not conn.received_any and attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return Response(conn)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._idle):
            conn.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError("the connection pool is closed"))

    # -- private ---------------------------------------------------------------------------

    def _encode(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        for name, value in headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} has a line break in it")
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        return head + body

    async def _acquire(self) -> tuple[_Connection, bool]:
        while True:
            if self._closed:
                raise ConnectError("the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if (
                    not conn.closed
                    and conn.transport is not None
                    and not conn.transport.is_closing()
                ):
                    return conn, True
                self._forget(conn)
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(), False
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            # Every connection is busy. Wait for one, but not for ever: a hung upstream that
            # holds them all must fail the request (and so fail it over), not queue it.
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await waiter
            except BaseException as exc:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken but leaving anyway: pass the turn on
                if isinstance(exc, TimeoutError):
                    raise ConnectTimeout(
                        f"all {self.max_connections} connections busy for "
                        f"{self.connect_timeout:g} s"
                    ) from None
                raise

    async def _connect(self) -> _Connection:
        try:
            _, conn = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                ),
                self.connect_timeout,
            )
        except TimeoutError as exc:
            raise ConnectTimeout(f"not connected within {self.connect_timeout:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        self._idle.append(conn)
        self._wake_one()

    def _forget(self, conn: _Connection) -> None:
        """A connection closed: it no longer counts against the limit."""
        if not conn.holds_slot:
            return
        conn.holds_slot = False
        if conn in self._idle:
            self._idle.remove(conn)
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
