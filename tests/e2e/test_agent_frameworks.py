"""End to end, issue 12: agent frameworks on their default Responses models, through
``quanttrap serve`` (a real process):

- ``openai-agents`` (the OpenAI Agents SDK, its default ``OpenAIResponsesModel``, tracing off)
  running a function-tool round trip in front of a fake_upstream TEST DOUBLE (it answers the
  first leg with a tool call, the second with text built from the tool's result); and the same
  SDK against the embedded default (``quanttrap serve`` with no config: the probe model,
  in-process) answering an arithmetic question without tools;
- ``langchain-openai`` ``ChatOpenAI(use_responses_api=True)``: invoke, and one tool-calling
  step with ``bind_tools``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from langchain_openai import ChatOpenAI

from scoring.datasets.multihop import generate
from scoring.graders import get_grader
from tests.doubles.agent_stack import metric_sum, model, upstream_log, variant, wait_for
from tests.doubles.processes import (
    Process,
    free_port,
    quanttrap_command,
    start_proxy,
    start_upstream,
)

pytestmark = pytest.mark.slow

KEY = "frameworks-e2e-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    logs = tmp_path_factory.mktemp("agent-frameworks")
    procs: dict[str, Process] = {}
    try:
        procs["bf16"] = start_upstream("bf16", logs, reply_words=5)
        config = {
            "models": [
                model("agent-model", variant("bf16", 16, procs["bf16"].url)),
                model("lc-model", variant("bf16", 16, procs["bf16"].url)),
                model("agent-stream", variant("bf16", 16, procs["bf16"].url)),
            ]
        }
        path = logs / "quanttrap.yaml"
        path.write_text(json.dumps(config))
        procs["proxy"] = start_proxy(path, logs, env={"QUANTTRAP_API_KEYS": KEY})
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    logs = tmp_path_factory.mktemp("agent-embedded")
    port = free_port()
    env = {"QUANTTRAP_SCORING__STORE__PATH": str(logs / "quanttrap.sqlite3")}
    proc = Process(
        [*quanttrap_command(), "serve", "--port", str(port)], port, logs / "serve.log", env=env
    )
    try:
        proc.wait_http("/readyz", timeout=180)
        yield proc
    finally:
        proc.stop()


seen_cities: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    seen_cities.append(city)
    return f"sunny in {city}"


def _client(base_url: str, api_key: str) -> openai.AsyncOpenAI:
    set_tracing_disabled(True)
    return openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)


def _agent(client: openai.AsyncOpenAI, model_name: str, **kwargs: object) -> Agent:
    return Agent(
        name="assistant",
        model=OpenAIResponsesModel(model=model_name, openai_client=client),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_agents_sdk_tool_round_trip(stack: dict[str, Process]) -> None:
    seen_cities.clear()
    async with _client(stack["proxy"].url, KEY) as client:
        agent = _agent(client, "agent-model", tools=[get_weather])
        result = await Runner.run(agent, "What is the weather in Paris?")
    # Leg 1: the double called get_weather({"city": "Paris"}); the SDK ran the tool;
    # leg 2: the double answered from the tool's output.
    assert seen_cities == ["Paris"]
    assert result.final_output == "The tool said: sunny in Paris"
    legs = [r["body"] for r in upstream_log(stack["bf16"]) if r["path"] == "/v1/responses"]
    assert len(legs) == 2
    assert legs[0]["tools"][0]["name"] == "get_weather"
    assert any(item.get("type") == "function_call_output" for item in legs[1]["input"])
    # The second leg is agent hop 1 (one assistant turn before it): hop sum 0 + 1.
    proxy = stack["proxy"]
    wait_for(
        lambda: (
            metric_sum(proxy, "quanttrap_hops_agent_count", gen_ai_request_model="agent-model") == 2
        ),
        "both legs recorded",
    )
    assert metric_sum(proxy, "quanttrap_hops_agent_sum", gen_ai_request_model="agent-model") == 1


async def test_agents_sdk_streamed_tool_round_trip(stack: dict[str, Process]) -> None:
    seen_cities.clear()
    async with _client(stack["proxy"].url, KEY) as client:
        agent = _agent(client, "agent-stream", tools=[get_weather])
        run = Runner.run_streamed(agent, "What is the weather in Paris?")
        kinds = {event.type async for event in run.stream_events()}
    assert {"raw_response_event", "run_item_stream_event"} <= kinds
    assert seen_cities == ["Paris"]
    assert run.final_output == "The tool said: sunny in Paris"
    legs = [
        r["body"] for r in upstream_log(stack["bf16"]) if r["body"].get("model") == "agent-stream"
    ]
    assert [leg.get("stream") for leg in legs] == [True, True]


async def test_agents_sdk_against_the_embedded_default(embedded: Process) -> None:
    (item,) = generate(1, seed=11, depths=[1])
    async with _client(embedded.url, "x") as client:
        # No instructions: the probe model was trained on a lone user turn.
        result = await Runner.run(_agent(client, "probe"), item.question)
    assert get_grader("multihop").grade(str(result.final_output), str(item.answer)).correct, (
        item.question,
        result.final_output,
    )


def test_langchain_responses_invoke_and_tool_step(stack: dict[str, Process]) -> None:
    llm = ChatOpenAI(
        model="lc-model",
        base_url=stack["proxy"].url + "/v1",
        api_key=KEY,  # type: ignore[arg-type]
        use_responses_api=True,
        max_retries=0,
    )
    reply = llm.invoke("Say hello.")
    assert reply.text.startswith("Hello from bf16")
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 5

    def get_time(zone: str) -> str:
        """The time in a time zone."""
        return "noon"

    step = llm.bind_tools([get_time]).invoke("What time is it in UTC?")
    (call,) = step.tool_calls
    # The double answers a tool-offering turn with the first tool and {"city": "Paris"}.
    assert call["name"] == "get_time" and call["args"] == {"city": "Paris"}
    assert upstream_log(stack["bf16"])[-1]["path"] == "/v1/responses"
