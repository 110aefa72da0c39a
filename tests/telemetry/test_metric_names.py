"""The Prometheus names, units and bucket boundaries that reach /metrics (as documented)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from telemetry import Telemetry, TelemetryConfig, VariantSpec
from telemetry.semconv import HISTOGRAMS, Metric
from tests.telemetry.helpers import MODEL, make_telemetry, record, start, value

# The GenAI boundaries of semantic conventions v1.41.0 (docs/gen-ai/gen-ai-metrics.md).
CONVENTION_BUCKETS: dict[str, list[float]] = {
    "gen_ai_server_request_duration_seconds": [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ],
    "gen_ai_server_time_to_first_token_seconds": [
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ],
    "gen_ai_server_time_per_output_token_seconds": [
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ],
    "gen_ai_client_token_usage": [
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
    ],
}  # fmt: skip

DOCUMENTED = {
    "gen_ai_server_request_duration_seconds": "histogram",
    "gen_ai_server_time_to_first_token_seconds": "histogram",
    "gen_ai_server_time_per_output_token_seconds": "histogram",
    "gen_ai_client_token_usage": "histogram",
    "quanttrap_request_energy_joules": "histogram",
    "quanttrap_hops_atomic": "histogram",
    "quanttrap_hops_logical": "histogram",
    "quanttrap_hops_reference": "histogram",
    "quanttrap_hops_agent": "histogram",
    "quanttrap_requests": "counter",
    "quanttrap_requests_in_flight": "gauge",
    "quanttrap_failovers": "counter",
    "quanttrap_shadow_copies": "counter",
    "quanttrap_energy_attributed_joules": "counter",
    "quanttrap_energy_idle_joules": "counter",
    "quanttrap_energy_method_info": "gauge",
    "quanttrap_gpu_power_watts": "gauge",
    "quanttrap_gpu_memory_used_bytes": "gauge",
    "quanttrap_telemetry_errors": "counter",
}


async def _payload() -> str:
    tel, _, _ = make_telemetry()
    await tel.start()
    h = start(tel, model=MODEL, variant="fp16", headers={"x-session-id": "s"}, reference_depth=2)
    h.tokens(9)
    await h.finish(record())
    h2 = start(tel, model=MODEL, variant="fp16")
    h2.failover("nf4")
    await h2.finish(record(variant="nf4", bits=4))
    tel.shadow_copy(MODEL, "nf4", "sent")
    body, content_type = tel.metrics_payload()
    await tel.aclose()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    return body.decode()


async def test_names_and_types_match_the_documentation() -> None:
    families = {f.name: f.type for f in text_string_to_metric_families(await _payload())}
    for name, kind in DOCUMENTED.items():
        assert families.get(name) == kind, name


async def test_genai_histograms_use_the_conventions_boundaries() -> None:
    text = await _payload()
    for family in text_string_to_metric_families(text):
        if family.name in CONVENTION_BUCKETS:
            les = sorted(
                {float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")}
            )
            assert les[:-1] == [float(b) for b in CONVENTION_BUCKETS[family.name]]
            assert les[-1] == float("inf")


def test_semconv_module_holds_the_same_boundaries() -> None:
    spec = {
        Metric.REQUEST_DURATION: "gen_ai_server_request_duration_seconds",
        Metric.TIME_TO_FIRST_TOKEN: "gen_ai_server_time_to_first_token_seconds",
        Metric.TIME_PER_OUTPUT_TOKEN: "gen_ai_server_time_per_output_token_seconds",
        Metric.TOKEN_USAGE: "gen_ai_client_token_usage",
    }
    for name, prom in spec.items():
        assert list(HISTOGRAMS[name].boundaries) == [float(b) for b in CONVENTION_BUCKETS[prom]]


async def test_upstream_gauges_are_quanttrap_series_not_vllm_ones() -> None:
    page = (Path(__file__).parent / "data" / "vllm_metrics.txt").read_text()
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, text=page))
    )
    registry = CollectorRegistry()
    variant = VariantSpec(MODEL, "awq", 4, metrics_url="http://vllm:8000/metrics")
    cfg = TelemetryConfig.model_validate(
        {"energy": {"source": "none"}, "upstream_scrape_interval_ms": 50}
    )
    tel = Telemetry.create(cfg, [variant], registry=registry, environ={}, http_client=client)
    await tel.start()
    for _ in range(100):
        if value(registry, "quanttrap_upstream_requests_running") is not None:
            break
        await asyncio.sleep(0.01)
    text = tel.metrics_payload()[0].decode()
    await tel.aclose()
    labels = dict(gen_ai_request_model=MODEL, quanttrap_variant="awq")
    assert value(registry, "quanttrap_upstream_requests_running", **labels) == 8
    assert value(registry, "quanttrap_upstream_requests_waiting", **labels) == 2
    assert value(registry, "quanttrap_upstream_kv_cache_usage", **labels) == 0.175
    assert "vllm:" not in text and "vllm_" not in text
