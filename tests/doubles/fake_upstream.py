"""TEST DOUBLE: a small OpenAI-compatible server that stands in for vLLM / SGLang / TGI.

It is not a model. It answers chat and text completions, the Responses API
(``POST /v1/responses``), Anthropic's Messages API (``POST /v1/messages``) and embeddings
(``POST /v1/embeddings``) with canned text, in the exact shapes the official SDKs define
(streaming and not; chat's usage chunk only when ``stream_options.include_usage`` is set;
typed ``event:`` lines for Responses and Messages streams), and lets a test control its
behaviour at run time through ``POST /_double/config``:

    latency_ms           wait before the response starts (a timeout test sets it high)
    chunk_delay_ms       wait between streamed chunks
    status               answer every request with this HTTP status and an error body
    fail_times           ... but only for the next N requests (then healthy again)
    break_after_chunks   streams: drop the connection after N generated chunks
    error_after_chunks   streams: after N generated chunks, send the API's error event
                         (chat: an error chunk; Responses and Messages: ``event: error``)
                         and end the stream
    response_headers     {name: value} sent with every response, errors included (e.g.
                         ``Retry-After`` and ``x-ratelimit-*`` on a 429)
    reply_words          how many words the canned reply has
    answers              {substring of the last user message: reply text} for scripted replies
    solve                {"accuracy": 0.9, "seed": 0}: answer multi-hop and GSM8K questions,
                         right for a share ``accuracy`` of the questions (see below)
    tool_calls           [{"name", "arguments"}]: the calls to answer with when tools are
                         offered ([] = text); see :mod:`tests.doubles.reply_plan`
    reasoning_words      N reasoning pieces before the answer (chat ``reasoning_content``,
                         Responses reasoning item, Messages thinking block)
    reasoning_field      chat's reasoning delta field (``reasoning_content``; vLLM's newer
                         ``reasoning``)
    reasoning_delay_ms   streams: wait between the last reasoning piece and the answer
    embedding_dim        length of the embedding vectors (default 8)
    malformed            answer 200 with a body that is not valid JSON (streams: one good
                         event, then a ``data:`` line that is not JSON, then the end)

``GET /_double/requests`` lists what it received (path, selected headers, body); a request
whose last turn is a tool result is answered with the tool's result, and a request that
offers tools is answered with a tool call (:mod:`tests.doubles.reply_plan`), so agent round
trips can be tested.

In ``solve`` mode the double reads a synthetic multi-hop question (``k = 7. m = k + 5. What
is m?``) and computes its answer, or looks a GSM8K test question up in the shipped set, and
replies ``reply_words`` words ending ``#### <answer>``. Whether it answers right is decided
by a stable hash of (seed, question): a question is answered right iff its hash falls below
``accuracy``, so two doubles with the same seed are right on nested sets of questions (hard
questions are hard for both) — paired verdicts as a real model pair would give. A wrong
answer is the right one plus 7. Questions it cannot read get the canned reply.

Run it: ``python -m tests.doubles.fake_upstream --port 9001 --name bf16``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tests.doubles import wire_messages, wire_responses
from tests.doubles.reply_plan import (
    Plan,
    Turn,
    chat_turn,
    completion_turn,
    messages_turn,
    plan_reply,
    responses_turn,
)
from tests.doubles.sse_writer import Broken, EventWriter, Failed
from tests.doubles.wire_embeddings import embeddings as _embeddings
from tests.doubles.wire_errors import error_body, stream_error

__all__ = ["DoubleState", "main", "make_app"]

_LOGGED_HEADERS = (
    "x-request-id",
    "traceparent",
    "authorization",
    "x-api-key",
    "anthropic-version",
    "user-agent",
    "idempotency-key",
    "x-quanttrap-role",
    "x-quanttrap-pair-id",
)


class DoubleState:
    def __init__(self, name: str) -> None:
        self.name = name
        self.config: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        self.aborted_streams = 0
        """Streams whose client (the proxy) hung up before the end."""

    def get(self, key: str, default: Any) -> Any:
        return self.config.get(key, default)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Streamer = Callable[[EventWriter, DoubleState, dict[str, Any], Turn, Plan], Awaitable[None]]
Completer = Callable[[DoubleState, dict[str, Any], Turn, Plan], dict[str, Any]]


def _generation(
    api: str,
    read: Callable[[dict[str, Any]], Turn],
    complete: Completer,
    stream: Streamer,
    state: DoubleState,
) -> Handler:
    """One handler per generating API: the faults, the plan, then the API's wire format."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await _received(request, state)
        failure = await _failure(state, api)
        if failure is not None:
            return failure
        if state.get("malformed", False):
            return await _malformed(request, bool(body.get("stream")))
        turn = read(body)
        plan = plan_reply(state.config, state.name, turn)
        if not body.get("stream"):
            return web.Response(
                body=orjson.dumps(complete(state, body, turn, plan)),
                content_type="application/json",
                headers=state.get("response_headers", {}),
            )
        out = EventWriter(request, state.config)
        await out.open()
        try:
            await stream(out, state, body, turn, plan)
        except Broken:
            return out.response
        except Failed:
            message = f"{state.name} failing mid-stream on purpose"
            await out.send(*stream_error(api, message, out.sent))
        except (ConnectionResetError, asyncio.CancelledError):
            state.aborted_streams += 1
            raise
        return await out.close()

    return handle


async def _received(request: web.Request, state: DoubleState) -> dict[str, Any]:
    body: dict[str, Any] = await request.json(loads=orjson.loads)
    state.requests.append(
        {
            "path": request.path,
            "headers": {h: request.headers[h] for h in _LOGGED_HEADERS if h in request.headers},
            "body": body,
            "at": time.time(),
        }
    )
    await asyncio.sleep(float(state.get("latency_ms", 0)) / 1000)
    return body


async def _failure(state: DoubleState, api: str) -> web.Response | None:
    fail_times = state.get("fail_times", None)
    status = state.get("status", None)
    if not status or (fail_times is not None and fail_times <= 0):
        return None
    if fail_times is not None:
        state.config["fail_times"] = fail_times - 1
    return web.json_response(
        error_body(api, f"{state.name} failing on purpose"),
        status=int(status),
        dumps=_dumps,
        headers=state.get("response_headers", {}),
    )


async def _malformed(request: web.Request, stream: bool) -> web.StreamResponse:
    """The ``malformed`` fault: a 200 whose JSON is cut off, as a buggy server would send."""
    if not stream:
        return web.Response(
            body=b'{"id": "cmpl-x", "choices": [{"ind', content_type="application/json"
        )
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"id": "x", "object": "chat.completion.chunk", "choices": []}\n\n')
    await response.write(b"data: {not json at all\n\n")
    await response.write_eof()
    return response


def make_app(state: DoubleState) -> web.Application:
    async def embeddings(request: web.Request) -> web.StreamResponse:
        body = await _received(request, state)
        failure = await _failure(state, "embeddings")
        if failure is not None:
            return failure
        return web.json_response(
            _embeddings(state.config, body), dumps=_dumps, headers=state.get("response_headers", {})
        )

    async def models(_: web.Request) -> web.Response:
        data = {
            "object": "list",
            "data": [
                {"id": state.name, "object": "model", "created": 0, "owned_by": "fake-upstream"}
            ],
        }
        return web.json_response(data)

    async def set_config(request: web.Request) -> web.Response:
        state.config = await request.json()
        return web.json_response({"ok": True})

    async def get_requests(_: web.Request) -> web.Response:
        return web.json_response(state.requests, dumps=_dumps)

    async def reset(_: web.Request) -> web.Response:
        state.config, state.requests, state.aborted_streams = {}, [], 0
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {"aborted_streams": state.aborted_streams, "requests": len(state.requests)}
        )

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    chat = _generation("chat", chat_turn, _chat_body, _chat_stream, state)
    text = _generation("completions", completion_turn, _text_body, _text_stream, state)
    responses = _generation(
        "responses", responses_turn, wire_responses.body, wire_responses.stream, state
    )
    messages = _generation(
        "messages", messages_turn, wire_messages.body, wire_messages.stream, state
    )
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", text)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/_double/config", set_config)
    app.router.add_get("/_double/requests", get_requests)
    app.router.add_post("/_double/reset", reset)
    app.router.add_get("/_double/stats", stats)
    return app


# -- chat and text completions ------------------------------------------------------------


def _usage(turn: Turn, plan: Plan) -> dict[str, Any]:
    prompt, completion = plan.input_tokens(turn), plan.output_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if plan.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": len(plan.reasoning)}
    return usage


def _finish(turn: Turn, plan: Plan) -> str:
    if plan.calls:
        return "tool_calls"
    return "length" if turn.max_tokens == len(plan.pieces) else "stop"


def _chat_calls(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "id": c.call_id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for c in plan.calls
    ]


def _chat_body(state: DoubleState, body: dict[str, Any], turn: Turn, plan: Plan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if plan.calls else plan.text}
    if plan.calls:
        message["tool_calls"] = _chat_calls(plan)
    if plan.reasoning:
        message[state.get("reasoning_field", "reasoning_content")] = plan.reasoning_text
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(turn, plan)}
        ],
        "usage": _usage(turn, plan),
    }


def _text_body(state: DoubleState, body: dict[str, Any], turn: Turn, plan: Plan) -> dict[str, Any]:
    choice = {"index": 0, "text": plan.text, "logprobs": None, "finish_reason": _finish(turn, plan)}
    return {
        "id": "cmpl-" + uuid.uuid4().hex,
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [choice],
        "usage": _usage(turn, plan),
    }


def _chunker(body: dict[str, Any], chat: bool) -> Callable[..., dict[str, Any]]:
    cid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(choice: dict[str, Any] | None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": cid,
            "object": kind,
            "created": created,
            "model": body.get("model"),
            "choices": [choice] if choice else [],
        }
        if usage is not None:
            obj["usage"] = usage
        return obj

    return chunk


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


async def _chat_stream(
    out: EventWriter, state: DoubleState, body: dict[str, Any], turn: Turn, plan: Plan
) -> None:
    chunk = _chunker(body, chat=True)
    await out.send(chunk(_delta({"role": "assistant", "content": ""})))
    field = state.get("reasoning_field", "reasoning_content")
    for piece in plan.reasoning:
        await out.generated(chunk(_delta({field: piece})))
    if plan.reasoning:
        await out.pause(float(state.get("reasoning_delay_ms", 0)))
    for i, call in enumerate(plan.calls):  # as OpenAI streams them: head, then argument deltas
        head = {"index": i, "id": call.call_id, "type": "function"}
        head["function"] = {"name": call.name, "arguments": ""}
        await out.generated(chunk(_delta({"tool_calls": [head]})))
        half = len(call.arguments) // 2
        for part in (call.arguments[:half], call.arguments[half:]):
            delta = {"tool_calls": [{"index": i, "function": {"arguments": part}}]}
            await out.generated(chunk(_delta(delta)))
    for piece in plan.pieces:
        await out.generated(chunk(_delta({"content": piece})))
    await out.send(chunk(_delta({}, "tool_calls" if plan.calls else "stop")))
    if (body.get("stream_options") or {}).get("include_usage"):
        await out.send(chunk(None, _usage(turn, plan)))
    await out.response.write(b"data: [DONE]\n\n")


async def _text_stream(
    out: EventWriter, state: DoubleState, body: dict[str, Any], turn: Turn, plan: Plan
) -> None:
    chunk = _chunker(body, chat=False)
    for piece in plan.pieces:
        await out.generated(
            chunk({"index": 0, "text": piece, "logprobs": None, "finish_reason": None})
        )
    await out.send(chunk({"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}))
    if (body.get("stream_options") or {}).get("include_usage"):
        await out.send(chunk(None, _usage(turn, plan)))
    await out.response.write(b"data: [DONE]\n\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible TEST DOUBLE upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--reply-words", type=int, default=8)
    args = parser.parse_args(argv)
    state = DoubleState(args.name)
    state.config["reply_words"] = args.reply_words
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(state), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
