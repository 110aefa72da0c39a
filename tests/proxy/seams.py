"""An in-process app with REAL telemetry: the harness for the tests at the seams.

The app is built as ``quanttrap serve`` builds it (the same variant specs, the same telemetry
object), with three test-side replacements: scripted backends (a test double for upstream
servers), the fake energy source (a GPU drawing a fixed power: a test double for NVML) and an
in-memory span exporter (OpenTelemetry's own test exporter). Every variant sits on the fake
GPU, so energy attribution runs for all of them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from core.records import RequestRecord, ShadowPair
from proxy.app import QuanttrapApp
from quanttrap.assembly import variant_specs
from telemetry import FakeEnergySource, Telemetry
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import settings_for


@dataclasses.dataclass
class Seams:
    app: QuanttrapApp
    client: httpx.AsyncClient
    telemetry: Telemetry
    registry: CollectorRegistry
    spans: InMemorySpanExporter
    records: list[RequestRecord]
    pairs: list[ShadowPair]
    source: FakeEnergySource


@asynccontextmanager
async def seams(
    backends: Mapping[str, ScriptedBackend],
    *,
    telemetry: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    **model_extra: Any,
) -> AsyncIterator[Seams]:
    names = list(backends)
    settings = settings_for(
        {n: 16 if i == 0 else 4 for i, n in enumerate(names)}, primary=names[0], **model_extra
    )
    config = settings.telemetry.model_validate(
        {"energy": {"sample_interval_ms": 10, "finish_timeout_s": 5.0}, **(telemetry or {})}
    )
    settings = settings.model_copy(update={"telemetry": config})
    specs = [dataclasses.replace(s, gpus="all") for s in variant_specs(settings)]
    registry = CollectorRegistry()
    spans = InMemorySpanExporter()
    source = FakeEnergySource(power_w=200.0, clock=clock)
    tel = Telemetry.create(
        config,
        specs,
        registry=registry,
        energy_source=source,
        span_processor=SimpleSpanProcessor(spans),
        environ={},
    )
    records: list[RequestRecord] = []
    pairs: list[ShadowPair] = []
    app = QuanttrapApp(
        settings,
        {("demo", n): b for n, b in backends.items()},
        record_sinks=[records.append],
        pair_sinks=[pairs.append],
        environ={},
        telemetry=tel,
    )
    await app.startup()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            yield Seams(app, client, tel, registry, spans, records, pairs, source)
    finally:
        await app.shutdown()
