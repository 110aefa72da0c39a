"""The upstream HTTP/1.1 client against real servers on sockets: aiohttp for well-behaved
HTTP, raw asyncio servers for the misbehaviour (stalls, early closes, garbage)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme
from aiohttp import web

from backends.http1 import (
    ConnectError,
    ConnectionPool,
    ConnectTimeout,
    ReadTimeout,
    RemoteProtocolError,
)
from tests.doubles.processes import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Site:
    """An aiohttp server that records the client port of every request (one per connection)."""

    def __init__(self) -> None:
        self.peers: list[int] = []
        self.active = 0
        self.most_active = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, handler: Handler) -> None:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.peers.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            try:
                return await handler(request)
            finally:
                self.active -= 1

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", wrapped)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def site() -> AsyncIterator[_Site]:
    s = _Site()
    yield s
    await s.stop()


def _pool(url: str, **kw: float) -> ConnectionPool:
    return ConnectionPool(
        url,
        max_connections=int(kw.get("max_connections", 8)),
        connect_timeout=kw.get("connect_timeout", 2.0),
        read_timeout=kw.get("read_timeout", 5.0),
    )


async def _raw_server(
    reply: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reply(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def test_keep_alive_reuses_one_connection_for_sized_and_chunked_bodies(site: _Site) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/chunked":
            resp = web.StreamResponse()
            await resp.prepare(request)
            await resp.write(b"echo:")
            await resp.write(body)
            await resp.write_eof()
            return resp
        return web.Response(body=b"echo:" + body, headers={"X-Thing": "yes"})

    await site.start(handler)
    pool = _pool(site.url)
    try:
        for path in ("/sized", "/chunked", "/sized", "/chunked"):
            resp = await pool.request("POST", path, [("Content-Type", "text/plain")], b"hello")
            assert resp.status == 200
            assert await resp.read() == b"echo:hello"
        assert resp.headers["content-type"].startswith("application/octet-stream")
    finally:
        await pool.aclose()
    assert len(site.peers) == 4 and len(set(site.peers)) == 1


async def test_the_connection_limit_queues_callers(site: _Site) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    await site.start(handler)
    pool = _pool(site.url, max_connections=2)

    async def one() -> bytes:
        resp = await pool.request("GET", "/")
        return await resp.read()

    try:
        assert await asyncio.gather(*(one() for _ in range(6))) == [b"ok"] * 6
    finally:
        await pool.aclose()
    assert site.most_active == 2 and len(set(site.peers)) == 2


async def test_waiting_for_a_busy_pool_is_bounded_by_the_connect_timeout(site: _Site) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/hang":
            await release.wait()
        return web.Response(text="ok")

    await site.start(handler)
    pool = _pool(site.url, max_connections=1, connect_timeout=0.2)
    try:
        hung = asyncio.ensure_future(pool.request("GET", "/hang"))
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectTimeout, match="busy"):
            await pool.request("GET", "/quick")
        release.set()
        assert await (await hung).read() == b"ok"
        assert await (await pool.request("GET", "/quick")).read() == b"ok"
    finally:
        await pool.aclose()


async def test_body_arrives_as_it_is_sent_and_abandoning_it_closes_the_connection(
    site: _Site,
) -> None:
    hung_up = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for i in range(100):
                await resp.write(b"piece %d;" % i)
                await asyncio.sleep(0.02)
        except (ConnectionResetError, ConnectionError):
            hung_up.set()
        return resp

    await site.start(handler)
    pool = _pool(site.url)
    try:
        resp = await pool.request("GET", "/")
        first = await asyncio.wait_for(resp.receive(), 1)
        assert first.startswith(b"piece 0;")  # not buffered until the end (that takes 2 s)
        resp.close()
        await asyncio.wait_for(hung_up.wait(), 2)  # the server learns that nobody listens
    finally:
        await pool.aclose()


async def test_read_timeout_before_and_during_the_body() -> None:
    async def stall_then_partial(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request = await _read_request(reader)
        if b"/during" in request:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await asyncio.sleep(2)

    server, url = await _raw_server(stall_then_partial)
    pool = _pool(url, read_timeout=0.2)
    try:
        with pytest.raises(ReadTimeout):
            await pool.request("GET", "/before")
        resp = await pool.request("GET", "/during")
        assert await resp.receive() == b"abc"
        with pytest.raises(ReadTimeout):
            await resp.receive()
    finally:
        await pool.aclose()
        server.close()


async def test_early_close_malformed_reply_and_read_to_close_bodies() -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if b"/truncated" in request:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        elif b"/garbage" in request:
            writer.write(b"SMTP ready\r\n\r\n")
        elif b"/to-close" in request:  # no length and not chunked: the body ends at close
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    server, url = await _raw_server(reply)
    pool = _pool(url)
    try:
        resp = await pool.request("GET", "/truncated")
        with pytest.raises(RemoteProtocolError, match="closed"):
            await resp.read()
        with pytest.raises(RemoteProtocolError, match="malformed"):
            await pool.request("GET", "/garbage")
        resp = await pool.request("GET", "/to-close")
        assert await asyncio.wait_for(resp.read(), 2) == b"all of it"
    finally:
        await pool.aclose()
        server.close()


async def test_a_kept_alive_connection_the_server_dropped_is_retried_once() -> None:
    """The server closes each connection right after answering, without saying so: the
    second request finds the pooled connection dead and goes out on a fresh one."""
    connections = 0

    async def answer_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    server, url = await _raw_server(answer_then_drop)
    pool = _pool(url)
    try:
        for _ in range(3):
            resp = await pool.request("POST", "/", body=b"x")
            assert await resp.read() == b"ok"
    finally:
        await pool.aclose()
        server.close()
    assert connections == 3


async def test_refused_and_slow_connects() -> None:
    pool = _pool(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectError):
        await pool.request("GET", "/")
    await pool.aclose()

    # Test double for a host that never answers the SYN: a connect that never completes.
    pool = _pool("http://192.0.2.1:80", connect_timeout=0.1)
    loop = asyncio.get_running_loop()

    async def never(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(10)

    original = loop.create_connection
    loop.create_connection = never  # type: ignore[assignment,method-assign]
    try:
        with pytest.raises(ConnectTimeout):
            await pool.request("GET", "/")
    finally:
        loop.create_connection = original  # type: ignore[method-assign]
        await pool.aclose()


async def test_unread_body_pauses_the_socket_and_resumes_when_read(site: _Site) -> None:
    big = b"x" * (8 << 20)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=big)

    await site.start(handler)
    pool = _pool(site.url)
    try:
        resp = await pool.request("GET", "/")
        await asyncio.sleep(0.3)  # nobody reads: the client stops at its high-water mark
        conn = resp._conn
        assert conn is not None and conn.transport is not None
        assert not conn.transport.is_reading()
        assert 1 << 20 < conn._buffered < 4 << 20
        assert len(await resp.read()) == len(big)
    finally:
        await pool.aclose()


async def test_https_upstream_verified_against_its_ca() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="over tls")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "localhost", port, ssl_context=server_ctx).start()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    trusted = ConnectionPool(
        f"https://localhost:{port}",
        max_connections=2,
        connect_timeout=2,
        read_timeout=2,
        ssl_context=client_ctx,
    )
    untrusted = _pool(f"https://localhost:{port}")  # the system CAs do not know this one
    try:
        resp = await trusted.request("GET", "/")
        assert (resp.status, await resp.read()) == (200, b"over tls")
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.request("GET", "/")
    finally:
        await trusted.aclose()
        await untrusted.aclose()
        await runner.cleanup()


def test_bad_urls_and_header_injection_are_refused() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="not an http"):
            ConnectionPool("ftp://x", max_connections=1, connect_timeout=1, read_timeout=1)
        pool = _pool("http://127.0.0.1:9")
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", "/", [("X-Request-Id", "a\r\nEvil: yes")])
        await pool.aclose()

    asyncio.run(main())
