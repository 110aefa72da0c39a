"""The scripted backend's tool calls are what the proxy's chat reader reads back."""

from __future__ import annotations

import time

import orjson
import pytest

from backends.base import BackendRequest
from core.records import ToolCall
from proxy.openai_format import Accumulator
from tests.doubles.scripted_backend import ScriptedBackend

CALLS = (
    ToolCall("get_weather", '{"city": "Paris", "days": 3}'),
    ToolCall("get_time", '{"tz": "Europe/Paris"}'),
)


def _request(stream: bool) -> BackendRequest:
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return BackendRequest("chat", body, stream, "r1")


async def test_a_chat_body_carries_the_chosen_tool_calls() -> None:
    response = await ScriptedBackend("b", tool_calls=CALLS).send(_request(False))
    assert response.body is not None
    body = orjson.loads(response.body)
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"]["content"] is None
    reader = Accumulator(time.perf_counter())
    reader.add_body(body)
    assert reader.tool_calls == CALLS and reader.text == ""


@pytest.mark.parametrize("calls", [CALLS, CALLS[:1]])
async def test_streamed_tool_call_deltas_assemble_into_the_chosen_calls(
    calls: tuple[ToolCall, ...],
) -> None:
    response = await ScriptedBackend("b", tool_calls=calls).send(_request(True))
    assert response.events is not None
    reader = Accumulator(time.perf_counter())
    fragments = 0
    async for event in response.events:
        if event == b"[DONE]":
            break
        chunk = orjson.loads(event)
        for choice in chunk["choices"]:
            fragments += len(choice["delta"].get("tool_calls", ()))
        reader.add_chunk(chunk)
    assert reader.tool_calls == calls and reader.finish_reason == "tool_calls"
    assert fragments == 3 * len(calls)  # the name, then the arguments in two pieces
