"""CPU cost of reading responses as they pass through: per stream event, per API.

Run::

    .venv/bin/python benchmarks/response_readers.py [--events 200000]

The proxy parses each SSE ``data`` payload once and hands the object to the operation's
reader (:mod:`proxy.formats`). This measures both halves on one core: ``orjson.loads`` of the
payload, and the reader's ``add_chunk``, for the events that dominate a stream — an answer-text
delta of chat (``chat.completion.chunk``), the Responses API (``response.output_text.delta``)
and Messages (``content_block_delta``/``text_delta``), plus a tool-call-argument delta of
each, and the whole typed sequence of a 64-token Responses and Messages answer divided by
its events. The payloads come from the upstream double's wire formats, which build them with
the official SDKs' types. Process CPU time, best of five runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' wire builders

from core.records import Operation
from proxy.formats import ResponseReader, reader_for
from tests.doubles import wire_messages, wire_responses
from tests.doubles.reply_plan import Plan, PlannedCall, Turn


class _Collect:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    async def send(self, obj: dict[str, Any], event: str | None = None) -> None:
        self.payloads.append(orjson.dumps(obj))

    generated = send

    async def pause(self, ms: float) -> None:
        return None


def _sequence(stream: Callable[..., Any], plan: Plan) -> list[bytes]:
    out = _Collect()
    asyncio.run(stream(out, {}, {"model": "m"}, Turn("q"), plan))
    return out.payloads


def _chat_delta(delta: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-0123456789abcdef",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "served-model",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
        }
    )


def _cost(operation: Operation, payloads: list[bytes], n: int) -> tuple[float, float]:
    """(µs per event parsing + reading, µs per event reading only), best of five."""
    objects = [orjson.loads(p) for p in payloads]
    rounds = max(1, n // len(payloads))
    both = read = float("inf")
    for _ in range(5):
        reader: ResponseReader = reader_for(operation, time.perf_counter())
        t0 = time.process_time()
        for _ in range(rounds):
            for payload in payloads:
                reader.add_chunk(orjson.loads(payload))
        t1 = time.process_time()
        reader = reader_for(operation, time.perf_counter())
        for _ in range(rounds):
            for obj in objects:
                reader.add_chunk(obj)
        t2 = time.process_time()
        events = rounds * len(payloads)
        both, read = min(both, (t1 - t0) / events * 1e6), min(read, (t2 - t1) / events * 1e6)
    return both, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per measurement")
    args = parser.parse_args()
    words = [f"w{i} " for i in range(64)]
    text, calls = Plan([], words, []), Plan([], [], [PlannedCall("c1", "get_weather", "{}")])
    chat_call = {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}
    responses_seq = _sequence(wire_responses.stream, text)
    messages_seq = _sequence(wire_messages.stream, text)
    rows = [
        ("chat: content delta", "chat", [_chat_delta({"content": "word "})]),
        ("chat: tool-call argument delta", "chat", [_chat_delta(chat_call)]),
        ("responses: output_text.delta", "responses", [responses_seq[5]]),
        (
            "responses: function_call_arguments.delta",
            "responses",
            [p for p in _sequence(wire_responses.stream, calls) if b"arguments.delta" in p][:1],
        ),
        ("messages: text_delta", "messages", [messages_seq[4]]),
        (
            "messages: input_json_delta",
            "messages",
            [p for p in _sequence(wire_messages.stream, calls) if b"input_json_delta" in p][:1],
        ),
        (f"responses: whole answer ({len(responses_seq)} events)", "responses", responses_seq),
        (f"messages: whole answer ({len(messages_seq)} events)", "messages", messages_seq),
    ]
    print(f"{'event':<46} {'bytes':>6} {'parse+read µs':>14} {'read µs':>8}")
    for label, operation, payloads in rows:
        size = sum(map(len, payloads)) // len(payloads)
        both, read = _cost(operation, payloads, args.events)  # type: ignore[arg-type]
        print(f"{label:<46} {size:>6} {both:>14.2f} {read:>8.2f}")


if __name__ == "__main__":
    main()
