"""The Messages API reader, fed the SDK-typed event sequences and bodies of the double."""

from __future__ import annotations

import time

import orjson
from anthropic.types import Message

from core.records import ToolCall
from proxy.formats import MessagesReader
from proxy.formats.messages import parse_body
from tests.proxy.formats.events import messages_body, messages_events, plan


def _read(events: list[dict]) -> MessagesReader:  # type: ignore[type-arg]
    reader = MessagesReader(time.perf_counter())
    for event in events:
        reader.add_chunk(event)
    return reader


def test_text_stream_with_thinking() -> None:
    reader = _read(
        messages_events(plan(["Paris ", "it is."], reasoning=["Capital ", "of France."]))
    )
    assert reader.text == "Paris it is."
    assert reader.reasoning_text == "Capital of France."
    assert reader.chunks == 4  # the signature delta generates nothing
    assert reader.first_token_at is not None and reader.first_content_at is not None
    assert reader.first_content_at >= reader.first_token_at
    assert reader.tokens() == (2, 4)  # input from message_start, output from message_delta
    assert reader.reasoning_tokens is None  # not reported: unknown, not zero
    assert reader.finish_reason == "end_turn"
    assert reader.response_id is not None and reader.response_id.startswith("msg_")


def test_tool_use_stream_assembles_input_json() -> None:
    calls = [("get_weather", '{"city": "Oslo"}'), ("get_time", '{"tz":"CET"}')]
    reader = _read(messages_events(plan(calls=calls)))
    assert reader.tool_calls == tuple(ToolCall(n, a) for n, a in calls)
    assert reader.finish_reason == "tool_use" and reader.text == ""


def test_tool_use_without_input_deltas_has_empty_object() -> None:
    events = [
        e
        for e in messages_events(plan(calls=[("ping", "{}")]))
        if not (e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta")
    ]
    assert _read(events).tool_calls == (ToolCall("ping", "{}"),)


def test_body_reads_the_same_facts() -> None:
    body = messages_body(plan(["Hi."], reasoning=["Hmm."], calls=[]))
    Message.model_validate(body)
    reader = MessagesReader(time.perf_counter())
    parse_body(reader, orjson.dumps(body))
    assert (reader.text, reader.reasoning_text, reader.finish_reason) == ("Hi.", "Hmm.", "end_turn")
    assert reader.tokens() == (2, 2)
    tools = MessagesReader(time.perf_counter())
    tools.add_body(messages_body(plan(calls=[("f", '{"b": 2, "a": 1}')])))
    assert tools.tool_calls == (ToolCall("f", '{"b":2,"a":1}'),)  # the input object as JSON


def test_thinking_tokens_when_reported() -> None:
    events = messages_events(plan(["x"], reasoning=["y"]))
    events[-2]["usage"]["output_tokens_details"] = {"thinking_tokens": 5}
    assert _read(events).reasoning_tokens == 5


def test_errors() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert _read([error]).error == error["error"]
    reader = MessagesReader(time.perf_counter())
    parse_body(reader, orjson.dumps(error))
    assert reader.error == error["error"]
    junk = MessagesReader(time.perf_counter())
    parse_body(junk, b"nope")
    junk.add_chunk({"type": "ping"})
    junk.add_chunk({"type": "content_block_delta", "index": 0, "delta": "bad"})
    assert (junk.text, junk.error, junk.chunks) == ("", None, 0)
