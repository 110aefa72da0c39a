"""End to end: ``quanttrap serve`` as a real process in front of real HTTP upstream processes
(the fake_upstream TEST DOUBLE), driven by the official ``openai`` client, sync and async."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.doubles.processes import Process, free_port, start_proxy, start_upstream

pytestmark = pytest.mark.slow

API_KEY = "e2e-secret"


def _variant(name: str, bits: int, url: str, **backend: Any) -> dict[str, Any]:
    return {
        "name": name,
        "bits": bits,
        "backend": {"kind": "openai", "base_url": url + "/v1", **backend},
    }


def _model(name: str, *variants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "anchor": variants[0]["name"],
        "variants": list(variants),
        "routing": {"primary": variants[0]["name"]},
        **extra,
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    logs = tmp_path_factory.mktemp("e2e")
    ups: dict[str, Process] = {}
    try:
        for name in ("bf16", "nf4", "slow", "hang", "fail", "broken", "trickle"):
            ups[name] = start_upstream(name, logs)
        for name, cfg in {
            "slow": {"latency_ms": 1500},
            "hang": {"latency_ms": 5000},
            "fail": {"status": 503},
            "broken": {"break_after_chunks": 2},
            "trickle": {"chunk_delay_ms": 100, "reply_words": 100},
        }.items():
            httpx.post(ups[name].url + "/_double/config", json=cfg).raise_for_status()
        closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
        config = {
            "models": [
                _model(
                    "demo",
                    _variant("bf16", 16, ups["bf16"].url, model="served-name"),
                    _variant("nf4", 4, ups["nf4"].url),
                ),
                _model(
                    "mirror",
                    _variant("bf16", 16, ups["bf16"].url),
                    _variant("nf4", 4, ups["slow"].url),
                    shadow={"variants": ["nf4"], "sample_rate": 1.0},
                ),
                _model("refused", _variant("a", 16, closed), _variant("b", 4, ups["nf4"].url)),
                _model(
                    "timeout",
                    _variant("a", 16, ups["hang"].url, read_timeout_s=0.5),
                    _variant("b", 4, ups["nf4"].url),
                ),
                _model(
                    "failing", _variant("a", 16, ups["fail"].url), _variant("b", 4, ups["nf4"].url)
                ),
                _model("broken", _variant("a", 16, ups["broken"].url)),
                _model("trickle", _variant("a", 16, ups["trickle"].url)),
            ]
        }
        path = logs / "quanttrap.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        ups["proxy"] = start_proxy(path, logs, env={"QUANTTRAP_API_KEYS": API_KEY})
        yield ups
    finally:
        for proc in ups.values():
            proc.stop()


@pytest.fixture
def client(stack: dict[str, Process]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack["proxy"].url + "/v1", api_key=API_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(stack: dict[str, Process]) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=stack["proxy"].url + "/v1", api_key=API_KEY, max_retries=0
    ) as c:
        yield c


def upstream_log(proc: Process) -> list[dict[str, Any]]:
    return httpx.get(proc.url + "/_double/requests").json()  # type: ignore[no-any-return]


MESSAGES: list[Any] = [{"role": "user", "content": "What is two plus two?"}]


def test_sync_chat(client: openai.OpenAI, stack: dict[str, Process]) -> None:
    raw = client.chat.completions.with_raw_response.create(model="demo", messages=MESSAGES)
    assert raw.headers["x-quanttrap-variant"] == "bf16"
    assert raw.headers["x-request-id"]
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Hello from bf16")  # type: ignore[union-attr]
    assert completion.usage is not None and completion.usage.completion_tokens == 8
    assert upstream_log(stack["bf16"])[-1]["body"]["model"] == "served-name"


def test_sync_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="demo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from bf16")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


def test_sync_stream_without_usage(client: openai.OpenAI, stack: dict[str, Process]) -> None:
    chunks = list(client.chat.completions.create(model="demo", messages=MESSAGES, stream=True))
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # no usage-only chunk leaked to this client
    # The proxy still asked the upstream for usage, for its own accounting.
    assert upstream_log(stack["bf16"])[-1]["body"]["stream_options"] == {"include_usage": True}


async def test_async_client_chat_and_completions(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="demo", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    stream = await aclient.chat.completions.create(model="demo", messages=MESSAGES, stream=True)
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces).startswith("Hello from bf16")
    text = await aclient.completions.create(model="demo", prompt="Say hi", max_tokens=4)
    assert text.choices[0].text == "Hello from bf16. w0"
    streamed = await aclient.completions.create(model="demo", prompt="Say hi", stream=True)
    assert "".join([c.choices[0].text async for c in streamed if c.choices]).startswith("Hello")


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["demo", "mirror", "refused", "timeout", "failing", "broken", "trickle"]


@pytest.mark.parametrize("model", ["refused", "timeout", "failing"])
def test_failover(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert raw.headers["x-quanttrap-variant"] == "b"
    assert raw.parse().choices[0].message.content.startswith("Hello from nf4")  # type: ignore[union-attr]
    stream = client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_stream_that_breaks_raises_and_does_not_hang(client: openai.OpenAI) -> None:
    t0 = time.monotonic()
    with pytest.raises(openai.APIError, match="stream broke"):
        list(client.chat.completions.create(model="broken", messages=MESSAGES, stream=True))
    assert time.monotonic() - t0 < 5


def test_shadow_runs_off_the_critical_path(
    client: openai.OpenAI, stack: dict[str, Process]
) -> None:
    t0 = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="mirror", messages=MESSAGES)
    elapsed = time.monotonic() - t0
    assert raw.headers["x-quanttrap-variant"] == "bf16"
    assert elapsed < 1.0  # the shadow upstream takes 1.5 s before it answers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mirrored = [
            r
            for r in upstream_log(stack["slow"])
            if r["headers"].get("x-request-id") == raw.headers["x-request-id"]
        ]
        if mirrored:
            break
        time.sleep(0.05)
    assert mirrored and mirrored[0]["headers"]["x-quanttrap-role"] == "shadow"
    assert mirrored[0]["body"]["messages"] == MESSAGES


def test_agent_tool_calling_round_trip(client: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="demo", messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(model="demo", messages=messages, tools=tools)
    assert second.choices[0].message.content == "The tool said: sunny, 21 C"


def test_errors_reach_the_client_in_openai_shape(
    stack: dict[str, Process], client: openai.OpenAI
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=MESSAGES)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="demo", messages=MESSAGES, extra_headers={"X-Quanttrap-Variant": "fp8"}
        )
    bad = openai.OpenAI(base_url=stack["proxy"].url + "/v1", api_key="wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="demo", messages=MESSAGES)
    big = httpx.post(
        stack["proxy"].url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "demo", "messages": [{"role": "user", "content": "x" * 5_000_000}]},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    garbage = httpx.post(
        stack["proxy"].url + "/v1/chat/completions",
        content=b"{oops",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"


def test_all_variants_down_is_502(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "down.yaml"
    config.write_text(json.dumps({"models": [_model("m", _variant("a", 16, closed))]}))
    proxy = start_proxy(config, tmp_path)
    try:
        with (
            openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as down,
            pytest.raises(openai.APIStatusError) as info,
        ):
            down.chat.completions.create(model="m", messages=MESSAGES)
        assert info.value.status_code == 502
        assert httpx.get(proxy.url + "/readyz").status_code == 503
    finally:
        proxy.stop()


def test_client_hanging_up_frees_the_upstream_stream(
    client: openai.OpenAI, stack: dict[str, Process]
) -> None:
    stream = client.chat.completions.create(model="trickle", messages=MESSAGES, stream=True)
    pieces = []
    for chunk in stream:
        pieces.append(chunk)
        if len(pieces) == 3:
            break
    stream.close()  # the user gives up after three chunks of a 10-second answer
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = httpx.get(stack["trickle"].url + "/_double/stats").json()
        if stats["aborted_streams"]:
            break
        time.sleep(0.05)
    assert stats["aborted_streams"] == 1  # the proxy closed its upstream stream too
