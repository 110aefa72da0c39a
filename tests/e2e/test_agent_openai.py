"""End to end, issue 12: the official ``openai`` client's Responses API and embeddings, and the
headers agents rely on, through ``quanttrap serve`` (a real process) in front of fake_upstream
TEST DOUBLE processes.

Each concern uses its own model name, so the metrics it checks are its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.doubles.agent_stack import configure, metric_sum, model, upstream_log, variant, wait_for
from tests.doubles.processes import Process, start_proxy, start_upstream

pytestmark = pytest.mark.slow

KEY = "agent-e2e-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
RATE_HEADERS = {
    "Retry-After": "7",
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "7s",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    logs = tmp_path_factory.mktemp("agent-openai")
    procs: dict[str, Process] = {}
    try:
        for name in ("bf16", "nf4", "limited", "busy1", "busy2"):
            procs[name] = start_upstream(name, logs, reply_words=5)
        configure(procs["limited"], status=429, response_headers=RATE_HEADERS)
        for name in ("busy1", "busy2"):
            configure(procs[name], status=503, response_headers={"Retry-After": "3"})
        bf16 = variant("bf16", 16, procs["bf16"].url)
        nf4 = variant("nf4", 4, procs["nf4"].url)
        config = {
            "models": [
                model("resp", bf16, nf4, shadow="nf4"),
                model("chain", bf16, nf4, shadow="nf4"),
                model("embed", bf16, nf4, shadow="nf4"),
                model("limited", variant("a", 16, procs["limited"].url)),
                model(
                    "overloaded",
                    variant("a", 16, procs["busy1"].url),
                    variant("b", 4, procs["busy2"].url),
                ),
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


@pytest.fixture
async def aclient(stack: dict[str, Process]) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=stack["proxy"].url + "/v1", api_key=KEY, max_retries=0
    ) as c:
        yield c


def _bodies(proc: Process, path: str) -> list[dict[str, Any]]:
    return [r["body"] for r in upstream_log(proc) if r["path"] == path]


def test_responses_create_sync(client: openai.OpenAI, stack: dict[str, Process]) -> None:
    raw = client.responses.with_raw_response.create(model="resp", input="What is 2+2?")
    assert raw.headers["x-quanttrap-variant"] == "bf16"
    response = raw.parse()
    assert response.status == "completed"
    assert response.output_text.startswith("Hello from bf16")
    assert response.usage is not None and response.usage.output_tokens == 5
    assert _bodies(stack["bf16"], "/v1/responses")[-1]["input"] == "What is 2+2?"


def test_responses_stream_sync(client: openai.OpenAI) -> None:
    with client.responses.stream(model="resp", input="stream please") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.output_text.startswith("Hello from bf16")
    assert final.usage is not None and final.usage.output_tokens == 5


async def test_responses_async_create_and_stream(aclient: openai.AsyncOpenAI) -> None:
    response = await aclient.responses.create(model="resp", input="async hello")
    assert response.output_text.startswith("Hello from bf16")
    stream = await aclient.responses.create(model="resp", input="async stream", stream=True)
    text = ""
    completed = None
    async for event in stream:
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            completed = event.response
    assert completed is not None and completed.output_text == text
    assert text.startswith("Hello from bf16")


def test_follow_up_pinned_and_not_shadowed(
    client: openai.OpenAI, stack: dict[str, Process]
) -> None:
    proxy = stack["proxy"]
    first = client.responses.with_raw_response.create(model="chain", input="remember 42")
    variant_first = first.headers["x-quanttrap-variant"]
    wait_for(
        lambda: metric_sum(proxy, "quanttrap_shadow_copies_total", gen_ai_request_model="chain",
                           quanttrap_shadow_outcome="sent"),
        "the first turn's shadow copy",
    )  # fmt: skip
    skipped = metric_sum(proxy, "quanttrap_shadow_copies_total", gen_ai_request_model="chain",
                         quanttrap_shadow_outcome="skipped")  # fmt: skip
    sent = metric_sum(proxy, "quanttrap_shadow_copies_total", gen_ai_request_model="chain",
                      quanttrap_shadow_outcome="sent")  # fmt: skip
    nf4_before = len(_bodies(stack["nf4"], "/v1/responses"))

    follow = client.responses.with_raw_response.create(
        model="chain", input="what did I say?", previous_response_id=first.parse().id
    )
    assert follow.headers["x-quanttrap-variant"] == variant_first == "bf16"
    assert _bodies(stack["bf16"], "/v1/responses")[-1]["previous_response_id"] == first.parse().id
    wait_for(
        lambda: metric_sum(proxy, "quanttrap_shadow_copies_total", gen_ai_request_model="chain",
                           quanttrap_shadow_outcome="skipped") == skipped + 1,
        "the follow-up counted as a skipped shadow copy",
    )  # fmt: skip
    assert metric_sum(proxy, "quanttrap_shadow_copies_total", gen_ai_request_model="chain",
                      quanttrap_shadow_outcome="sent") == sent  # fmt: skip
    # The shadow never saw the conversation, so it must not get the follow-up.
    assert len(_bodies(stack["nf4"], "/v1/responses")) == nf4_before
    # The chain makes the follow-up agent hop 1 (the first turn was hop 0).
    hops = {"gen_ai_request_model": "chain", "quanttrap_role": "primary"}
    wait_for(
        lambda: metric_sum(proxy, "quanttrap_hops_agent_count", **hops) == 2,
        "both turns recorded",
    )
    assert metric_sum(proxy, "quanttrap_hops_agent_sum", **hops) == 1


def test_unknown_previous_response_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="chain", input="x", previous_response_id="resp_nope")
    assert err.value.status_code == 400
    assert err.value.code == "previous_response_not_found"
    assert "resp_nope" in err.value.message


def test_evaluation_tags_on_responses(client: openai.OpenAI, stack: dict[str, Process]) -> None:
    configure(stack["bf16"], answers={"six times seven": "#### 42"})
    try:
        response = client.responses.create(
            model="resp",
            input="What is six times seven?",
            metadata={"expected_answer": "42", "team": "keep-me"},
        )
    finally:
        configure(stack["bf16"], answers={})
    assert response.output_text == "#### 42"
    sent = _bodies(stack["bf16"], "/v1/responses")[-1]
    # The evaluation tags are the proxy's; the client's other metadata still goes through.
    assert "expected_answer" not in json.dumps(sent)
    assert sent.get("metadata", {}).get("team") == "keep-me"

    def graded() -> list[dict[str, Any]]:
        got = httpx.get(
            stack["proxy"].url + "/quanttrap/v1/evaluations",
            params={"model": "resp"},
            headers=AUTH,
        ).json()
        return got["data"]  # type: ignore[no-any-return]

    evaluations = wait_for(graded, "the tagged Responses request graded")
    assert evaluations[0]["correct"] is True


def test_embeddings_never_shadowed(client: openai.OpenAI, stack: dict[str, Process]) -> None:
    raw = client.embeddings.with_raw_response.create(model="embed", input=["a", "b c"])
    assert raw.headers["x-quanttrap-variant"] == "bf16"
    result = raw.parse()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens > 0
    proxy = stack["proxy"]
    wait_for(
        lambda: metric_sum(proxy, "quanttrap_requests_total", gen_ai_request_model="embed",
                           gen_ai_operation_name="embeddings"),
        "the embeddings request counted",
    )  # fmt: skip
    assert metric_sum(proxy, "quanttrap_shadow_copies_total", gen_ai_request_model="embed") == 0
    assert _bodies(stack["nf4"], "/v1/embeddings") == []


def test_rate_limit_headers_reach_the_client(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="limited", input="hi")
    headers = err.value.response.headers
    for name, value in RATE_HEADERS.items():
        assert headers.get(name) == value, name


def test_every_variant_overloaded_is_503_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(
            model="overloaded", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 503
    assert err.value.code == "upstream_overloaded"
    assert err.value.response.headers.get("retry-after") == "3"


def test_forwarded_and_withheld_headers(stack: dict[str, Process]) -> None:
    with openai.OpenAI(
        base_url=stack["proxy"].url + "/v1",
        api_key=KEY,
        max_retries=0,
        default_headers={"User-Agent": "my-agent/1.2"},
    ) as c:
        c.responses.create(
            model="resp", input="headers", extra_headers={"Idempotency-Key": "idem-7"}
        )
    received = [r for r in upstream_log(stack["bf16"]) if r["path"] == "/v1/responses"][-1]
    headers = {k.lower(): v for k, v in received["headers"].items()}
    assert headers.get("idempotency-key") == "idem-7"
    assert headers.get("user-agent") == "my-agent/1.2"
    assert KEY not in json.dumps(headers)
    assert headers.get("authorization", "") != f"Bearer {KEY}"
