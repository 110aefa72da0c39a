"""Helpers for the telemetry tests: reading a registry, building records and telemetry."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from scoring.records import RequestRecord
from telemetry import FakeEnergySource, Telemetry, TelemetryConfig, VariantSpec

MODEL = "m"
VARIANTS = (
    VariantSpec(MODEL, "fp16", 16, gpus="all", server_address="gpu-host", server_port=8001),
    VariantSpec(MODEL, "nf4", 4, rated_power_w=300.0),
    VariantSpec(MODEL, "int8", 8),
)


def samples(
    registry: CollectorRegistry, name: str, **labels: str
) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` whose labels include ``labels``."""
    out = []
    for family in registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out.append((dict(s.labels), s.value))
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """Sum of the matching samples, ``None`` if there is none."""
    found = samples(registry, name, **labels)
    return sum(v for _, v in found) if found else None


def record(**overrides: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "model": MODEL,
        "variant": "fp16",
        "bits": 16,
        "role": "primary",
        "operation": "chat",
        "stream": True,
        "status": 200,
        "started_at": time.time(),
        "duration_s": 0.5,
        "time_to_first_token_s": 0.1,
        "prompt_tokens": 12,
        "completion_tokens": 9,
        "finish_reason": "stop",
        "text": "3 * 4 = 12\nSo 12 + 1 = 13.\nThe answer is 13.",
    }
    fields.update(overrides)
    return RequestRecord(**fields)


def make_telemetry(
    *,
    variants: Sequence[VariantSpec] = VARIANTS,
    source: FakeEnergySource | None = None,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Telemetry, CollectorRegistry, InMemorySpanExporter]:
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    cfg = TelemetryConfig.model_validate(
        {"energy": {"sample_interval_ms": 10, "finish_timeout_s": 5.0}, **(config or {})}
    )
    tel = Telemetry.create(
        cfg,
        variants,
        registry=registry,
        energy_source=source if source is not None else FakeEnergySource(power_w=250.0),
        span_processor=SimpleSpanProcessor(exporter),
        environ=environ or {},
    )
    return tel, registry, exporter
