"""End to end, issue 12: what agent traffic shows on ``/metrics`` and the status API, through
``quanttrap serve`` (a real process) in front of fake_upstream TEST DOUBLE processes, driven
by the official ``openai`` client.

- agent hops are round trips: a history with one assistant turn of 3 parallel tool calls and
  its 3 tool results is hop 1, not 4 (chat and Responses input items);
- tool calls per answer by hop bucket (``quanttrap_agent_tool_calls``);
- reasoning: time to first token is the first reasoning token, time to first content later;
  reasoning tokens exported;
- tool-call agreement and disagreement of a shadow variant reach ``/metrics``, the status JSON
  and the comparisons log (with their ``reason``).

Each concern has its own model name, so the metric series it reads are its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.doubles.agent_stack import configure, metric_sum, model, upstream_log, variant, wait_for
from tests.doubles.processes import Process, start_proxy, start_upstream

pytestmark = pytest.mark.slow

KEY = "telemetry-e2e-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
REASONING_DELAY_S = 0.4
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
RESPONSES_TOOLS: list[Any] = [
    {"type": "function", "name": "get_weather", "parameters": TOOLS[0]["function"]["parameters"]}
]
CITIES = ("Paris", "Rome", "Oslo")
APIS = ("chat", "responses", "messages")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    logs = tmp_path_factory.mktemp("agent-telemetry")
    procs: dict[str, Process] = {}
    try:
        for name in ("plain", "thinker", "same", "other"):
            procs[name] = start_upstream(name, logs, reply_words=5)
        configure(
            procs["thinker"],
            reasoning_words=3,
            reasoning_delay_ms=int(REASONING_DELAY_S * 1000),
            reply_words=5,
        )
        # "same" answers with the default call (get_weather {"city": "Paris"}), as "plain" does;
        # "other" calls the same tool with other arguments.
        configure(
            procs["other"], tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}]
        )
        plain = variant("bf16", 16, procs["plain"].url)
        config = {
            "models": [
                model("hops-chat", plain),
                model("hops-responses", plain),
                model("reason-chat", variant("bf16", 16, procs["thinker"].url)),
                model("reason-responses", variant("bf16", 16, procs["thinker"].url)),
                *(
                    model(f"{verdict}-{api}", plain, variant("nf4", 4, procs[up].url), shadow="nf4")
                    for verdict, up in (("agree", "same"), ("disagree", "other"))
                    for api in APIS
                ),
                model("disagree-hop", plain, variant("nf4", 4, procs["other"].url), shadow="nf4"),
            ],
            "scoring": {"recompute_interval_s": 0.5, "store": {"path": str(logs / "q.sqlite3")}},
        }
        path = logs / "quanttrap.yaml"
        path.write_text(json.dumps(config))
        procs["proxy"] = start_proxy(path, logs, env={"QUANTTRAP_API_KEYS": KEY})
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture
def client(stack: dict[str, Process]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack["proxy"].url + "/v1", api_key=KEY, max_retries=0) as c:
        yield c


def _recorded(proxy: Process, model_name: str, count: int = 1) -> None:
    """Wait until the proxy has recorded ``count`` answers of ``model_name``."""
    wait_for(
        lambda: (
            metric_sum(proxy, "quanttrap_hops_agent_count", gen_ai_request_model=model_name)
            >= count
        ),
        f"{count} request(s) of {model_name} recorded",
    )


def test_parallel_tool_calls_are_one_chat_hop(
    client: openai.OpenAI, stack: dict[str, Process]
) -> None:
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": c})},
        }
        for i, c in enumerate(CITIES)
    ]
    messages: list[Any] = [
        {"role": "user", "content": "Weather in three cities?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": f"call_{i}", "content": "sunny"} for i in range(3)),
    ]
    answer = client.chat.completions.create(model="hops-chat", messages=messages, tools=TOOLS)
    assert answer.choices[0].message.content == "The tool said: sunny"
    proxy = stack["proxy"]
    _recorded(proxy, "hops-chat")
    assert metric_sum(proxy, "quanttrap_hops_agent_sum", gen_ai_request_model="hops-chat") == 1
    # The text answer at hop 1: zero tool calls in the hop-1 bucket.
    labels = {"gen_ai_request_model": "hops-chat", "quanttrap_agent_hop_bucket": "1"}
    assert metric_sum(proxy, "quanttrap_agent_tool_calls_count", **labels) == 1
    assert metric_sum(proxy, "quanttrap_agent_tool_calls_sum", **labels) == 0


def test_parallel_tool_calls_are_one_responses_hop(
    client: openai.OpenAI, stack: dict[str, Process]
) -> None:
    items: list[Any] = [
        {"role": "user", "content": "Weather in three cities?"},
        *(
            {
                "type": "function_call",
                "call_id": f"call_{i}",
                "name": "get_weather",
                "arguments": json.dumps({"city": c}),
            }
            for i, c in enumerate(CITIES)
        ),
        *(
            {"type": "function_call_output", "call_id": f"call_{i}", "output": "sunny"}
            for i in range(3)
        ),
    ]
    response = client.responses.create(model="hops-responses", input=items)
    assert response.output_text == "The tool said: sunny"
    # The first leg (hop 0) offers tools and gets one call: 1 call in the hop-0 bucket.
    first = client.responses.create(
        model="hops-responses",
        input="Weather in Paris?",
        tools=RESPONSES_TOOLS,
    )
    assert [item.type for item in first.output] == ["function_call"]
    proxy = stack["proxy"]
    _recorded(proxy, "hops-responses", 2)
    assert metric_sum(proxy, "quanttrap_hops_agent_sum", gen_ai_request_model="hops-responses") == 1
    hop0 = {"gen_ai_request_model": "hops-responses", "quanttrap_agent_hop_bucket": "0"}
    assert metric_sum(proxy, "quanttrap_agent_tool_calls_sum", **hop0) == 1


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_reasoning_first_token_before_first_content(
    api: str, client: openai.OpenAI, stack: dict[str, Process]
) -> None:
    name = f"reason-{api}"
    if api == "chat":
        stream: Any = client.chat.completions.create(
            model=name,
            messages=[{"role": "user", "content": "Think, then answer."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        reasoning = [
            (c.choices[0].delta.model_extra or {}).get("reasoning_content")
            for c in stream
            if c.choices
        ]
        assert any(reasoning), "the reasoning deltas reach the client"
    else:
        with client.responses.stream(model=name, input="Think, then answer.") as events:
            kinds = [e.type for e in events]
        assert "response.reasoning_text.delta" in kinds
    proxy = stack["proxy"]
    _recorded(proxy, name)
    ttft = metric_sum(
        proxy, "gen_ai_server_time_to_first_token_seconds_sum", gen_ai_request_model=name
    )
    ttfc = metric_sum(
        proxy, "quanttrap_time_to_first_content_seconds_sum", gen_ai_request_model=name
    )
    count = metric_sum(
        proxy, "quanttrap_time_to_first_content_seconds_count", gen_ai_request_model=name
    )
    assert count == 1
    assert ttft > 0
    assert ttfc - ttft >= REASONING_DELAY_S * 0.9, (ttft, ttfc)
    assert metric_sum(proxy, "quanttrap_reasoning_tokens_sum", gen_ai_request_model=name) == 3


def _tool_turn(client: openai.OpenAI, proxy: Process, api: str, model_name: str) -> None:
    """One agent hop that offers ``get_weather``, through ``api``; the primary calls it."""
    ask = "Weather in Paris?"
    if api == "chat":
        answer = client.chat.completions.create(
            model=model_name, messages=[{"role": "user", "content": ask}], tools=TOOLS
        )
        names = [c.function.name for c in answer.choices[0].message.tool_calls or []]  # type: ignore[union-attr]
    elif api == "responses":
        response = client.responses.create(model=model_name, input=ask, tools=RESPONSES_TOOLS)
        names = [i.name for i in response.output if i.type == "function_call"]
    else:
        with anthropic.Anthropic(base_url=proxy.url, api_key=KEY, max_retries=0) as a:
            message = a.messages.create(
                model=model_name,
                max_tokens=64,
                messages=[{"role": "user", "content": ask}],
                tools=[{"name": "get_weather", "input_schema": RESPONSES_TOOLS[0]["parameters"]}],
            )
        names = [b.name for b in message.content if b.type == "tool_use"]
    assert names == ["get_weather"]


def _comparisons(proxy: Process, model_name: str) -> list[dict[str, Any]]:
    got = httpx.get(
        proxy.url + "/quanttrap/v1/comparisons", params={"model": model_name}, headers=AUTH
    ).json()
    return got["data"]  # type: ignore[no-any-return]


def _agreement(proxy: Process, model_name: str) -> dict[str, Any] | None:
    status = httpx.get(proxy.url + "/quanttrap/v1/status", headers=AUTH).json()
    for m in status["models"]:
        if m["model"] == model_name and m["shadow_agreement"]:
            return m["shadow_agreement"][0]  # type: ignore[no-any-return]
    return None


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("verdict", "agree", "reason", "outcome"),
    [("agree", True, "same", "agree"), ("disagree", False, "wrong_arguments", "disagree")],
)
def test_tool_call_agreement_reaches_metrics_and_status(
    api: str,
    verdict: str,
    agree: bool,
    reason: str,
    outcome: str,
    client: openai.OpenAI,
    stack: dict[str, Process],
) -> None:
    proxy = stack["proxy"]
    model_name = f"{verdict}-{api}"
    _tool_turn(client, proxy, api, model_name)
    (row,) = wait_for(lambda: _comparisons(proxy, model_name), f"{model_name}: a comparison")
    assert row["agree"] is agree and row["reason"] == reason, row
    assert row["shadow_variant"] == "nf4" and row["agent_hop"] == 0
    labels = {"gen_ai_request_model": model_name, "quanttrap_shadow_agreement": outcome}
    wait_for(
        lambda: metric_sum(proxy, "quanttrap_shadow_comparisons_total", **labels) == 1,
        f"{model_name}: quanttrap_shadow_comparisons_total{labels}",
    )
    summary = wait_for(lambda: _agreement(proxy, model_name), f"{model_name}: status agreement")
    assert (summary["primary"], summary["shadow"]) == ("bf16", "nf4")
    assert (summary["agree"], summary["disagree"]) == ((1, 0) if agree else (0, 1))
    # The shadow really was asked with the tools (a shadow copy of an agent hop).
    shadow_up = stack["same" if agree else "other"]
    assert "get_weather" in json.dumps(upstream_log(shadow_up)[-1]["body"]["tools"])


def test_comparison_at_a_later_hop_carries_its_position(
    client: openai.OpenAI, stack: dict[str, Process]
) -> None:
    call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})},
    }
    messages: list[Any] = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "content": "snow"},
        {"role": "user", "content": "And in Paris?"},
    ]
    answer = client.chat.completions.create(model="disagree-hop", messages=messages, tools=TOOLS)
    assert answer.choices[0].message.tool_calls
    proxy = stack["proxy"]
    (row,) = wait_for(lambda: _comparisons(proxy, "disagree-hop"), "the hop-1 comparison")
    assert (row["agree"], row["reason"], row["agent_hop"]) == (False, "wrong_arguments", 1), row
