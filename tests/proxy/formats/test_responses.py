"""The Responses API reader, fed the SDK-typed event sequences and bodies of the double."""

from __future__ import annotations

import time

import orjson
from openai.types.responses import (
    Response,
    ResponseErrorEvent,
    ResponseReasoningSummaryTextDeltaEvent,
)

from core.records import ToolCall
from proxy.formats import ResponsesReader, reader_for
from proxy.formats.responses import parse_body
from tests.proxy.formats.events import plan, responses_body, responses_events


def _read(events: list[dict]) -> ResponsesReader:  # type: ignore[type-arg]
    reader = ResponsesReader(time.perf_counter())
    for event in events:
        reader.add_chunk(event)
    return reader


def test_text_stream_with_reasoning() -> None:
    p = plan(["Twelve ", "it is."], reasoning=["3 * 4 ", "= 12."])
    reader = _read(responses_events(p))
    assert reader.text == "Twelve it is."
    assert reader.reasoning_text == "3 * 4 = 12."
    assert reader.tool_calls == ()
    assert reader.chunks == 4
    assert reader.first_token_at is not None and reader.first_content_at is not None
    assert reader.first_content_at >= reader.first_token_at  # reasoning came first
    assert reader.tokens() == (2, 4) and reader.reasoning_tokens == 2
    assert reader.finish_reason == "completed" and reader.error is None
    assert reader.response_id is not None and reader.response_id.startswith("resp_")
    assert reader.response_model == "m"


def test_parallel_function_calls_stream() -> None:
    calls = [("get_weather", '{"city": "Paris"}'), ("get_time", '{"tz":"CET"}')]
    reader = _read(responses_events(plan(calls=calls)))
    assert reader.tool_calls == tuple(ToolCall(n, a) for n, a in calls)
    assert reader.first_content_at == reader.first_token_at is not None
    assert reader.text == "" and reader.chunks == 4  # two argument deltas per call


def test_arguments_from_deltas_when_no_done_event() -> None:
    events = [
        e
        for e in responses_events(plan(calls=[("f", '{"a": [1, 2]}')]))
        if e["type"] not in ("response.function_call_arguments.done", "response.output_item.done")
    ]
    assert _read(events).tool_calls == (ToolCall("f", '{"a": [1, 2]}'),)


def test_body_reads_the_same_facts() -> None:
    p = plan(["Hi ", "there."], reasoning=["Greeting."])
    reader = ResponsesReader(time.perf_counter())
    body = responses_body(p)
    Response.model_validate(body)
    parse_body(reader, orjson.dumps(body))
    assert (reader.text, reader.reasoning_text) == ("Hi there.", "Greeting.")
    assert reader.tokens() == (2, 3) and reader.reasoning_tokens == 1
    assert reader.finish_reason == "completed" and reader.first_token_at is None
    calls = ResponsesReader(time.perf_counter())
    calls.add_body(responses_body(plan(calls=[("f", "{}"), ("g", '{"x":1}')])))
    assert calls.tool_calls == (ToolCall("f", "{}"), ToolCall("g", '{"x":1}'))


def test_reasoning_summary_counts_as_reasoning() -> None:
    event = ResponseReasoningSummaryTextDeltaEvent(
        type="response.reasoning_summary_text.delta",
        item_id="rs_1",
        output_index=0,
        summary_index=0,
        delta="Summarised thought.",
        sequence_number=3,
    )
    reader = _read([event.model_dump(mode="json")])
    assert reader.reasoning_text == "Summarised thought." and reader.first_content_at is None
    body = {
        "object": "response",
        "id": "r",
        "model": "m",
        "status": "completed",
        "output": [
            {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "S."}]}
        ],
    }
    reader = ResponsesReader(time.perf_counter())
    reader.add_body(body)
    assert reader.reasoning_text == "S."


def test_incomplete_failed_and_error_events() -> None:
    events = responses_events(plan(["a ", "b"]))
    final = events[-1]
    final["type"] = "response.incomplete"
    final["response"]["status"] = "incomplete"
    final["response"]["incomplete_details"] = {"reason": "max_output_tokens"}
    assert _read(events).finish_reason == "max_output_tokens"
    final["type"] = "response.failed"
    final["response"]["status"] = "failed"
    final["response"]["error"] = {"code": "server_error", "message": "boom"}
    failed = _read(events)
    assert failed.finish_reason == "failed"
    assert failed.error == {"type": "server_error", "code": "server_error", "message": "boom"}
    error = ResponseErrorEvent(
        type="error", code="rate_limit_exceeded", message="slow down", param=None, sequence_number=1
    )
    reader = _read([error.model_dump(mode="json")])
    assert reader.error is not None and reader.error["type"] == "rate_limit_exceeded"
    assert reader.error["message"] == "slow down"


def test_error_bodies_and_unknown_events() -> None:
    reader = ResponsesReader(time.perf_counter())
    parse_body(
        reader, b'{"error": {"message": "no", "type": "invalid_request_error", "param": "input"}}'
    )
    assert reader.error is not None and reader.error["param"] == "input"
    junk = ResponsesReader(time.perf_counter())
    parse_body(junk, b"<html>")
    junk.add_chunk({"type": "response.web_search_call.searching", "output_index": 0})
    junk.add_chunk({"type": "response.output_item.added", "item": {"type": "web_search_call"}})
    assert (junk.text, junk.tool_calls, junk.chunks, junk.error) == ("", (), 0, None)


def test_reader_for_picks_the_operations_reader() -> None:
    assert isinstance(reader_for("responses", 0.0), ResponsesReader)
    assert type(reader_for("chat", 0.0)).__name__ == "Accumulator"
    assert type(reader_for("messages", 0.0)).__name__ == "MessagesReader"


def test_a_stream_without_deltas_is_read_from_its_final_response() -> None:
    events = responses_events(plan(["Hi ", "there."], calls=[]))
    bare = [e for e in events if e["type"] in ("response.created", "response.completed")]
    reader = _read(bare)
    assert reader.text == "Hi there." and reader.chunks == 0 and reader.first_token_at is None
    full = _read(events)
    assert full.text == "Hi there."  # deltas were read: the final output is not added again


def test_read_tool_calls_feed_the_shadow_comparison() -> None:
    from scoring.comparison import tool_calls_agree

    primary = _read(responses_events(plan(calls=[("w", '{"city": "Paris", "days": 2}')])))
    same = _read(responses_events(plan(calls=[("w", '{"days":2.0,"city":"Paris"}')])))
    other = _read(responses_events(plan(calls=[("w", '{"city": "Rome", "days": 2}')])))
    assert tool_calls_agree(primary.tool_calls, same.tool_calls) == (True, "same")
    assert tool_calls_agree(primary.tool_calls, other.tool_calls) == (False, "wrong_arguments")
