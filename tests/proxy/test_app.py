"""The ASGI app in-process: endpoints, errors, auth, routing, failover, usage handling."""

from __future__ import annotations

import orjson
import pytest

from backends.base import BackendConnectError, BackendServerError, BackendTimeout
from proxy.evaluation_tags import parse_reference_depth
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import chat, harness


def sse_payloads(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


async def test_non_streaming_chat_is_forwarded_and_recorded() -> None:
    bf16 = ScriptedBackend("bf16", words=("four", "is", "the", "answer"), batch_size=3)
    async with harness({"bf16": bf16, "nf4": ScriptedBackend("nf4")}) as h:
        resp = await h.client.post(
            "/v1/chat/completions", json=chat(temperature=0.5, seed=7, tools=[{"type": "function"}])
        )
    assert resp.status_code == 200
    assert resp.headers["x-quanttrap-variant"] == "bf16"
    assert len(resp.headers["x-request-id"]) == 32
    assert resp.json()["choices"][0]["message"]["content"] == "four is the answer"
    # Fields the proxy does not interpret pass through untouched.
    sent = bf16.calls[0].body
    assert sent["seed"] == 7 and sent["tools"] == [{"type": "function"}]
    (record,) = h.records
    assert (record.variant, record.bits, record.role, record.status) == ("bf16", 16, "primary", 200)
    assert record.text == "four is the answer"
    assert (record.prompt_tokens, record.completion_tokens) == (3, 4)
    assert record.batch_size == 3 and record.ok


async def test_request_id_is_echoed_and_forwarded() -> None:
    bf16 = ScriptedBackend("bf16")
    async with harness({"bf16": bf16}) as h:
        resp = await h.client.post(
            "/v1/chat/completions",
            json=chat(),
            headers={
                "X-Request-Id": "abc-123",
                "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
            },
        )
    assert resp.headers["x-request-id"] == "abc-123"
    assert bf16.calls[0].headers["x-request-id"] == "abc-123"
    assert bf16.calls[0].headers["traceparent"].startswith("00-111")


async def test_streaming_without_include_usage_hides_usage_but_records_it() -> None:
    bf16 = ScriptedBackend("bf16", words=("a", "b", "c"))
    async with harness({"bf16": bf16}) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat(stream=True))
    assert resp.headers["content-type"] == "text/event-stream"
    payloads = sse_payloads(resp.text)
    assert payloads[-1] == "[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert all("usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "a b c"
    # ... yet the upstream was asked for usage, and the record has it.
    assert bf16.calls[0].body["stream_options"] == {"include_usage": True}
    assert h.records[0].completion_tokens == 3
    assert h.records[0].time_to_first_token_s is not None


async def test_streaming_with_include_usage_forwards_the_usage_chunk() -> None:
    async with harness({"bf16": ScriptedBackend("bf16", words=("a", "b"))}) as h:
        body = chat(stream=True, stream_options={"include_usage": True})
        resp = await h.client.post("/v1/chat/completions", json=body)
    chunks = [orjson.loads(p) for p in sse_payloads(resp.text)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


async def test_text_completions_endpoint() -> None:
    async with harness({"bf16": ScriptedBackend("bf16", words=("x", "y"))}) as h:
        resp = await h.client.post("/v1/completions", json={"model": "demo", "prompt": "p"})
        streamed = await h.client.post(
            "/v1/completions", json={"model": "demo", "prompt": "p", "stream": True}
        )
    assert resp.json()["choices"][0]["text"] == "x y"
    texts = [orjson.loads(p)["choices"][0]["text"] for p in sse_payloads(streamed.text)[:-1]]
    assert "".join(texts) == "x y"
    assert [r.operation for r in h.records] == ["text_completion", "text_completion"]


async def test_models_and_health_routes() -> None:
    async with harness(
        {"bf16": ScriptedBackend("bf16"), "nf4": ScriptedBackend("nf4", ready=False)}
    ) as h:
        models = (await h.client.get("/v1/models")).json()
        health = await h.client.get("/healthz")
        ready = await h.client.get("/readyz")
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["demo"]
    assert [v["name"] for v in models["data"][0]["quanttrap"]["variants"]] == ["bf16", "nf4"]
    assert health.status_code == 200
    # Only the primary variant decides readiness.
    assert ready.status_code == 200 and ready.json()["models"]["demo"]["ready"] is True


async def test_readyz_fails_when_the_primary_is_down() -> None:
    async with harness({"bf16": ScriptedBackend("bf16", ready=False)}) as h:
        ready = await h.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (orjson.dumps({"messages": [{"role": "user", "content": "x"}]}), 400, "model"),
        (orjson.dumps({"model": "demo"}), 400, "messages"),
        (orjson.dumps({"model": "demo", "messages": ["x"]}), 400, "messages[0]"),
        (orjson.dumps(chat(max_tokens=0)), 400, "max_tokens"),
        (orjson.dumps(chat(temperature="hot")), 400, "temperature"),
        (orjson.dumps(chat(stream="yes")), 400, "stream"),
        (orjson.dumps(chat(stream_options={"include_usage": True})), 400, "stream_options"),
        (orjson.dumps({**chat(), "model": "nope"}), 404, "model"),
    ],
)
async def test_bad_requests_get_openai_errors(body: bytes, status: int, param: str | None) -> None:
    async with harness({"bf16": ScriptedBackend("bf16")}) as h:
        resp = await h.client.post("/v1/chat/completions", content=body)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]
    assert h.records == []


async def test_unknown_route_and_wrong_method() -> None:
    async with harness({"bf16": ScriptedBackend("bf16")}) as h:
        missing = await h.client.get("/v2/nothing")
        wrong = await h.client.get("/v1/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert wrong.status_code == 405


async def test_body_over_the_limit_is_413() -> None:
    async with harness({"bf16": ScriptedBackend("bf16")}, server={"max_body_bytes": 2048}) as h:
        big = chat(padding="x" * 5000)
        resp = await h.client.post("/v1/chat/completions", json=big)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


async def test_api_keys_are_required_when_configured() -> None:
    env = {"QUANTTRAP_API_KEYS": "k1, k2"}
    async with harness({"bf16": ScriptedBackend("bf16")}, environ=env) as h:
        missing = await h.client.post("/v1/chat/completions", json=chat())
        wrong = await h.client.post(
            "/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer nope"}
        )
        right = await h.client.post(
            "/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer k2"}
        )
        models = await h.client.get("/v1/models")
        health = await h.client.get("/healthz")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    assert right.status_code == 200
    assert models.status_code == 401
    assert health.status_code == 200  # health routes stay open unless protect_metrics is set


@pytest.mark.parametrize(
    "failure", [BackendConnectError("refused"), BackendTimeout("slow"), BackendServerError(503)]
)
async def test_failover_to_the_next_variant(failure: Exception) -> None:
    bf16 = ScriptedBackend("bf16", fail=failure)  # type: ignore[arg-type]
    nf4 = ScriptedBackend("nf4", words=("from", "nf4"))
    async with harness({"bf16": bf16, "nf4": nf4}) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 200 and resp.headers["x-quanttrap-variant"] == "nf4"
    # Each attempt has its own id and its own record; the failed one says why it failed.
    failed, served = h.records
    assert (failed.variant, failed.ok, failed.status) == ("bf16", False, failed.status)
    assert failed.status in (502, 504) and failed.error_type in (
        "upstream_unavailable",
        "upstream_timeout",
    )
    assert (served.variant, served.ok, served.failed_over_from) == ("nf4", True, ("bf16",))
    assert failed.request_id == served.request_id == resp.headers["x-request-id"]
    assert failed.attempt_id and served.attempt_id and failed.attempt_id != served.attempt_id


async def test_all_variants_failing_is_502_or_504() -> None:
    down = {
        "bf16": ScriptedBackend("bf16", fail=BackendConnectError("x")),
        "nf4": ScriptedBackend("nf4", fail=BackendServerError(500)),
    }
    async with harness(down) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 502 and resp.json()["error"]["code"] == "upstream_unavailable"
    slow = {"bf16": ScriptedBackend("bf16", fail=BackendTimeout("x"))}
    async with harness(slow) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 504 and resp.json()["error"]["code"] == "upstream_timeout"


async def test_upstream_client_errors_pass_through_without_failover() -> None:
    err = orjson.dumps(
        {
            "error": {
                "message": "context too long",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    )
    bf16 = ScriptedBackend("bf16", status=400, body=err)
    nf4 = ScriptedBackend("nf4")
    async with harness({"bf16": bf16, "nf4": nf4}) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "context_length_exceeded"
    assert nf4.calls == []
    assert h.records[0].error_type == "invalid_request_error"


async def test_pinned_variant_is_used_and_never_fails_over() -> None:
    bf16 = ScriptedBackend("bf16")
    nf4 = ScriptedBackend("nf4", fail=BackendConnectError("down"))
    async with harness({"bf16": bf16, "nf4": nf4}) as h:
        resp = await h.client.post(
            "/v1/chat/completions", json=chat(), headers={"X-Quanttrap-Variant": "nf4"}
        )
        unknown = await h.client.post(
            "/v1/chat/completions", json=chat(), headers={"X-Quanttrap-Variant": "fp8"}
        )
    assert resp.status_code == 502 and bf16.calls == []
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "X-Quanttrap-Variant"


async def test_weighted_routing_splits_traffic() -> None:
    bf16, nf4 = ScriptedBackend("bf16"), ScriptedBackend("nf4")
    async with harness({"bf16": bf16, "nf4": nf4}, routing={"weights": {"bf16": 3, "nf4": 1}}) as h:
        for _ in range(200):
            await h.client.post("/v1/chat/completions", json=chat())
    share = len(nf4.calls) / 200
    assert 0.12 < share < 0.40  # 0.25 expected; bounds are > 4 standard deviations wide


async def test_stream_that_breaks_ends_with_an_error_event() -> None:
    bf16 = ScriptedBackend("bf16", words=("a", "b", "c", "d"), break_after=2)
    async with harness({"bf16": bf16}) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat(stream=True))
    payloads = sse_payloads(resp.text)
    assert "[DONE]" not in payloads
    last = orjson.loads(payloads[-1])
    assert last["error"]["code"] == "stream_interrupted"
    assert h.records[0].error_type == "upstream_stream_error"
    assert bf16.streams_closed == 1


async def test_unexpected_exception_is_an_openai_500_not_a_traceback() -> None:
    class Exploding(ScriptedBackend):
        async def send(self, request):  # type: ignore[no-untyped-def]
            raise ZeroDivisionError("boom")

    async with harness({"bf16": Exploding("bf16")}) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in resp.text and "boom" not in resp.text


async def test_evaluation_tags_are_recorded_and_never_forwarded() -> None:
    bf16 = ScriptedBackend("bf16")
    async with harness({"bf16": bf16}) as h:
        body = chat(metadata={"expected_answer": "42", "dataset": "gsm8k", "user": "u1"})
        await h.client.post("/v1/chat/completions", json=body)
        await h.client.post(
            "/v1/chat/completions",
            json=chat(metadata={"expected_answer": 7}),
        )
        await h.client.post(
            "/v1/chat/completions",
            json=chat(),
            headers={"X-Quanttrap-Expected": "18", "X-Quanttrap-Dataset": "gsm8k"},
        )
    assert bf16.calls[0].body["metadata"] == {"user": "u1"}
    assert "metadata" not in bf16.calls[1].body
    assert [(r.expected_answer, r.dataset) for r in h.records] == [
        ("42", "gsm8k"),
        ("7", None),
        ("18", "gsm8k"),
    ]


async def test_reference_depth_is_read_from_header_or_metadata_and_never_forwarded() -> None:
    bf16 = ScriptedBackend("bf16")
    async with harness({"bf16": bf16}) as h:
        post = h.client.post
        await post("/v1/chat/completions", json=chat(), headers={"X-Quanttrap-Depth": "5"})
        await post(
            "/v1/chat/completions",
            json=chat(metadata={"reference_depth": "7", "user": "u1"}),
            headers={"X-Quanttrap-Depth": "2"},  # metadata, read later, wins
        )
        await post("/v1/chat/completions", json=chat(metadata={"reference_depth": 3}))
        for bad in (b"65", b"-1", b"three", b"\xb2", b"1.5", b""):  # not an int in 0..64
            await post("/v1/chat/completions", json=chat(), headers={b"X-Quanttrap-Depth": bad})
        await post("/v1/chat/completions", json=chat(metadata={"reference_depth": True}))
        await post("/v1/chat/completions", json=chat(metadata={"reference_depth": 99}))
    assert [r.reference_depth for r in h.records] == [5, 7, 3, *[None] * 8]
    assert bf16.calls[1].body["metadata"] == {"user": "u1"}  # the tag is stripped
    assert all("metadata" not in c.body for c in bf16.calls[2:])
    assert all("x-quanttrap-depth" not in {k.lower() for k in c.headers} for c in bf16.calls)


@pytest.mark.parametrize(
    ("value", "depth"),
    [(0, 0), (64, 64), ("12", 12), (b" 4 ", 4), (65, None), (-3, None), (True, None),
     ("064", 64), ("00065", None), ("٣", None), (2.0, None), (None, None)],
)  # fmt: skip
def test_parse_reference_depth(value: object, depth: int | None) -> None:
    assert parse_reference_depth(value) == depth


def test_the_prompt_of_evaluation_traffic_is_read_in_every_api() -> None:
    from proxy.evaluation_tags import prompt_text

    chat_body = {"messages": [{"role": "user", "content": "a = 2. What is a?"}]}
    responses = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "q?"}]}]}
    messages = {"messages": [{"role": "user", "content": [{"type": "text", "text": "m?"}]}]}
    assert prompt_text(chat_body) == "a = 2. What is a?"
    assert prompt_text({"input": "plain"}) == "plain"
    assert prompt_text(responses) == "q?"
    assert prompt_text(messages) == "m?"
    assert prompt_text({"prompt": "p"}) == "p"
