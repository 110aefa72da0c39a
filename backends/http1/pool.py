"""The pool of keep-alive connections to one upstream, and the response it hands back."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

from backends.http1.connection import Connection
from backends.http1.errors import BodyTooLarge, ConnectError, ConnectTimeout, RemoteProtocolError

__all__ = ["ConnectionPool", "Response"]


class Response:
    """A response whose headers have arrived; the body is read with :meth:`read` or, as it
    arrives, with :meth:`receive`. Call :meth:`close` (or read to the end) to free the
    connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self.status = conn.status
        self.headers = conn.headers
        """Header names are lower-case; a repeated header keeps its last value."""

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; past ``limit`` bytes the connection is closed and
        :class:`BodyTooLarge` raised (a runaway answer must not take the proxy's memory)."""
        parts = []
        size = 0
        while chunk := await self.receive():
            size += len(chunk)
            if limit is not None and size > limit:
                self.close()
                raise BodyTooLarge(f"response body larger than {limit} bytes")
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
        default_port = 443 if url.scheme == "https" else 80
        self._host = url.hostname
        self._port = url.port or default_port
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if self._port == default_port else f"{host}:{self._port}"
        self._ssl = None
        if url.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.loop = asyncio.get_running_loop()
        self._idle: list[Connection] = []
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

    async def _acquire(self) -> tuple[Connection, bool]:
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
                self.connection_closed(conn)
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
            waiter = self.loop.create_future()
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

    async def _connect(self) -> Connection:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: Connection(self),
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

    # -- called by the connections ----------------------------------------------------------

    def connection_idle(self, conn: Connection) -> None:
        """A connection finished its response and can serve another."""
        if self._closed:
            conn.close()
            return
        self._idle.append(conn)
        self._wake_one()

    def connection_closed(self, conn: Connection) -> None:
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
