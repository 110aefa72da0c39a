"""OpenTelemetry providers: metrics to a Prometheus registry, traces over OTLP when asked.

Nothing here touches a global: the :class:`CollectorRegistry`, the meter provider and the
tracer provider are created for (and owned by) one :class:`telemetry.Telemetry`, so tests
read a fresh registry and two instances never share state.

Traces are exported only when the standard variables name an endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), with the
OTLP http/protobuf exporter behind a :class:`BatchSpanProcessor` (a bounded queue and its
own thread: a slow collector drops spans, it never delays a request). Without an endpoint,
spans are not recorded, but trace context is still continued from the client to the
upstream call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from telemetry.aggregation import HotMetrics, MergingPrometheusReader
from telemetry.errors import TelemetryConfigError
from telemetry.semconv import SCHEMA_URL, SCOPE_NAME

__all__ = [
    "OTLP_ENV",
    "MetricsEndpoint",
    "build_meter_provider",
    "build_resource",
    "build_tracer_provider",
    "tracing_requested",
]

OTLP_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
_PROTOCOL_ENV = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_SUPPORTED_PROTOCOL = "http/protobuf"


def build_resource(service_name: str, environ: Mapping[str, str]) -> Resource:
    """``service.name`` from ``OTEL_SERVICE_NAME`` if set, else the config's; plus
    ``OTEL_RESOURCE_ATTRIBUTES`` (read by :meth:`Resource.create`)."""
    name = environ.get("OTEL_SERVICE_NAME") or service_name
    return Resource.create({SERVICE_NAME: name})


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for OTLP trace export.

    Raises :class:`TelemetryConfigError` for a protocol other than http/protobuf (the only
    OTLP exporter installed), so a misconfigured collector fails start-up instead of
    silently losing every trace.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    if not any(environ.get(k, "").strip() for k in OTLP_ENV):
        return False
    for key in _PROTOCOL_ENV:
        protocol = environ.get(key, "").strip()
        if protocol:
            if protocol != _SUPPORTED_PROTOCOL:
                raise TelemetryConfigError(
                    f"{key}={protocol!r}: only {_SUPPORTED_PROTOCOL!r} is supported "
                    "(opentelemetry-exporter-otlp-proto-http)"
                )
            break
    return True


def build_tracer_provider(
    resource: Resource,
    environ: Mapping[str, str],
    span_processor: SpanProcessor | None = None,
) -> tuple[TracerProvider, bool]:
    """The tracer provider and whether its spans are recorded (exported somewhere).

    ``span_processor`` replaces the OTLP exporter (tests pass an in-memory one).
    """
    if span_processor is None and tracing_requested(environ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout) itself.
        span_processor = BatchSpanProcessor(OTLPSpanExporter())
    if span_processor is None:
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF), False
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER or default
    provider.add_span_processor(span_processor)
    return provider, True


def build_meter_provider(
    resource: Resource, registry: CollectorRegistry, hot: HotMetrics
) -> MeterProvider:
    """A meter provider whose only reader writes into ``registry`` (never the global one)."""
    scope = InstrumentationScope(SCOPE_NAME, schema_url=SCHEMA_URL)
    # Scope labels (otel_scope_*) would repeat one constant scope on every line: dropped.
    reader = MergingPrometheusReader(
        hot, scope, resource, registry=registry, scope_info_enabled=False
    )
    # Exemplars would need the request's span in the ambient context, which the proxy
    # does not set; turning them off also saves work on every measurement.
    return MeterProvider(
        metric_readers=[reader], resource=resource, exemplar_filter=AlwaysOffExemplarFilter()
    )


class MetricsEndpoint:
    """The body and content type of ``GET /metrics`` for one registry.

    A scrape collects every instrument and formats the text; measured at well under a
    millisecond for quanttrap's series on one proxy (see docs/telemetry.md), so the proxy
    may call it on the event loop. Calls are serialised: the exporter's collector is not
    safe for two concurrent collections.
    """

    content_type = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()

    def payload(self) -> tuple[bytes, str]:
        with self._lock:
            return generate_latest(self._registry), self.content_type
