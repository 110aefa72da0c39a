"""The proxy-facing API end to end, in process: spans, metrics, energy, hops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from scoring.hops import logical_hops
from telemetry import FakeEnergySource, Telemetry, TelemetryConfig, VariantSpec
from telemetry.core import ActiveTelemetry, ShadowOutcome
from tests.telemetry.helpers import MODEL, make_telemetry, record, samples, start, value

Started = tuple[Telemetry, CollectorRegistry, InMemorySpanExporter]

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    tel, registry, exporter = make_telemetry()
    await tel.start()
    try:
        yield tel, registry, exporter
    finally:
        await tel.aclose()


async def test_span_carries_genai_attributes_and_continues_the_client_trace(
    started: Started,
) -> None:
    tel, _, exporter = started
    body = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
            {"role": "tool", "content": "r"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
    }
    h = start(
        tel,
        model=MODEL,
        variant="fp16",
        headers={"traceparent": TRACEPARENT, "X-Session-Id": "sess-1"},
        body=body,
        request_id="req-1",
    )
    upstream = h.upstream_headers()
    assert upstream["traceparent"].split("-")[1] == TRACE_ID
    h.tokens(9)
    done = await h.finish(record(), response_id="chatcmpl-1", response_model="m-served")

    (span,) = exporter.get_finished_spans()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert upstream["traceparent"].split("-")[2] == format(span.context.span_id, "016x")
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.response.model"] == "m-served"
    assert a["gen_ai.response.id"] == "chatcmpl-1"
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 9
    assert a["gen_ai.conversation.id"] == "sess-1"
    assert a["server.address"] == "gpu-host" and a["server.port"] == 8001
    assert a["quanttrap.variant"] == "fp16"
    assert a["quanttrap.precision_bits"] == 16
    assert a["quanttrap.role"] == "primary"
    assert a["quanttrap.request_id"] == "req-1"
    assert a["quanttrap.hops.atomic"] == 9
    assert a["quanttrap.hops.logical"] == logical_hops(record().text)
    assert a["quanttrap.agent.turns_before"] == 2
    assert a["quanttrap.energy_method"] == "nvml_counter"
    assert a["quanttrap.energy_j"] == pytest.approx(done.energy_j)
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    assert done.trace_id == TRACE_ID and done.session_id == "sess-1"
    assert done.agent_turns_before == 2


async def test_in_process_variant_gets_internal_span_kind() -> None:
    variants = (VariantSpec(MODEL, "fp16", 16, in_process=True),)
    tel, _, exporter = make_telemetry(variants=variants)
    await tel.start()
    await start(tel, model=MODEL, variant="fp16").finish(record())
    await tel.aclose()
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.INTERNAL


async def test_measured_energy_is_filled_and_recorded_with_its_method(started: Started) -> None:
    tel, registry, _ = started
    h = start(tel, model=MODEL, variant="fp16")
    for _ in range(3):
        h.tokens(1)
        await asyncio.sleep(0.015)
    done = await h.finish(record())
    # The fake GPU draws 250 W and this request was alone: it gets every interval it spanned.
    assert done.energy_method == "nvml_counter"
    assert done.energy_j is not None and 250 * 0.03 <= done.energy_j <= 250 * 1.0
    assert value(
        registry, "quanttrap_request_energy_joules_sum", quanttrap_energy_method="nvml_counter"
    ) == pytest.approx(done.energy_j)
    attributed = value(
        registry, "quanttrap_energy_attributed_joules_total", quanttrap_variant="fp16"
    )
    assert attributed is not None and attributed >= done.energy_j - 1e-9


async def test_hli_variant_uses_rated_power_times_latency_over_batch(started: Started) -> None:
    tel, registry, _ = started
    done = await start(tel, model=MODEL, variant="nf4").finish(
        record(variant="nf4", bits=4, duration_s=2.0, batch_size=4)
    )
    assert done.energy_method == "hli"
    assert done.energy_j == pytest.approx(300.0 * 2.0 / 4)
    assert value(
        registry,
        "quanttrap_request_energy_joules_sum",
        quanttrap_variant="nf4",
        quanttrap_energy_method="hli",
        quanttrap_batch_size_bucket="4-7",
    ) == pytest.approx(150.0)


async def test_unmeasured_variant_reports_none_never_a_zero(started: Started) -> None:
    tel, registry, exporter = started
    done = await start(tel, model=MODEL, variant="int8").finish(record(variant="int8", bits=8))
    assert done.energy_j is None and done.energy_method == "none"
    assert (
        samples(registry, "quanttrap_request_energy_joules_count", quanttrap_variant="int8") == []
    )
    assert (
        value(
            registry,
            "quanttrap_energy_method_info",
            quanttrap_variant="int8",
            quanttrap_energy_method="none",
        )
        == 1.0
    )
    assert (
        value(
            registry,
            "quanttrap_energy_method_info",
            quanttrap_variant="fp16",
            quanttrap_energy_method="nvml_counter",
        )
        == 1.0
    )
    assert (
        dict(exporter.get_finished_spans()[-1].attributes or {})["quanttrap.energy_method"]
        == "none"
    )


async def test_request_metrics_and_bounded_labels(started: Started) -> None:
    tel, registry, _ = started
    await start(tel, model=MODEL, variant="fp16").finish(record(batch_size=5))
    await start(tel, model="client-typo", variant="whatever", role="shadow").finish(
        record(model="client-typo", variant="whatever", status=502, error_type="weird\nerror")
    )
    ok = dict(
        gen_ai_request_model=MODEL,
        quanttrap_variant="fp16",
        quanttrap_role="primary",
        quanttrap_status_class="2xx",
    )
    assert value(registry, "quanttrap_requests_total", **ok) == 1.0
    assert value(registry, "gen_ai_server_request_duration_seconds_sum", **ok) == 0.5
    assert value(
        registry,
        "gen_ai_server_time_to_first_token_seconds_sum",
        quanttrap_batch_size_bucket="4-7",
    ) == pytest.approx(0.1)
    assert value(registry, "gen_ai_server_time_per_output_token_seconds_sum") == pytest.approx(
        (0.5 - 0.1) / 8
    )
    usage = dict(gen_ai_request_model=MODEL, quanttrap_variant="fp16")
    assert (
        value(registry, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **usage) == 12
    )
    assert (
        value(registry, "gen_ai_client_token_usage_sum", gen_ai_token_type="output", **usage) == 9
    )
    bad = samples(registry, "quanttrap_requests_total", quanttrap_status_class="5xx")
    assert [labels["gen_ai_request_model"] for labels, _ in bad] == ["other"]
    assert [labels["quanttrap_variant"] for labels, _ in bad] == ["other"]
    assert [labels["error_type"] for labels, _ in bad] == ["_OTHER"]
    # no time-to-first-token sample for the failed request
    assert (
        samples(
            registry,
            "gen_ai_server_time_to_first_token_seconds_count",
            gen_ai_request_model="other",
        )
        == []
    )
    for family in registry.collect():
        for s in family.samples:
            assert "req-1" not in s.labels.values()


async def test_hop_histograms(started: Started) -> None:
    tel, registry, _ = started
    headers = {"x-session-id": "agent-7"}
    for _ in range(3):
        await start(tel, model=MODEL, variant="fp16", headers=headers, reference_depth=3).finish(
            record()
        )
    assert value(registry, "quanttrap_hops_atomic_sum") == 27
    assert value(registry, "quanttrap_hops_logical_sum") == 3 * logical_hops(record().text)
    assert value(registry, "quanttrap_hops_reference_sum") == 9
    assert value(registry, "quanttrap_hops_agent_sum") == 0 + 1 + 2  # chain positions


async def test_in_flight_gauge_and_failover(started: Started) -> None:
    tel, registry, _ = started
    h = start(tel, model=MODEL, variant="fp16")
    assert value(registry, "quanttrap_requests_in_flight", quanttrap_variant="fp16") == 1
    h.failover("nf4", "BackendConnectError")
    # The failed attempt ends with its own outcome; the next variant is a new attempt.
    await h.finish(record(status=502, error_type="upstream_unavailable", completion_tokens=None))
    assert value(registry, "quanttrap_requests_in_flight", quanttrap_variant="fp16") == 0
    h = start(tel, model=MODEL, variant="nf4")
    assert value(registry, "quanttrap_requests_in_flight", quanttrap_variant="nf4") == 1
    done = await h.finish(record(variant="nf4", bits=4, failed_over_from=("fp16",)))
    assert done.energy_method == "hli"
    assert value(registry, "quanttrap_requests_in_flight", quanttrap_variant="nf4") == 0
    assert (
        value(
            registry,
            "quanttrap_failovers_total",
            quanttrap_failover_from="fp16",
            quanttrap_failover_to="nf4",
        )
        == 1
    )


async def test_shadow_copies_counter(started: Started) -> None:
    tel, registry, _ = started
    outcomes: list[ShadowOutcome] = ["sent", "sent", "completed", "dropped"]
    for outcome in outcomes:
        tel.shadow_copy(MODEL, "nf4", outcome)
    assert value(registry, "quanttrap_shadow_copies_total", quanttrap_shadow_outcome="sent") == 2
    assert value(registry, "quanttrap_shadow_copies_total", quanttrap_shadow_outcome="dropped") == 1


async def test_error_status_on_span(started: Started) -> None:
    tel, _, exporter = started
    await start(tel, model=MODEL, variant="fp16").finish(record(status=504, error_type="timeout"))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "timeout"


@pytest.mark.parametrize(
    ("config", "environ"),
    [
        ({"capture_content": True}, {}),
        ({}, {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}),
    ],
)
async def test_content_capture_is_opt_in(config: dict[str, bool], environ: dict[str, str]) -> None:
    tel, _, exporter = make_telemetry(config=config, environ=environ)
    body = {"messages": [{"role": "user", "content": "secret prompt"}]}
    await start(tel, model=MODEL, variant="int8", body=body).finish(
        record(variant="int8", text="secret answer")
    )
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert "secret prompt" in str(attrs["gen_ai.input.messages"])
    assert "secret answer" in str(attrs["gen_ai.output.messages"])


async def test_finish_twice_counts_once(started: Started) -> None:
    tel, registry, _ = started
    h = start(tel, model=MODEL, variant="int8")
    await h.finish(record(variant="int8"))
    await h.finish(record(variant="int8"))
    assert value(registry, "quanttrap_requests_total", quanttrap_variant="int8") == 1


async def test_errors_inside_telemetry_are_counted_not_raised(
    started: Started, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tel, registry, _ = started

    def broken(text: str, reasoning: str = "") -> int:
        raise RuntimeError("grader bug")

    monkeypatch.setattr("telemetry.recorder.logical_hops", broken)
    with caplog.at_level(logging.WARNING, logger="quanttrap.telemetry"):
        done = await start(tel, model=MODEL, variant="int8").finish(record(variant="int8"))
    assert done.request_id == "req-1"
    assert (
        value(registry, "quanttrap_telemetry_errors_total", quanttrap_telemetry_component="hops")
        == 1
    )
    assert "grader bug" in caplog.text
    # the rest of the request was still recorded
    assert value(registry, "quanttrap_requests_total", quanttrap_variant="int8") == 1


async def test_disabled_telemetry_is_a_noop() -> None:
    tel = Telemetry.create(TelemetryConfig(enabled=False), [VariantSpec(MODEL, "fp16", 16)])
    await tel.start()
    h = start(tel, model=MODEL, variant="fp16", headers={"traceparent": TRACEPARENT})
    h.tokens(3)
    assert h.upstream_headers() == {}
    r = record()
    assert await h.finish(r) == r  # nothing learnt, nothing measured
    body, content_type = tel.metrics_payload()
    assert b"disabled" in body and content_type.startswith("text/plain")
    await tel.aclose()


async def test_pending_record_times_out_to_none_when_no_sample_comes() -> None:
    tel, _, _ = make_telemetry(config={"energy": {"finish_timeout_s": 0.05}})
    await tel.start()
    assert isinstance(tel, ActiveTelemetry)
    sampler = tel.energy_meter.sampler
    assert sampler is not None
    sampler._stop.set()  # freeze the thread: no further samples
    await asyncio.sleep(0.05)
    done = await start(tel, model=MODEL, variant="fp16").finish(record())
    assert done.energy_j is None and done.energy_method == "none"
    await tel.aclose()  # the last sample still resolves it (metrics, span)


async def test_fake_source_energy_matches_power_times_time() -> None:
    clock = [0.0]
    source = FakeEnergySource(power_w=100.0, clock=lambda: clock[0])
    tel, _, _ = make_telemetry(source=source)
    await tel.start()
    assert isinstance(tel, ActiveTelemetry)
    sampler = tel.energy_meter.sampler
    assert sampler is not None
    sampler._stop.set()  # drive samples by hand
    await asyncio.sleep(0.03)
    h = start(tel, model=MODEL, variant="fp16")
    clock[0] += 2.0
    h.tokens(5)
    pending = h.finish(record())
    sampler.tick()
    done = await pending
    assert done.energy_j == pytest.approx(200.0)  # 100 W x 2 s, alone on the GPU
    await tel.aclose()


async def test_without_span_export_the_client_trace_context_passes_through() -> None:
    cfg = TelemetryConfig.model_validate({"energy": {"source": "none"}})
    tel = Telemetry.create(cfg, [VariantSpec(MODEL, "fp16", 16)], environ={})
    h = start(
        tel, model=MODEL, variant="fp16", headers={"traceparent": TRACEPARENT, "tracestate": "a=b"}
    )
    assert h.upstream_headers() == {"traceparent": TRACEPARENT, "tracestate": "a=b"}
    bad = start(tel, model=MODEL, variant="fp16", headers={"traceparent": "garbage"})
    assert bad.upstream_headers() == {}
    assert (await h.finish(record())).trace_id == TRACE_ID
    assert (await bad.finish(record())).trace_id is None
