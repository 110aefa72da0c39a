"""The HTTP upstream backend against a real aiohttp server on a socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from backends.base import (
    BackendConnectError,
    BackendRequest,
    BackendServerError,
    BackendStreamError,
    BackendTimeout,
)
from backends.config import OpenAIBackendConfig
from backends.openai_http import OpenAIHTTPBackend
from tests.doubles.processes import free_port

Handler = Callable[[web.Request], Any]


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": []})

    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v1"


async def _backend(url: str, **cfg: Any) -> OpenAIHTTPBackend:
    backend = OpenAIHTTPBackend("v", OpenAIBackendConfig(kind="openai", base_url=url, **cfg))
    await backend.start()
    return backend


def _request(stream: bool = True) -> BackendRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    return BackendRequest("chat", body, stream, "rid", {"x-request-id": "rid"})


async def _collect(batches: AsyncIterator[list[bytes]]) -> list[bytes]:
    return [p async for batch in batches for p in batch]


def _raw_stream(*pieces: bytes, delay: float = 0.01) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in pieces:
            await resp.write(piece)
            await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    return handler


async def test_sse_parsing_handles_splits_crlf_comments_and_multiline_data() -> None:
    runner, url = await _serve(
        _raw_stream(
            b": keep-alive comment\n\n",
            b'data: {"a"',  # an event split across two reads
            b': 1}\n\nevent: message\r\ndata: {"b": 2}\r\n\r\n',
            b"data: line one\ndata: line two\n\n",
            b"id: 7\ndata: [DONE]\n\n",
        )
    )
    backend = await _backend(url)
    try:
        resp = await backend.send(_request())
        assert resp.streaming and resp.content_type == "text/event-stream"
        payloads = await _collect(resp.batches())
    finally:
        await backend.aclose()
        await runner.cleanup()
    assert payloads == [b'{"a": 1}', b'{"b": 2}', b"line one\nline two", b"[DONE]"]


async def test_stream_without_done_is_an_error() -> None:
    runner, url = await _serve(_raw_stream(b'data: {"a": 1}\n\n'))
    backend = await _backend(url)
    try:
        resp = await backend.send(_request())
        with pytest.raises(BackendStreamError, match="before \\[DONE\\]"):
            await _collect(resp.batches())
    finally:
        await backend.aclose()
        await runner.cleanup()


async def test_5xx_and_timeouts_and_refusals_are_failover_errors() -> None:
    async def five_hundred(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "x"}}, status=503)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    runner, url = await _serve(five_hundred)
    backend = await _backend(url)
    with pytest.raises(BackendServerError) as info:
        await backend.send(_request(stream=False))
    assert info.value.status == 503
    await backend.aclose()
    await runner.cleanup()

    runner, url = await _serve(slow)
    backend = await _backend(url, read_timeout_s=0.2)
    with pytest.raises(BackendTimeout):
        await backend.send(_request(stream=False))
    await backend.aclose()
    await runner.cleanup()

    backend = await _backend(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(BackendConnectError):
        await backend.send(_request())
    assert await backend.ready() is False
    await backend.aclose()


async def test_served_model_name_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def capture(request: web.Request) -> web.Response:
        seen["body"] = await request.json()
        seen["auth"] = request.headers.get("Authorization")
        return web.json_response({"choices": []})

    monkeypatch.setenv("UPSTREAM_KEY", "sk-test")
    runner, url = await _serve(capture)
    backend = await _backend(url, model="served-name", api_key_env="UPSTREAM_KEY")
    try:
        resp = await backend.send(_request(stream=False))
        assert await backend.ready() is True
    finally:
        await backend.aclose()
        await runner.cleanup()
    assert resp.status == 200
    assert seen["body"]["model"] == "served-name" and seen["auth"] == "Bearer sk-test"


async def test_missing_api_key_variable_fails_at_start() -> None:
    backend = OpenAIHTTPBackend(
        "v",
        OpenAIBackendConfig(
            kind="openai", base_url="http://127.0.0.1:1/v1", api_key_env="QT_NOT_SET_ANYWHERE"
        ),
    )
    with pytest.raises(RuntimeError, match="QT_NOT_SET_ANYWHERE"):
        await backend.start()
