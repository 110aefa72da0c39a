"""The :class:`Telemetry` object the proxy creates once, and its disabled twin.

Life cycle::

    tel = Telemetry.create(settings.telemetry, variants)   # validates; fails on bad config
    await tel.start()                                      # NVML/agent open, sampler thread
    ... h = tel.start_request(...); ...; record = await h.finish(record) ...
    body, content_type = tel.metrics_payload()             # GET /metrics
    await tel.aclose()                                     # last sample, flush spans

``Telemetry`` itself is the no-op implementation returned when ``telemetry.enabled`` is
false; :class:`ActiveTelemetry` is the real one.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
from opentelemetry.metrics import Meter
from opentelemetry.sdk.trace import SpanProcessor
from prometheus_client import CollectorRegistry

from core.records import Operation, Role
from telemetry.aggregation import HotMetrics
from telemetry.attribution import IntervalReport
from telemetry.config import TelemetryConfig
from telemetry.energy_meter import EnergyMeter, GroupEnergy
from telemetry.energy_source import EnergyMethod, EnergySource, GpuReading
from telemetry.errors import ErrorReporter, TelemetryConfigError
from telemetry.hops import AgentChainTracker
from telemetry.instruments import Instruments
from telemetry.labels import LabelPolicy
from telemetry.nvml import NvmlEnergySource
from telemetry.providers import (
    MetricsEndpoint,
    build_meter_provider,
    build_resource,
    build_tracer_provider,
)
from telemetry.recorder import ActiveObserver, RequestDeps
from telemetry.remote import DcgmEnergySource, RemoteEnergySource
from telemetry.request import NOOP_OBSERVER, RequestObserver
from telemetry.semconv import CAPTURE_CONTENT_ENV, SCHEMA_URL, SCOPE_NAME, Key
from telemetry.variants import VariantSpec, group_key
from telemetry.vllm_scraper import UpstreamLoad, VllmMetricsScraper

__all__ = ["ActiveTelemetry", "ShadowOutcome", "Telemetry"]

ShadowOutcome = Literal["sent", "completed", "failed", "dropped", "skipped"]
_DISABLED_BODY = b"# quanttrap telemetry is disabled (telemetry.enabled: false)\n"


class Telemetry:
    """The telemetry API. This base class is the disabled implementation: every call is a
    cheap no-op and ``/metrics`` says that telemetry is off."""

    enabled = False
    meter: Meter | None = None
    """The OpenTelemetry meter other parts (live scoring) create their instruments from."""

    @staticmethod
    def create(
        config: TelemetryConfig,
        variants: Sequence[VariantSpec],
        *,
        registry: CollectorRegistry | None = None,
        energy_source: EnergySource | None = None,
        span_processor: SpanProcessor | None = None,
        environ: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> Telemetry:
        """Build telemetry for ``variants`` (raises :class:`TelemetryConfigError`).

        ``registry`` is the Prometheus registry to fill (a fresh one by default; never the
        global one); ``energy_source`` replaces the configured one (tests, benchmarks);
        ``span_processor`` replaces the OTLP exporter; ``http_client`` is used for vLLM
        ``/metrics`` polling.
        """
        if not config.enabled:
            return Telemetry()
        return ActiveTelemetry(
            config,
            variants,
            registry=registry,
            energy_source=energy_source,
            span_processor=span_processor,
            environ=os.environ if environ is None else environ,
            http_client=http_client,
        )

    def start_attempt(
        self,
        *,
        model: str,
        variant: str,
        attempt_id: str,
        role: Role = "primary",
        operation: Operation = "chat",
        request_id: str = "",
        pair_id: str | None = None,
        trace_headers: Mapping[str, str] | None = None,
        session_id: str | None = None,
        agent_turns_before: int = 0,
        reference_depth: int | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> RequestObserver:
        """Begin observing one upstream attempt (a primary's, a failover's, a shadow copy's
        or a canary's); energy is metered under ``attempt_id``, which must be unique."""
        return NOOP_OBSERVER

    def shadow_copy(self, model: str, variant: str, outcome: ShadowOutcome) -> None:
        """Count a shadow copy: ``sent``, then ``completed`` or ``failed``; or ``dropped``."""

    def energy_method(self, model: str, variant: str) -> EnergyMethod:
        """How ``variant``'s per-request energy is obtained now."""
        return "none"

    def metrics_payload(self) -> tuple[bytes, str]:
        """Body and content type for ``GET /metrics`` (text format 0.0.4)."""
        return _DISABLED_BODY, MetricsEndpoint.content_type

    async def start(self) -> None:
        """Open energy sources and start background work (sampler thread, vLLM polling)."""

    async def aclose(self) -> None:
        """Stop background work; resolve pending energy figures; flush spans."""


class ActiveTelemetry(Telemetry):
    """Telemetry switched on. Build it with :meth:`Telemetry.create`."""

    enabled = True

    def __init__(
        self,
        config: TelemetryConfig,
        variants: Sequence[VariantSpec],
        *,
        registry: CollectorRegistry | None,
        energy_source: EnergySource | None,
        span_processor: SpanProcessor | None,
        environ: Mapping[str, str],
        http_client: httpx.AsyncClient | None,
    ) -> None:
        specs = {v.key: v for v in variants}
        if len(specs) != len(variants):
            raise TelemetryConfigError("telemetry: two variants share a model and a name")
        self.registry = CollectorRegistry() if registry is None else registry
        resource = build_resource(config.service_name, environ)
        hot = HotMetrics()
        self._meter_provider = build_meter_provider(resource, self.registry, hot)
        self.meter: Meter = self._meter_provider.get_meter(SCOPE_NAME, schema_url=SCHEMA_URL)
        self._instruments = Instruments(hot, self.meter)
        self._reporter = ErrorReporter(self._instruments.count_error)
        self._tracer_provider, recording = build_tracer_provider(resource, environ, span_processor)
        self._endpoint = MetricsEndpoint(self.registry)
        labels = LabelPolicy(_variants_by_model(variants))
        self._labels = {
            k: {
                Key.REQUEST_MODEL: labels.model(v.model),
                Key.VARIANT: labels.variant(v.model, v.name),
            }
            for k, v in specs.items()
        }
        energy = config.energy
        source, required = self._energy_source(config, energy_source, environ)
        self.energy_meter = EnergyMeter(
            source,
            {k: GroupEnergy(v.gpus, v.rated_power_w) for k, v in specs.items()},
            interval_s=energy.sample_interval_ms / 1000.0,
            reporter=self._reporter,
            on_sample=self._on_sample,
            required=required,
        )
        targets = {k: v.metrics_url for k, v in specs.items() if v.metrics_url}
        self.upstream_scraper = (
            VllmMetricsScraper(
                targets,
                interval_s=config.upstream_scrape_interval_ms / 1000.0,
                client=http_client,
                reporter=self._reporter,
                on_load=self._on_load,
            )
            if targets
            else None
        )
        self._methods: dict[str, EnergyMethod] = {}
        self._methods_lock = threading.Lock()  # the sampler thread and start() both update
        capture = config.capture_content or (
            environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"
        )
        self._deps = RequestDeps(
            instruments=self._instruments,
            meter=self.energy_meter,
            reporter=self._reporter,
            tracer=self._tracer_provider.get_tracer(SCOPE_NAME, schema_url=SCHEMA_URL),
            recording=recording,
            capture_content=capture,
            tracker=AgentChainTracker(config.agent_chain_ttl_s, config.agent_chain_max_entries),
            scraper=self.upstream_scraper,
            labels=labels,
            variants=specs,
            finish_timeout_s=config.energy.finish_timeout_s
            + config.energy.sample_interval_ms / 1000,
        )

    def _energy_source(
        self,
        config: TelemetryConfig,
        injected: EnergySource | None,
        environ: Mapping[str, str],
    ) -> tuple[EnergySource | None, bool]:
        if injected is not None:
            return injected, True
        e = config.energy
        on_error = lambda exc: self._reporter.report("energy_source", exc)  # noqa: E731
        if e.source in ("auto", "nvml"):
            return NvmlEnergySource(environ=environ, on_error=on_error), e.source == "nvml"
        if e.source == "remote":
            assert e.url is not None
            return RemoteEnergySource(e.url, timeout_s=e.request_timeout_s), True
        if e.source == "dcgm":
            assert e.url is not None
            return DcgmEnergySource(e.url, timeout_s=e.request_timeout_s), True
        return None, False

    def start_attempt(
        self,
        *,
        model: str,
        variant: str,
        attempt_id: str,
        role: Role = "primary",
        operation: Operation = "chat",
        request_id: str = "",
        pair_id: str | None = None,
        trace_headers: Mapping[str, str] | None = None,
        session_id: str | None = None,
        agent_turns_before: int = 0,
        reference_depth: int | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> RequestObserver:
        try:
            return ActiveObserver(
                self._deps,
                model=model,
                variant=variant,
                role=role,
                operation=operation,
                attempt_id=attempt_id,
                request_id=request_id,
                pair_id=pair_id,
                trace_headers=trace_headers,
                session_id=session_id,
                agent_turns_before=agent_turns_before,
                reference_depth=reference_depth,
                body=body,
            )
        except Exception as exc:
            self._reporter.report("request", exc)
            return NOOP_OBSERVER

    def shadow_copy(self, model: str, variant: str, outcome: ShadowOutcome) -> None:
        labels = self._labels.get(group_key(model, variant))
        m, v = (labels[Key.REQUEST_MODEL], labels[Key.VARIANT]) if labels else ("other", "other")
        self._instruments.shadow_copies.add(1, (m, v, outcome))

    def energy_method(self, model: str, variant: str) -> EnergyMethod:
        return self.energy_meter.method(group_key(model, variant))

    def metrics_payload(self) -> tuple[bytes, str]:
        try:
            return self._endpoint.payload()
        except Exception as exc:
            self._reporter.report("metrics", exc)
            raise

    async def start(self) -> None:
        await asyncio.to_thread(self.energy_meter.open)
        await asyncio.to_thread(self.energy_meter.start)
        self._update_method_info()
        inst = self._instruments
        for group, labels in self._labels.items():
            if self.energy_meter.measured(group):  # counters exist (at 0) from the start
                method = {**labels, Key.ENERGY_METHOD: self.energy_meter.method(group)}
                inst.energy_attributed.add(0.0, method)
                inst.energy_idle.add(0.0, method)
        if self.upstream_scraper is not None:
            await self.upstream_scraper.start()

    async def aclose(self) -> None:
        if self.upstream_scraper is not None:
            await self.upstream_scraper.aclose()
        await asyncio.to_thread(self.energy_meter.stop)
        await asyncio.to_thread(self._tracer_provider.shutdown)

    def _update_method_info(self) -> None:
        gauge = self._instruments.energy_method_info
        with self._methods_lock:
            for group, labels in self._labels.items():
                method = self.energy_meter.method(group)
                previous = self._methods.get(group)
                if previous == method:
                    continue
                if previous is not None:
                    gauge.set(0, {**labels, Key.ENERGY_METHOD: previous})
                gauge.set(1, {**labels, Key.ENERGY_METHOD: method})
                self._methods[group] = method

    def _on_sample(self, readings: Sequence[GpuReading], report: IntervalReport) -> None:
        inst = self._instruments
        for r in readings:
            gpu = {Key.GPU_UUID: r.uuid, Key.ENERGY_METHOD: r.method}
            if r.power_mw is not None:
                inst.gpu_power.set(r.power_mw / 1000.0, gpu)
            if r.memory_used_bytes is not None:
                inst.gpu_memory.set(r.memory_used_bytes, gpu)
        for group, mj in report.attributed_mj.items():
            labels = {**self._labels[group], Key.ENERGY_METHOD: report.methods[group]}
            if mj > 0:
                inst.energy_attributed.add(mj / 1000.0, labels)
            idle = report.idle_mj.get(group, 0.0)
            if idle > 0:
                inst.energy_idle.add(idle / 1000.0, labels)
        for gpu_uuid in report.unmeasured_gpus:
            self._reporter.report("attribution", f"GPU {gpu_uuid}: interval not measured")
        self._update_method_info()

    def _on_load(self, group: str, load: UpstreamLoad) -> None:
        inst, labels = self._instruments, self._labels[group]
        inst.upstream_running.set(load.running, labels)
        if load.waiting is not None:
            inst.upstream_waiting.set(load.waiting, labels)
        if load.kv_cache_usage is not None:
            inst.upstream_kv_cache.set(load.kv_cache_usage, labels)


def _variants_by_model(variants: Sequence[VariantSpec]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in variants:
        out.setdefault(v.model, []).append(v.name)
    return out
