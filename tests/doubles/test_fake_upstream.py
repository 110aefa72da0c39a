"""The upstream double speaks the agent wire formats as the official SDKs define them.

Every test talks to the double over a real socket with an official client (``openai``,
``anthropic``, ``openai-agents``, ``langchain-openai``) or reads its raw SSE bytes and
validates each event against the SDK's own types, so a shape the SDKs would not accept fails
here before it can mislead a proxy test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from telemetry.hops import agent_hop_position, prior_tool_calls_per_hop
from tests.doubles.conftest import ServedDouble

_RESPONSE_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
_MESSAGE_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
_ANTHROPIC_TOOL = {"name": "get_weather", "input_schema": _WEATHER["parameters"]}


_OPEN: list[Any] = []
"""Clients a test made, closed after it (an unclosed client's socket warns, and warnings fail)."""


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _oa(double: ServedDouble) -> openai.OpenAI:
    _OPEN.append(openai.OpenAI(base_url=double.url + "/v1", api_key="unused", max_retries=0))
    return _OPEN[-1]  # type: ignore[no-any-return]


def _an(double: ServedDouble) -> anthropic.Anthropic:
    _OPEN.append(anthropic.Anthropic(base_url=double.url, api_key="unused", max_retries=0))
    return _OPEN[-1]  # type: ignore[no-any-return]


def _sse(double: ServedDouble, path: str, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The raw stream as (event line, parsed data) pairs, with arrival times checked apart."""
    events: list[tuple[str | None, Any]] = []
    with httpx.stream("POST", double.url + path, json=body, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name: str | None = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
                events.append((name, data if data == "[DONE]" else orjson.loads(data)))
                name = None
    return events


# -- Responses API ------------------------------------------------------------------------


def test_responses_body_is_a_valid_response_with_usage(double: ServedDouble) -> None:
    raw = httpx.post(double.url + "/v1/responses", json={"model": "m", "input": "hi there"})
    response = Response.model_validate(raw.json())
    assert response.status == "completed"
    assert response.output_text == "Hello from bf16. w0 w1 w2 w3 w4"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 8)
    assert _oa(double).responses.create(model="m", input="hi").output_text == response.output_text


def test_responses_stream_is_the_typed_event_sequence(double: ServedDouble) -> None:
    events = _sse(double, "/v1/responses", {"model": "m", "input": "hi", "stream": True})
    parsed = [_RESPONSE_EVENT.validate_python(data) for _, data in events]
    assert all(name == data["type"] for name, data in events)  # event: line = payload type
    types = [e.type for e in parsed]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    deltas = "".join(e.delta for e in parsed if e.type == "response.output_text.delta")
    assert deltas == parsed[-1].response.output_text == "Hello from bf16. w0 w1 w2 w3 w4"
    assert parsed[-1].response.usage.output_tokens == 8


def test_responses_parallel_tool_calls_and_reasoning_stream(double: ServedDouble) -> None:
    double.configure(
        reasoning_words=3,
        tool_calls=[
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_time", "arguments": {"tz": "CET", "precise": 1.5}},
        ],
    )
    with _oa(double).responses.stream(model="m", input="hi", tools=[_WEATHER]) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.reasoning_text.delta" in types
    assert types.index("response.reasoning_text.delta") < types.index(
        "response.function_call_arguments.delta"
    )
    kinds = [item.type for item in final.output]
    assert kinds == ["reasoning", "function_call", "function_call"]
    calls = [(i.name, orjson.loads(i.arguments)) for i in final.output if i.type == "function_call"]
    assert calls == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET", "precise": 1.5}),
    ]
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens == 3


def test_responses_tool_round_trip_and_marker(double: ServedDouble) -> None:
    client = _oa(double)
    marker = '[[tool_calls: [{"name": "lookup", "arguments": {"q": "x"}}]]]'
    first = client.responses.create(model="m", input=f"find it {marker}", tools=[_WEATHER])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "lookup"
    follow_up = [
        {"role": "user", "content": "find it"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": "{}"},
        {"type": "function_call_output", "call_id": call.call_id, "output": "42 apples"},
    ]
    second = client.responses.create(model="m", input=follow_up, tools=[_WEATHER])  # type: ignore[arg-type]
    assert second.output_text == "The tool said: 42 apples"


async def test_responses_async_streaming_client(double: ServedDouble) -> None:
    client = openai.AsyncOpenAI(base_url=double.url + "/v1", api_key="unused", max_retries=0)
    stream = await client.responses.create(model="m", input="hi", stream=True)
    text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
    assert text == "Hello from bf16. w0 w1 w2 w3 w4"
    await client.close()


def test_responses_error_in_openai_shape(double: ServedDouble) -> None:
    double.configure(status=503, fail_times=1)
    with pytest.raises(openai.InternalServerError, match="failing on purpose"):
        _oa(double).responses.create(model="m", input="hi")
    assert _oa(double).responses.create(model="m", input="hi").status == "completed"


# -- chat completions: reasoning and tool-call deltas -------------------------------------


def test_chat_reasoning_deltas_come_first_after_a_delay(double: ServedDouble) -> None:
    double.configure(reasoning_words=2, reasoning_delay_ms=150)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    arrivals: list[tuple[float, dict[str, Any]]] = []
    started = time.perf_counter()
    with httpx.stream("POST", double.url + "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunk = ChatCompletionChunk.model_validate_json(line[6:])
                if chunk.choices:
                    arrivals.append((time.perf_counter(), chunk.choices[0].delta.model_dump()))
    reasoning = [(t, d) for t, d in arrivals if d.get("reasoning_content")]
    content = [(t, d) for t, d in arrivals if d.get("content")]
    assert "".join(d["reasoning_content"] for _, d in reasoning) == "Thinking 0. Thinking 1. "
    assert reasoning[-1][0] <= content[0][0]
    assert content[0][0] - started >= 0.15  # a lower bound: the double waits before content
    whole = ChatCompletion.model_validate(
        httpx.post(double.url + "/v1/chat/completions", json={**body, "stream": False}).json()
    )
    assert whole.usage is not None and whole.usage.completion_tokens_details is not None
    assert whole.usage.completion_tokens_details.reasoning_tokens == 2


def test_chat_parallel_tool_calls_stream_as_openai_does(double: ServedDouble) -> None:
    double.configure(
        tool_calls=[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": "{}"}]
    )
    tools = [{"type": "function", "function": {"name": "a"}}]
    client = _oa(double)
    messages = [{"role": "user", "content": "go"}]
    with client.chat.completions.stream(model="m", messages=messages, tools=tools) as stream:  # type: ignore[arg-type]
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("a", '{"x":1}'),
        ("b", "{}"),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_chat_without_config_answers_as_before(double: ServedDouble) -> None:
    client = _oa(double)
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    answer = client.chat.completions.create(model="m", messages=messages, tools=tools)  # type: ignore[arg-type]
    call = (answer.choices[0].message.tool_calls or [])[0]
    assert (call.function.name, orjson.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    plain = client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert plain.choices[0].message.content == "Hello from bf16. w0 w1 w2 w3 w4"
    assert plain.choices[0].message.model_extra == {}  # no reasoning field unless asked for


# -- Anthropic Messages -------------------------------------------------------------------


def test_messages_create_with_tool_use_and_round_trip(double: ServedDouble) -> None:
    client = _an(double)
    user = {"role": "user", "content": "weather?"}
    first = client.messages.create(
        model="m", max_tokens=64, messages=[user], tools=[_ANTHROPIC_TOOL]
    )  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and (use.name, use.input) == ("get_weather", {"city": "Paris"})
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
    history = [
        user,
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [result]},
    ]
    second = client.messages.create(
        model="m", max_tokens=64, messages=history, tools=[_ANTHROPIC_TOOL]
    )  # type: ignore[arg-type]
    assert second.content[0].type == "text" and second.content[0].text == "The tool said: sunny"
    sent = double.state.requests[1]["body"]
    assert agent_hop_position("messages", sent) == 1  # the tool_result turn adds no hop
    raw = httpx.post(
        double.url + "/v1/messages", json={"model": "m", "max_tokens": 9, "messages": [user]}
    )
    assert Message.model_validate(raw.json()).usage.output_tokens == 8


def test_messages_stream_events_and_sdk_stream(double: ServedDouble) -> None:
    double.configure(reasoning_words=2)
    body = {
        "model": "m",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    events = [(n, d) for n, d in _sse(double, "/v1/messages", body) if d["type"] != "ping"]
    assert all(name == data["type"] for name, data in events)
    parsed = [_MESSAGE_EVENT.validate_python(data) for _, data in events]
    types = [e.type for e in parsed]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    deltas = [e.delta.type for e in parsed if e.type == "content_block_delta"]
    assert deltas[:3] == ["thinking_delta", "thinking_delta", "signature_delta"]
    with _an(double).messages.stream(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from bf16. w0 w1 w2 w3 w4"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.usage.output_tokens == 10 and final.stop_reason == "end_turn"


def test_messages_stream_tool_use_input_json(double: ServedDouble) -> None:
    double.configure(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}])
    user = [{"role": "user", "content": "weather?"}]
    with _an(double).messages.stream(
        model="m", max_tokens=64, messages=user, tools=[_ANTHROPIC_TOOL]
    ) as s:  # type: ignore[arg-type,list-item]
        final = s.get_final_message()
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("tool_use", {"city": "Oslo", "days": 2})
    ]


def test_messages_error_in_anthropic_shape(double: ServedDouble) -> None:
    double.configure(status=529, fail_times=1)
    user = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.APIStatusError) as caught:
        _an(double).messages.create(model="m", max_tokens=8, messages=user)  # type: ignore[arg-type]
    assert caught.value.status_code == 529
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "bf16 failing on purpose"},
    }


# -- embeddings ---------------------------------------------------------------------------


def test_embeddings_floats_and_base64_agree(double: ServedDouble) -> None:
    client = _oa(double)
    floats = client.embeddings.create(model="m", input=["a b", "c"], encoding_format="float")
    assert [len(d.embedding) for d in floats.data] == [8, 8]
    assert floats.usage.prompt_tokens == 3
    packed = client.embeddings.create(model="m", input=["a b", "c"], dimensions=8)  # SDK: base64
    for a, b in zip(packed.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert floats.data[0].embedding != floats.data[1].embedding


# -- agent frameworks ---------------------------------------------------------------------


async def test_openai_agents_sdk_tool_round_trip(double: ServedDouble) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # no export of traces to OpenAI
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    client = openai.AsyncOpenAI(base_url=double.url + "/v1", api_key="unused", max_retries=0)
    model = OpenAIResponsesModel(model="bf16", openai_client=client)
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=model)
    result = await Runner.run(agent, "What is the weather in Paris?")
    assert asked == ["Paris"]
    assert result.final_output == "The tool said: sunny in Paris"
    paths = [r["path"] for r in double.state.requests]
    assert paths == ["/v1/responses", "/v1/responses"]
    follow_up = double.state.requests[1]["body"]["input"]
    assert follow_up[-1]["type"] == "function_call_output"
    # The SDK's own bodies, read as agent hops: the follow-up is the task's second round trip.
    bodies = [r["body"] for r in double.state.requests]
    assert [agent_hop_position("responses", b) for b in bodies] == [0, 1]
    assert prior_tool_calls_per_hop("responses", bodies[1]) == (1,)
    await client.close()


def test_langchain_chat_openai_on_the_responses_api(double: ServedDouble) -> None:
    from langchain_openai import ChatOpenAI

    _OPEN.append(httpx.Client())
    llm = ChatOpenAI(
        model="bf16",
        base_url=double.url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        use_responses_api=True,
        http_client=_OPEN[-1],
    )
    answer = llm.invoke("hello")
    assert answer.text == "Hello from bf16. w0 w1 w2 w3 w4"
    called = llm.bind_tools([_WEATHER]).invoke("weather in Paris?")
    assert [(c["name"], c["args"]) for c in called.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert {r["path"] for r in double.state.requests} == {"/v1/responses"}


# -- faults agents meet: errors inside a stream, rate-limit headers ----------------------


def test_errors_inside_streams_in_each_apis_shape(double: ServedDouble) -> None:
    from proxy.formats import reader_for

    double.configure(error_after_chunks=2)
    user = [{"role": "user", "content": "hi"}]
    cases = [
        ("chat", "/v1/chat/completions", {"model": "m", "messages": user, "stream": True}),
        ("responses", "/v1/responses", {"model": "m", "input": "hi", "stream": True}),
        (
            "messages",
            "/v1/messages",
            {"model": "m", "max_tokens": 9, "messages": user, "stream": True},
        ),
    ]
    for operation, path, body in cases:
        events = _sse(double, path, body)
        name, last = events[-1]
        reader = reader_for(operation, time.perf_counter())  # type: ignore[arg-type]
        for _, data in events:
            reader.add_chunk(data)
        assert reader.text == "Hello from ", operation  # two pieces, then the error
        assert reader.error is not None and "mid-stream" in str(reader.error["message"])
        if operation == "responses":
            assert name == "error" and _RESPONSE_EVENT.validate_python(last).type == "error"
        elif operation == "messages":
            assert (name, last["error"]["type"]) == ("error", "overloaded_error")
        else:
            assert name is None and last["error"]["type"] == "server_error"
    # The openai SDK hands a Responses error event to the caller as an event...
    *_, error = _oa(double).responses.create(model="m", input="hi", stream=True)
    assert error.type == "error" and "mid-stream" in error.message
    # ... the anthropic SDK raises it.
    with (
        pytest.raises(anthropic.APIStatusError, match="mid-stream"),
        _an(double).messages.stream(model="m", max_tokens=9, messages=user) as stream,  # type: ignore[arg-type]
    ):
        for _ in stream:
            pass


def test_rate_limit_headers_reach_the_client(double: ServedDouble) -> None:
    headers = {"Retry-After": "7", "x-ratelimit-remaining-requests": "0"}
    double.configure(status=429, fail_times=1, response_headers=headers)
    with pytest.raises(openai.RateLimitError) as caught:
        _oa(double).responses.create(model="m", input="hi")
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    ok = httpx.post(double.url + "/v1/embeddings", json={"model": "m", "input": "x"})
    assert ok.status_code == 200 and ok.headers["retry-after"] == "7"  # on every response
