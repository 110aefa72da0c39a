"""The engine serves the Responses API on the tiny model (fp32, CPU): bodies and event streams
that the ``openai`` SDK's own types parse back, input translation, and its refusals; Messages
and embeddings get a clear 404 in the client's error shape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import ErrorResponse
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from transformers import AutoTokenizer

from backends.base import BackendRequest
from backends.engine import EngineBackend
from backends.engine.params import InvalidRequest, build_prompt_ids, read_sampling
from backends.engine.responses_input import responses_messages
from proxy.formats import ResponsesReader
from tests.backends.engine_helpers import TokenCounter, answer, chat, chunks, engine
from tests.doubles.tiny_llama import build_tiny_llama

_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(Path(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture
async def backend(model_dir: Path, counter: TokenCounter) -> AsyncIterator[EngineBackend]:
    backend = engine(model_dir)
    backend.on_tokens = counter
    await backend.start()
    yield backend
    await backend.aclose()


def responses(stream: bool = False, rid: str = "r", **body: Any) -> BackendRequest:
    return BackendRequest("responses", {"model": "tiny", "input": "Hello", **body}, stream, rid)


async def test_body_is_a_response_the_sdk_parses(
    backend: EngineBackend, counter: TokenCounter
) -> None:
    before = time.time()
    got = await backend.send(responses(rid="a", instructions="Be brief.", max_output_tokens=6))
    assert (got.status, got.content_type, got.events) == (200, "application/json", None)
    response = Response.model_validate(orjson.loads(got.body))
    assert response.id.startswith("resp_") and response.object == "response"
    assert before <= response.created_at <= time.time()
    assert response.model == "tiny" and response.instructions == "Be brief."
    assert response.status == "incomplete"  # 6 tokens ran out the budget
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.output_text and message.content[0].type == "output_text"
    assert response.usage is not None and response.usage.output_tokens == 6
    assert response.usage.total_tokens == response.usage.input_tokens + 6
    assert response.temperature == 0.0  # greedy, the engine's default, echoed truthfully
    assert counter.counts["a"] == 6


async def test_same_answer_as_chat_for_the_same_prompt(backend: EngineBackend) -> None:
    via_chat = answer(await backend.send(chat("Hello", max_tokens=8)))
    got = await backend.send(responses(max_output_tokens=8))
    assert Response.model_validate_json(got.body).output_text == via_chat  # greedy: identical


async def test_stream_is_the_typed_event_sequence(backend: EngineBackend) -> None:
    whole = Response.model_validate_json((await backend.send(responses(max_output_tokens=9))).body)
    got = await backend.send(responses(stream=True, rid="s", max_output_tokens=9, tools=[_WEATHER]))
    assert (got.status, got.content_type) == (200, "text/event-stream")
    payloads = await chunks(got)
    assert b"[DONE]" not in payloads  # Responses streams have no [DONE]
    events = [_EVENT.validate_python(p) for p in payloads]
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) >= 2, "tokens arrive as separate events"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert "".join(d.delta for d in deltas) == final.output_text == whole.output_text
    assert final.usage is not None and final.usage.output_tokens == 9
    assert [t.name for t in final.tools] == ["get_weather"]
    assert len({events[0].response.id, final.id}) == 1
    reader = ResponsesReader(time.perf_counter())  # the proxy's reader reads it all back
    for payload in payloads:
        reader.add_chunk(payload)
    assert (reader.text, reader.tokens()[1], reader.finish_reason) == (
        whole.output_text,
        9,
        "max_output_tokens",
    )


async def test_stream_that_ends_on_its_own_is_completed(backend: EngineBackend) -> None:
    # ``stop`` is no Responses parameter, but the engine reads it from any body: it ends the
    # answer at its first character, a natural end rather than the budget.
    first = Response.model_validate_json((await backend.send(responses(max_output_tokens=1))).body)
    got = await backend.send(responses(stream=True, stop=[first.output_text[:1]]))
    *_, last = await chunks(got)
    assert last["type"] == "response.completed"
    assert Response.model_validate(last["response"]).status == "completed"


async def test_items_with_a_tool_round_trip_reach_the_template(backend: EngineBackend) -> None:
    items = [
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ]
    got = await backend.send(responses(input=items, tools=[_WEATHER], max_output_tokens=3))
    assert got.status == 200 and Response.model_validate_json(got.body).output_text


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0]", "only function tools"),
        ({"previous_response_id": "resp_1"}, "previous_response_id", "does not store"),
        ({"conversation": "conv_1"}, "conversation", "does not store"),
        ({"background": True}, "background", "background"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}},
            "text.format",
            "text",
        ),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0]", "item_reference"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input[0].content",
            "text parts",
        ),
        ({"input": []}, "input", "non-empty"),
        ({"input": [{"role": "system", "content": "only rules"}]}, "input", "no message"),
        ({"max_output_tokens": 0}, "max_output_tokens", ">= 1"),
        ({"top_logprobs": 2}, "logprobs", "logprobs"),
    ],
)
async def test_unsupported_requests_get_a_400_naming_the_parameter(
    backend: EngineBackend, body: dict[str, Any], param: str, words: str
) -> None:
    got = await backend.send(responses(**body))
    assert got.status == 400
    error = orjson.loads(got.body)["error"]
    assert error["param"] == param and words in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_messages_and_embeddings_get_a_404_in_the_clients_shape(
    backend: EngineBackend,
) -> None:
    messages = await backend.send(
        BackendRequest("messages", {"model": "tiny", "max_tokens": 5, "messages": []}, False, "m")
    )
    assert messages.status == 404
    parsed = ErrorResponse.model_validate_json(messages.body)  # Anthropic's error shape
    assert parsed.error.type == "not_found_error"
    assert "does not serve the Messages API" in parsed.error.message
    embeddings = await backend.send(
        BackendRequest("embeddings", {"model": "tiny", "input": "x"}, False, "e")
    )
    assert embeddings.status == 404
    error = orjson.loads(embeddings.body)["error"]
    assert (
        "does not serve embeddings" in error["message"] and error["code"] == "unsupported_endpoint"
    )


# -- translation, without a model ---------------------------------------------------------


def test_input_items_translate_to_chat_messages() -> None:
    items = [
        {"type": "message", "role": "developer", "content": "Rules."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "reasoning", "id": "rs", "summary": []},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "a", "name": "w", "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "b", "name": "w", "arguments": "not json"},
        {"type": "function_call_output", "call_id": "a", "output": "sunny"},
        {
            "type": "function_call_output",
            "call_id": "b",
            "output": [{"type": "input_text", "text": "rain"}],
        },
    ]
    got = responses_messages({"instructions": "Be brief.", "input": items})
    assert got == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "w", "arguments": {"city": "Paris"}},
                },
                {"id": "b", "type": "function", "function": {"name": "w", "arguments": "not json"}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": "rain"},
    ]
    assert responses_messages({"input": "hi"}) == [{"role": "user", "content": "hi"}]


def test_prompt_and_sampling_of_a_responses_request(model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    body = {"model": "m", "input": "hi", "instructions": "rules", "max_output_tokens": 5}
    ids = build_prompt_ids("responses", body, tokenizer, None)
    as_chat = {
        "messages": [{"role": "system", "content": "rules"}, {"role": "user", "content": "hi"}]
    }
    assert ids == build_prompt_ids("chat", as_chat, tokenizer, None)
    assert read_sampling("responses", body).max_tokens == 5
    with pytest.raises(InvalidRequest) as caught:
        build_prompt_ids("responses", {**body, "input": "x" * 3000}, tokenizer, 100)
    assert caught.value.param == "input" and caught.value.code == "context_length_exceeded"
