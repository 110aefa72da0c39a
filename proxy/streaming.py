"""Streaming responses: forwarding SSE events to the client as they arrive, and reading them.

Events that arrived together are forwarded with one write; each is also looked at (text,
usage, finish reason) to fill the request's record. The usage chunk the proxy asked the
upstream for is forwarded only to clients that asked for it themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from backends.base import BackendError, BackendResponse, BackendStreamError
from proxy.context import RequestContext
from proxy.errors import error_body
from proxy.formats import ResponseReader
from proxy.openai_format import Accumulator
from telemetry import RequestObserver

__all__ = [
    "SSE_HEADERS",
    "Send",
    "discard",
    "forward_stream",
    "forward_typed_stream",
    "loads_chunk",
    "with_usage",
]

log = logging.getLogger("quanttrap.proxy")

Send = Callable[[dict[str, Any]], Any]


async def discard(message: dict[str, Any]) -> None:
    """Where a shadow copy's or a canary's bytes go: nowhere."""


SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def forward_stream(
    response: BackendResponse,
    acc: Accumulator,
    send: Send,
    client_wants_usage: bool,
    ctx: RequestContext,
    h: RequestObserver | None,
) -> str | None:
    """Forward SSE events as they arrive; return the record's error type, if any.

    Events that arrived together are forwarded with one write (to :func:`discard` for a
    shadow copy: the same reading, nobody waiting). A stream that breaks part-way ends with an
    OpenAI error event and is closed: the client sees an error instead of hanging or of a
    silently truncated answer. ``h`` is told of streamed tokens unless the backend reports
    its own (``None`` then).
    """
    error_type: str | None = None
    batches = response.batches()
    done = False
    try:
        async for payloads in batches:
            out: list[bytes] = []
            seen = acc.chunks
            for payload in payloads:
                if payload == b"[DONE]":
                    done = True
                    break
                obj = loads_chunk(payload)
                if obj is None:
                    # Not JSON: a broken upstream. End with an error, never pass it on as
                    # if it were part of a good answer.
                    raise BackendStreamError("the upstream sent an event that is not JSON")
                acc.add_chunk(obj)
                if not client_wants_usage and "usage" in obj:
                    if obj["usage"] is not None and not obj.get("choices"):
                        continue  # the usage-only chunk this client did not ask for
                    # Strip what the client would not have got without include_usage
                    # (OpenAI sends "usage": null on every chunk once it is set).
                    del obj["usage"]
                    payload = orjson.dumps(obj)
                out += (b"data: ", payload, b"\n\n")
            if h is not None and acc.chunks > seen:
                h.tokens(acc.chunks - seen)
            if done:
                ctx.ending = True
                out.append(b"data: [DONE]\n\n")
                await send(
                    {"type": "http.response.body", "body": b"".join(out), "more_body": False}
                )
                break
            if out:
                await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        else:
            raise BackendStreamError("upstream stream ended without [DONE]")
    except BackendError as exc:
        error_type = "upstream_stream_error"
        log.warning("stream broke mid-way: %s", exc)
        body = error_body(
            f"The upstream stream broke before it finished: {exc}",
            type="upstream_error",
            code="stream_interrupted",
        )
        ctx.ending = True
        await send(
            {"type": "http.response.body", "body": b"data: " + body + b"\n\n", "more_body": False}
        )
        return error_type
    finally:
        if hasattr(batches, "aclose"):
            await batches.aclose()
        await response.aclose()
    if acc.error is not None:
        error_type = str(acc.error.get("type") or "upstream_error")
    return error_type


async def forward_typed_stream(
    response: BackendResponse,
    reader: ResponseReader,
    send: Send,
    ctx: RequestContext,
    h: RequestObserver | None,
    *,
    anthropic: bool,
) -> str | None:
    """Forward a typed-event stream (Responses, Messages) block by block, byte for byte.

    Each block (``event: <type>`` and its ``data:``) is read for the record and written as it
    came; the backend ends the stream after the API's terminal event. A stream that breaks
    part-way ends with the API's own ``error`` event.
    """
    batches = response.batches()
    try:
        async for blocks in batches:
            seen = reader.chunks
            for block in blocks:
                data = _data_of(block)
                obj = loads_chunk(data)
                if obj is not None:
                    reader.add_chunk(obj)
                elif data and data != b"[DONE]":
                    raise BackendStreamError("the upstream sent an event that is not JSON")
            if h is not None and reader.chunks > seen:
                h.tokens(reader.chunks - seen)
            body = b"\n\n".join(blocks) + b"\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
        ctx.ending = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except BackendError as exc:
        log.warning("stream broke mid-way: %s", exc)
        message = f"The upstream stream broke before it finished: {exc}"
        payload: dict[str, Any] = (
            {"type": "error", "error": {"type": "api_error", "message": message}}
            if anthropic
            else {"type": "error", "code": "stream_interrupted", "message": message, "param": None}
        )
        ctx.ending = True
        event = b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": False})
        return "upstream_stream_error"
    finally:
        if hasattr(batches, "aclose"):
            await batches.aclose()
        await response.aclose()
    if reader.error is not None:
        return str(reader.error.get("type") or "upstream_error")
    return None


def _data_of(block: bytes) -> bytes:
    """The ``data`` of one SSE block (its ``data:`` lines joined)."""
    start = block.find(b"data:")
    if start == -1:
        return b""
    if b"\ndata:" not in block[start + 5 :]:
        line = block[start + 5 :].split(b"\n", 1)[0]
        return line.removeprefix(b" ")
    lines = [ln[5:].removeprefix(b" ") for ln in block.split(b"\n") if ln.startswith(b"data:")]
    return b"\n".join(lines)


def loads_chunk(payload: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def with_usage(body: dict[str, Any]) -> dict[str, Any]:
    """The body with ``stream_options.include_usage`` set: the upstream is always asked."""
    options = body.get("stream_options") or {}
    if options.get("include_usage") is True:
        return body
    return {**body, "stream_options": {**options, "include_usage": True}}
