"""HTTP-level limits against a real uvicorn server over raw sockets, answered in OpenAI's shape.

The server is uvicorn with :func:`proxy.http_limits.limited_protocol` serving today's app
(:class:`~proxy.app.QuanttrapApp`) over a scripted backend (TEST DOUBLE of an upstream), in a
thread, on a real TCP port. Tests write bytes by hand, as a hostile client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from proxy.app import QuanttrapApp
from proxy.http_limits import HttpLimits, limited_protocol
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import settings_for

LIMITS = HttpLimits(
    max_body_bytes=64 * 1024,
    max_headers=50,
    max_header_bytes=4096,
    max_head_bytes=16 * 1024,
    header_timeout_s=1.0,
    linger_s=1.0,
)
CHAT = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    settings = settings_for(
        {"bf16": 16}, primary="bf16", server={"max_body_bytes": LIMITS.max_body_bytes}
    )
    app = QuanttrapApp(settings, {("demo", "bf16"): ScriptedBackend("bf16")}, environ={})
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=limited_protocol(LIMITS),
        lifespan="on",
        log_level="warning",
        access_log=False,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def _exchange(
    addr: tuple[str, int], raw: bytes, *, half_close: bool = True, read_timeout: float = 5.0
) -> bytes:
    """Send ``raw``, then read until the server closes (or ``read_timeout``).

    ``half_close``: then end our side, so the server stops lingering at once (a client that
    does not is served by the server's ``linger_s``).
    """
    with socket.create_connection(addr, timeout=read_timeout) as sock:
        # The server may answer and stop reading early: the answer is there all the same.
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return _read_response(sock)


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (by its content-length or chunked end), or what came until close."""
    out = b""
    while True:
        head, sep, body = out.partition(b"\r\n\r\n")
        if sep:
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length is not None and len(body) >= int(length.group(1)):
                return out
            if length is None and body.endswith(b"0\r\n\r\n"):
                return out
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return out
        if not chunk:
            return out
        out += chunk


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except TimeoutError:
        pass
    return out


def _parse(response: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    if headers.get("transfer-encoding") == "chunked":  # the app's own answers
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return status, headers, json.loads(body)


def _assert_openai_error(response: bytes, status: int, code: str) -> dict[str, Any]:
    got, headers, body = _parse(response)
    assert got == status, response[:300]
    assert headers["content-type"] == "application/json"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == code
    return body


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def test_an_ordinary_request_passes(server: tuple[str, int]) -> None:
    raw = _post(CHAT, b"Connection: close\r\n" + b"X-Pad: 1\r\n" * 40)
    response = _exchange(server, raw, half_close=False)
    assert response.startswith(b"HTTP/1.1 200") and b'"chat.completion"' in response


@pytest.mark.parametrize("count", [51, 500, 5000])
def test_too_many_headers_get_431(server: tuple[str, int], count: int) -> None:
    extra = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    code = "too_many_headers" if count < 1000 else "headers_too_large"  # 5000: over 16 KiB
    _assert_openai_error(_exchange(server, _post(CHAT, extra)), 431, code)


def test_one_huge_header_gets_431_naming_it(server: tuple[str, int]) -> None:
    body = _assert_openai_error(
        _exchange(server, _post(CHAT, b"traceparent: " + b"a" * 8000 + b"\r\n")),
        431,
        "header_too_large",
    )
    assert "traceparent" in body["error"]["message"]


def test_a_megabyte_header_is_cut_off_at_the_head_limit(server: tuple[str, int]) -> None:
    raw = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 1_000_000 + b"\r\n\r\n"
    _assert_openai_error(_exchange(server, raw), 431, "headers_too_large")


@pytest.mark.parametrize("byte", [b"\x01", b"\x00", b"\x7f", b"\x1b"])
def test_control_bytes_in_a_header_value_get_400(server: tuple[str, int], byte: bytes) -> None:
    raw = _post(CHAT, b"X-Evil: a" + byte + b"b\r\n")
    body = _assert_openai_error(_exchange(server, raw), 400, "invalid_http_request")
    assert "header" in body["error"]["message"].lower()


def test_a_negative_content_length_gets_400(server: tuple[str, int]) -> None:
    raw = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
    _assert_openai_error(_exchange(server, raw), 400, "invalid_http_request")


@pytest.mark.parametrize("length", [b"99999999999999999999999", b"9223372036854775808"])
def test_an_oversized_content_length_gets_413(server: tuple[str, int], length: bytes) -> None:
    raw = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
    )
    _assert_openai_error(_exchange(server, raw), 413, "request_too_large")


def test_a_garbage_request_line_gets_400(server: tuple[str, int]) -> None:
    _assert_openai_error(
        _exchange(server, b"\x16\x03\x01 hello\r\n\r\n"), 400, "invalid_http_request"
    )


@pytest.mark.parametrize("over", [1, 1024 * 1024], ids=["1B", "1MiB"])
@pytest.mark.parametrize("connection", [b"", b"Connection: close\r\n"], ids=["ka", "close"])
def test_a_body_over_the_limit_gets_413_not_a_reset(
    server: tuple[str, int], connection: bytes, over: int
) -> None:
    """The whole body is sent (as a client library does, without ending its side) before
    the answer is read: the server must read and discard it rather than reset."""
    body = b'{"model": "demo", "pad": "' + b"p" * (LIMITS.max_body_bytes + over) + b'"}'
    for _ in range(3):  # a reset was intermittent: try a few times
        response = _exchange(server, _post(body, connection), half_close=False)
        _assert_openai_error(response, 413, "request_too_large")


def test_a_chunked_body_over_the_limit_gets_413(server: tuple[str, int]) -> None:
    chunk = b"p" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12)) + b"0\r\n\r\n"
    raw = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
    )
    _assert_openai_error(_exchange(server, raw), 413, "request_too_large")


def test_slow_headers_one_byte_a_second_are_cut_off_with_408(server: tuple[str, int]) -> None:
    raw = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100
    started = time.monotonic()
    answered_after = None
    with socket.create_connection(server, timeout=5) as sock:
        answer = b""
        for byte in raw:  # (sped up to four bytes a second against a 1-s timeout)
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.25)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                answered_after = time.monotonic() - started
                break
        sock.settimeout(5)
        answer += _read_response(sock)
    assert answered_after is not None and answered_after < LIMITS.header_timeout_s + 1
    _assert_openai_error(answer, 408, "request_timeout")


def test_a_connection_that_sends_nothing_is_closed_with_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        answer = _read_response(sock)
    _assert_openai_error(answer, 408, "request_timeout")


def test_keep_alive_requests_each_get_their_own_limits(server: tuple[str, int]) -> None:
    """Two requests on one connection: the header count and head size start again."""
    one = _post(CHAT, b"X-Pad: 1\r\n" * 40)
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(one)
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(one.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"))
        second = _read_all(sock)
    assert second.startswith(b"HTTP/1.1 200"), second[:200]
