"""End to end, issue 12: the official ``anthropic`` client on ``/v1/messages`` through
``quanttrap serve`` (a real process, client keys on) in front of fake_upstream TEST DOUBLE
processes: tool_use blocks, streaming, keys as ``x-api-key``, typed errors, and the SSE
stream's ``event:`` lines kept byte for byte."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.doubles.agent_stack import configure, model, upstream_log, variant
from tests.doubles.processes import Process, start_proxy, start_upstream

pytestmark = pytest.mark.slow

KEY = "anthropic-e2e-key"
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
ASK: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    logs = tmp_path_factory.mktemp("agent-anthropic")
    procs: dict[str, Process] = {}
    try:
        for name in ("bf16", "limited"):
            procs[name] = start_upstream(name, logs, reply_words=5)
        configure(procs["limited"], status=429, response_headers={"Retry-After": "5"})
        config = {
            "models": [
                model("claude-ish", variant("bf16", 16, procs["bf16"].url)),
                model("limited", variant("a", 16, procs["limited"].url)),
            ]
        }
        path = logs / "quanttrap.yaml"
        path.write_text(json.dumps(config))
        procs["proxy"] = start_proxy(path, logs, env={"QUANTTRAP_API_KEYS": KEY})
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture
def client(stack: dict[str, Process]) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=stack["proxy"].url, api_key=KEY, max_retries=0) as c:
        yield c


def test_create_with_tool_use(client: anthropic.Anthropic, stack: dict[str, Process]) -> None:
    raw = client.messages.with_raw_response.create(
        model="claude-ish", max_tokens=64, messages=ASK, tools=TOOLS
    )
    assert raw.headers["x-quanttrap-variant"] == "bf16"
    message = raw.parse()
    assert message.stop_reason == "tool_use"
    (block,) = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "get_weather" and block.input == {"city": "Paris"}
    received = upstream_log(stack["bf16"])[-1]
    assert received["path"] == "/v1/messages"
    assert received["body"]["tools"][0]["name"] == "get_weather"
    # The client's key is the proxy's business; it is not passed on to the upstream.
    assert KEY not in json.dumps(received["headers"])


def test_stream_with_tool_use_then_result(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-ish", max_tokens=64, messages=ASK, tools=TOOLS
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "content_block_start" in kinds
    (call,) = [b for b in final.content if b.type == "tool_use"]
    assert call.input == {"city": "Paris"} and final.stop_reason == "tool_use"
    # The second leg of the round trip: the tool's result goes back, text comes out.
    follow: list[Any] = [
        *ASK,
        {"role": "assistant", "content": [c.model_dump() for c in final.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    with client.messages.stream(
        model="claude-ish", max_tokens=64, messages=follow, tools=TOOLS
    ) as stream:
        text = "".join(stream.text_stream)
        done = stream.get_final_message()
    assert "sunny" in text and done.stop_reason == "end_turn"
    assert done.usage.output_tokens > 0


def test_key_as_x_api_key_and_typed_errors(stack: dict[str, Process]) -> None:
    url = stack["proxy"].url
    with (
        anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError) as auth,
    ):
        bad.messages.create(model="claude-ish", max_tokens=8, messages=ASK)
    assert auth.value.status_code == 401
    with anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0) as good:
        with pytest.raises(anthropic.BadRequestError) as invalid:
            good.messages.create(model="claude-ish", max_tokens=8, messages=[])
        with pytest.raises(anthropic.NotFoundError):
            good.messages.create(model="no-such-model", max_tokens=8, messages=ASK)
        with pytest.raises(anthropic.RateLimitError) as limited:
            good.messages.create(model="limited", max_tokens=8, messages=ASK)
    for err in (auth.value, invalid.value):
        assert isinstance(err.body, dict) and err.body["type"] == "error", err.body
        assert err.body["error"]["type"] and err.body["error"]["message"]
    assert "messages" in invalid.value.body["error"]["message"]  # type: ignore[index]
    assert limited.value.response.headers.get("retry-after") == "5"


_IDS = re.compile(rb'"(msg|toolu|call)_[0-9A-Za-z]+"')


def _raw_stream(url: str, headers: dict[str, str]) -> bytes:
    body = {"model": "claude-ish", "max_tokens": 64, "messages": ASK, "stream": True}
    with httpx.stream("POST", url + "/v1/messages", json=body, headers=headers) as resp:
        assert resp.status_code == 200
        return b"".join(resp.iter_raw())


def test_sse_event_lines_byte_for_byte(stack: dict[str, Process]) -> None:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    through = _raw_stream(stack["proxy"].url, headers)
    direct = _raw_stream(stack["bf16"].url, headers)
    assert b"event: message_start\n" in through
    # Same bytes but the generated ids (the double makes new ones per response).
    assert _IDS.sub(b'"ID"', through) == _IDS.sub(b'"ID"', direct)
