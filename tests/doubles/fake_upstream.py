"""TEST DOUBLE: a small OpenAI-compatible server that stands in for vLLM / SGLang / TGI.

It is not a model. It answers chat and text completions with canned text, in OpenAI's exact
shapes (streaming and not, usage chunk only when ``stream_options.include_usage`` is set), and
lets a test control its behaviour at run time through ``POST /_double/config``:

    latency_ms           wait before the response starts (a timeout test sets it high)
    chunk_delay_ms       wait between streamed chunks
    status               answer every request with this HTTP status and an OpenAI error body
    fail_times           ... but only for the next N requests (then healthy again)
    break_after_chunks   streams: drop the connection after N content chunks
    reply_words          how many words the canned reply has
    answers              {substring of the last user message: reply text} for scripted replies
    solve                {"accuracy": 0.9, "seed": 0}: answer multi-hop and GSM8K questions,
                         right for a share ``accuracy`` of the questions (see below)

``GET /_double/requests`` lists what it received (path, selected headers, body); a request
whose last message is a ``tool`` turn is answered with the tool's result, and a request that
offers ``tools`` is answered with a call to the first tool, so agent round trips can be tested.

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
import hashlib
import re
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

__all__ = ["DoubleState", "main", "make_app"]

_LOGGED_HEADERS = (
    "x-request-id",
    "traceparent",
    "authorization",
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


def _words(n: int, name: str) -> list[str]:
    base = f"Hello from {name}.".split()
    filler = [f"w{i}" for i in range(max(0, n - len(base)))]
    return (base + filler)[: max(n, 1)]


def _last_user_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        for msg in reversed(body["messages"]):
            if msg.get("role") == "user":
                content = msg.get("content")
                return content if isinstance(content, str) else orjson.dumps(content).decode()
        return ""
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))


_DEFINITION = re.compile(r"([a-z]) = ([a-z]|\d+)(?: ([+\-*]) ([a-z]|\d+))?\.")
_TARGET = re.compile(r"What is ([a-z])\?")
_GSM8K: dict[str, int] = {}


def _multihop_answer(question: str) -> int | None:
    target = _TARGET.search(question)
    if target is None:
        return None
    values: dict[str, int] = {}

    def value(token: str) -> int:
        return int(token) if token.isdigit() else values[token]

    try:
        for name, left, op, right in _DEFINITION.findall(question):
            x = value(left)
            if op:
                y = value(right)
                x = x + y if op == "+" else x - y if op == "-" else x * y
            values[name] = x
        return values[target.group(1)]
    except KeyError:
        return None


def _gsm8k_answer(question: str) -> int | None:
    if not _GSM8K:
        from scoring.datasets.gsm8k import iter_gsm8k

        for item in iter_gsm8k():
            if item.gold == item.gold.to_integral_value():
                _GSM8K[item.question] = int(item.gold)
    return _GSM8K.get(question)


def _solved(state: DoubleState, question: str) -> list[str] | None:
    """The reply pieces of ``solve`` mode, or ``None`` for a question it cannot read."""
    solve = state.get("solve", None)
    if not solve:
        return None
    answer = _multihop_answer(question)
    if answer is None:
        answer = _gsm8k_answer(question)
    if answer is None:
        return None
    digest = hashlib.sha256(f"{solve.get('seed', 0)}|{question}".encode()).digest()
    right = int.from_bytes(digest[:8], "big") / 2**64 < float(solve.get("accuracy", 1.0))
    given = answer if right else answer + 7
    n = max(3, int(state.get("reply_words", 8)))
    filler = ["Working", "through", "it", "step", "by", "step.", *(f"w{i}" for i in range(n))]
    words = [*filler[: n - 2], "####", str(given)]
    return [w + " " for w in words]


def _plan_reply(
    state: DoubleState, body: dict[str, Any]
) -> tuple[list[str], dict[str, Any] | None]:
    """Return (content pieces, tool_call or None)."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return [f"The tool said: {messages[-1].get('content', '')}"], None
    if body.get("tools") and messages and messages[-1].get("role") == "user":
        fn = body["tools"][0]["function"]["name"]
        call = {
            "id": "call_" + uuid.uuid4().hex[:12],
            "type": "function",
            "function": {"name": fn, "arguments": orjson.dumps({"city": "Paris"}).decode()},
        }
        return [], call
    question = _last_user_text(body)
    solved = _solved(state, question)
    if solved is not None:
        return solved, None
    for key, answer in state.get("answers", {}).items():
        if key in question:
            return [piece + " " for piece in str(answer).split(" ")], None
    words = _words(int(state.get("reply_words", 8)), state.name)
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(max_tokens, int):
        words = words[:max_tokens]
    return [w + " " for w in words], None


def _usage(body: dict[str, Any], n_completion: int) -> dict[str, int]:
    prompt_tokens = len(_last_user_text(body).split()) or 1
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": n_completion,
        "total_tokens": prompt_tokens + n_completion,
    }


def make_app(state: DoubleState) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        state.requests.append(
            {
                "path": request.path,
                "headers": {h: request.headers[h] for h in _LOGGED_HEADERS if h in request.headers},
                "body": body,
                "at": time.time(),
            }
        )
        await asyncio.sleep(float(state.get("latency_ms", 0)) / 1000)
        fail_times = state.get("fail_times", None)
        status = state.get("status", None)
        if status and (fail_times is None or fail_times > 0):
            if fail_times is not None:
                state.config["fail_times"] = fail_times - 1
            err = {
                "error": {
                    "message": f"{state.name} failing on purpose",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            return web.json_response(
                err, status=int(status), dumps=lambda o: orjson.dumps(o).decode()
            )
        chat = request.path.endswith("/chat/completions")
        pieces, tool_call = _plan_reply(state, body)
        if body.get("stream"):
            try:
                return await _stream(request, state, body, chat, pieces, tool_call)
            except (ConnectionResetError, asyncio.CancelledError):
                state.aborted_streams += 1
                raise
        return _complete(state, body, chat, pieces, tool_call)

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
        return web.json_response(state.requests, dumps=lambda o: orjson.dumps(o).decode())

    async def reset(_: web.Request) -> web.Response:
        state.config, state.requests, state.aborted_streams = {}, [], 0
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {"aborted_streams": state.aborted_streams, "requests": len(state.requests)}
        )

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/_double/config", set_config)
    app.router.add_get("/_double/requests", get_requests)
    app.router.add_post("/_double/reset", reset)
    app.router.add_get("/_double/stats", stats)
    return app


def _complete(
    state: DoubleState,
    body: dict[str, Any],
    chat: bool,
    pieces: list[str],
    tool_call: dict[str, Any] | None,
) -> web.Response:
    text = "".join(pieces).rstrip()
    n = len(pieces) if pieces else 5
    finish = (
        "tool_calls"
        if tool_call
        else ("length" if body.get("max_tokens") == len(pieces) else "stop")
    )
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text}
        if tool_call:
            message["tool_calls"] = [tool_call]
        obj: dict[str, Any] = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": _usage(body, n),
        }
    else:
        obj = {
            "id": "cmpl-" + uuid.uuid4().hex,
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(body, n),
        }
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


async def _stream(
    request: web.Request,
    state: DoubleState,
    body: dict[str, Any],
    chat: bool,
    pieces: list[str],
    tool_call: dict[str, Any] | None,
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    cid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    created = int(time.time())
    kind = "chat.completion.chunk" if chat else "text_completion"
    delay = float(state.get("chunk_delay_ms", 0)) / 1000
    break_after = state.get("break_after_chunks", None)

    def chunk(choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": cid,
            "object": kind,
            "created": created,
            "model": body.get("model"),
            "choices": [choice] if choice else [],
        }
        if usage is not None:
            obj["usage"] = usage
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    if chat:
        await resp.write(
            chunk(
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            )
        )
    if tool_call:
        await resp.write(
            chunk(
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, **tool_call}]},
                    "logprobs": None,
                    "finish_reason": None,
                }
            )
        )
    for i, piece in enumerate(pieces):
        if break_after is not None and i >= break_after:
            assert request.transport is not None
            request.transport.abort()  # a crash mid-stream, not a clean end
            return resp
        if delay:
            await asyncio.sleep(delay)
        choice = (
            {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
            if chat
            else {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
        )
        await resp.write(chunk(choice))
    finish = "tool_calls" if tool_call else "stop"
    last = (
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
        if chat
        else {"index": 0, "text": "", "logprobs": None, "finish_reason": finish}
    )
    await resp.write(chunk(last))
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(chunk(None, _usage(body, len(pieces) if pieces else 5)))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


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
