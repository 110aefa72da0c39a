"""End to end: ``quanttrap serve`` answers malformed and oversized requests in OpenAI's shape.

The limits themselves are tested in ``tests/proxy/test_http_limits.py``; this checks that the
real server process uses them (``proxy/server.py``), over raw sockets.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import pytest

from tests.doubles.processes import Process, start_proxy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    logs = tmp_path_factory.mktemp("limits")
    variant = {"name": "bf16", "bits": 16,
               "backend": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}}  # fmt: skip
    model = {"name": "demo", "anchor": "bf16", "routing": {"primary": "bf16"},
             "variants": [variant]}  # fmt: skip
    config = logs / "quanttrap.yaml"
    config.write_text(json.dumps({"models": [model], "scoring": {"enabled": False}}))
    proc = start_proxy(config, logs)
    yield proc
    proc.stop()


def _exchange(proc: Process, raw: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), out[:300]
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"X-H: v\r\n" * 500 + b"\r\n",
         431, "too_many_headers"),
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 1_000_000 + b"\r\n\r\n",
         431, "headers_too_large"),
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Evil: a\x01b\r\n\r\n",
         400, "invalid_http_request"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
         400, "invalid_http_request"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4194305\r\n\r\n",
         413, "request_too_large"),
    ],
    ids=["500-headers", "1MB-header", "control-byte", "length-minus-1", "length-over"],
)  # fmt: skip
def test_serve_answers_bad_http_in_openai_shape(
    proxy: Process, raw: bytes, status: int, code: str
) -> None:
    got, error = _exchange(proxy, raw)
    assert (got, error["code"], error["type"]) == (status, code, "invalid_request_error")
    assert "Invalid HTTP request received" not in str(error["message"])
