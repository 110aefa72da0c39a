"""The chat and completions reader, fed chunks and bodies built with the `openai` SDK types."""

from __future__ import annotations

import time
from typing import Any

import orjson
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion import Completion

from core.records import ToolCall
from proxy.openai_format import Accumulator, parse_body


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A chunk validated by the SDK, then dumped as it travels (``model_extra`` kept)."""
    obj = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "served",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return ChatCompletionChunk.model_validate(obj).model_dump(mode="json", exclude_unset=True)


def test_stream_with_reasoning_then_content_marks_both_first_token_times() -> None:
    acc = Accumulator(time.perf_counter())
    acc.add_chunk(_chunk({"role": "assistant", "content": ""}))
    assert acc.first_token_at is None and acc.chunks == 0  # the role chunk generates nothing
    acc.add_chunk(_chunk({"reasoning_content": "Let me think. "}))
    acc.add_chunk(_chunk({"reasoning": "3 * 4 = 12."}))  # vLLM's newer field name
    assert acc.first_token_at is not None and acc.first_content_at is None
    time.sleep(0.002)
    acc.add_chunk(_chunk({"content": "The answer "}))
    acc.add_chunk(_chunk({"content": "is 12."}))
    acc.add_chunk(_chunk({}, "stop"))
    usage = {
        "prompt_tokens": 7,
        "completion_tokens": 20,
        "total_tokens": 27,
        "completion_tokens_details": {"reasoning_tokens": 9},
    }
    acc.add_chunk(
        ChatCompletionChunk.model_validate(
            {**_chunk({}), "choices": [], "usage": usage}
        ).model_dump(mode="json", exclude_unset=True)
    )
    assert acc.text == "The answer is 12."
    assert acc.reasoning_text == "Let me think. 3 * 4 = 12."
    assert acc.first_content_at is not None and acc.first_content_at > acc.first_token_at
    assert acc.ttft_s is not None and acc.ttfc_s is not None and acc.ttfc_s > acc.ttft_s
    assert acc.chunks == 4
    assert acc.tokens() == (7, 20) and acc.reasoning_tokens == 9
    assert acc.finish_reason == "stop" and acc.tool_calls == ()
    assert (acc.response_id, acc.response_model) == ("chatcmpl-1", "served")


def test_parallel_tool_calls_are_assembled_from_deltas_by_index() -> None:
    acc = Accumulator(time.perf_counter())
    head = [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_time", "arguments": ""},
        },
    ]
    acc.add_chunk(_chunk({"role": "assistant", "tool_calls": head}))
    for index, part in [(0, '{"city": '), (1, '{"tz"'), (0, '"Paris"}'), (1, ': "CET"}')]:
        acc.add_chunk(_chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
    acc.add_chunk(_chunk({}, "tool_calls"))
    assert acc.tool_calls == (
        ToolCall("get_weather", '{"city": "Paris"}'),
        ToolCall("get_time", '{"tz": "CET"}'),
    )
    assert acc.first_content_at == acc.first_token_at is not None  # a call is an answer
    assert acc.finish_reason == "tool_calls" and acc.text == ""


def test_other_choices_of_an_n_stream_are_not_read() -> None:
    acc = Accumulator(time.perf_counter())
    other = _chunk({"content": "second answer"})
    other["choices"][0]["index"] = 1
    acc.add_chunk(other)
    acc.add_chunk(_chunk({"content": "first answer"}))
    assert acc.text == "first answer" and acc.chunks == 1


def test_body_with_tool_calls_reasoning_and_usage() -> None:
    body = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 0,
            "model": "served",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "Need the weather.",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "a", "arguments": "{}"},
                            },
                            {
                                "id": "c2",
                                "type": "function",
                                "function": {"name": "b", "arguments": '{"x":1}'},
                            },
                        ],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 11,
                "total_tokens": 14,
                "completion_tokens_details": {"reasoning_tokens": 4},
            },
        }
    )
    acc = Accumulator(time.perf_counter())
    parse_body(acc, orjson.dumps(body.model_dump(mode="json", exclude_unset=True)))
    assert acc.tool_calls == (ToolCall("a", "{}"), ToolCall("b", '{"x":1}'))
    assert acc.reasoning_text == "Need the weather." and acc.reasoning_tokens == 4
    assert acc.tokens() == (3, 11) and acc.finish_reason == "tool_calls"
    assert acc.first_token_at is None  # a body has no token times; the pipeline times it


def test_text_completion_body_and_stream() -> None:
    body = Completion.model_validate(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "text": "four", "finish_reason": "length", "logprobs": None}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        }
    )
    acc = Accumulator(time.perf_counter())
    parse_body(acc, body.model_dump_json().encode())
    assert (acc.text, acc.finish_reason, acc.tokens()) == ("four", "length", (2, 1))
    streamed = Accumulator(time.perf_counter())
    streamed.add_chunk(body.model_dump(mode="json"))
    assert streamed.text == "four" and streamed.first_content_at is not None


def test_errors_and_junk() -> None:
    acc = Accumulator(time.perf_counter())
    parse_body(acc, b'{"error": {"message": "bad", "type": "invalid_request_error"}}')
    assert acc.error == {"message": "bad", "type": "invalid_request_error"}
    acc = Accumulator(time.perf_counter())
    parse_body(acc, b'{"error": "overloaded"}')
    assert acc.error == {"message": "overloaded"}
    acc = Accumulator(time.perf_counter())
    parse_body(acc, b"not json")
    parse_body(acc, b"[1, 2]")
    acc.add_chunk({"error": {"message": "mid-stream", "type": "server_error"}})
    assert acc.error == {"message": "mid-stream", "type": "server_error"} and acc.text == ""
    assert acc.tokens() == (None, None) and acc.reasoning_tokens is None


def test_embeddings_body_gives_its_usage() -> None:
    from openai.types import CreateEmbeddingResponse

    from proxy.formats import reader_for

    body = CreateEmbeddingResponse.model_validate(
        {
            "object": "list",
            "model": "m",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )
    reader = reader_for("embeddings", time.perf_counter())
    reader.add_body(body.model_dump(mode="json"))
    assert reader.tokens() == (4, None) and reader.text == "" and reader.error is None
