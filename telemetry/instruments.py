"""The instruments quanttrap records into, and the label keys of each.

Per-request instruments are :mod:`telemetry.aggregation` hot instruments (recorded on the
request path, ~0.5 µs each); instruments updated by the sampler, the scraper or on errors
are ordinary OpenTelemetry SDK instruments (a few updates a second). Label values are passed
as tuples in the order of the ``*_LABELS`` keys below; ``""`` means "attribute absent".
"""

from __future__ import annotations

from typing import Final

from opentelemetry.metrics import Meter

from telemetry.aggregation import HotMetrics
from telemetry.errors import COMPONENTS, Component
from telemetry.semconv import HISTOGRAMS, Key, Metric

__all__ = [
    "ENERGY_LABELS",
    "FAILOVER_LABELS",
    "HOP_LABELS",
    "IN_FLIGHT_LABELS",
    "REQUEST_LABELS",
    "SHADOW_LABELS",
    "SUCCESS_LABELS",
    "TOKEN_LABELS",
    "Instruments",
]

SUCCESS_LABELS: Final = (
    Key.OPERATION_NAME,
    Key.PROVIDER_NAME,
    Key.REQUEST_MODEL,
    Key.VARIANT,
    Key.PRECISION_BITS,
    Key.ROLE,
    Key.BATCH_SIZE_BUCKET,
)
"""Time to first token and time per output token (successful responses only)."""
REQUEST_LABELS: Final = (*SUCCESS_LABELS, Key.STATUS_CLASS, Key.ERROR_TYPE)
"""Request duration and the requests counter: every outcome."""
TOKEN_LABELS: Final = (*SUCCESS_LABELS, Key.TOKEN_TYPE)
HOP_LABELS: Final = (Key.REQUEST_MODEL, Key.VARIANT, Key.PRECISION_BITS, Key.ROLE)
ENERGY_LABELS: Final = (*HOP_LABELS, Key.BATCH_SIZE_BUCKET, Key.ENERGY_METHOD)
TOOL_CALL_LABELS: Final = (*HOP_LABELS, Key.AGENT_HOP_BUCKET)
"""Tool calls per answer, stratified by the bounded agent-hop bucket of the call."""
IN_FLIGHT_LABELS: Final = (Key.REQUEST_MODEL, Key.VARIANT, Key.ROLE)
FAILOVER_LABELS: Final = (Key.REQUEST_MODEL, Key.FAILOVER_FROM, Key.FAILOVER_TO)
SHADOW_LABELS: Final = (Key.REQUEST_MODEL, Key.VARIANT, Key.SHADOW_OUTCOME)


class Instruments:
    """Every instrument, created once per :class:`telemetry.Telemetry`."""

    def __init__(self, hot: HotMetrics, meter: Meter) -> None:
        self.hot = hot
        h = HISTOGRAMS
        self.duration = hot.histogram(h[Metric.REQUEST_DURATION], REQUEST_LABELS)
        self.ttft = hot.histogram(h[Metric.TIME_TO_FIRST_TOKEN], SUCCESS_LABELS)
        self.tpot = hot.histogram(h[Metric.TIME_PER_OUTPUT_TOKEN], SUCCESS_LABELS)
        self.token_usage = hot.histogram(h[Metric.TOKEN_USAGE], TOKEN_LABELS)
        self.energy = hot.histogram(h[Metric.REQUEST_ENERGY], ENERGY_LABELS)
        self.hops_atomic = hot.histogram(h[Metric.HOPS_ATOMIC], HOP_LABELS)
        self.hops_logical = hot.histogram(h[Metric.HOPS_LOGICAL], HOP_LABELS)
        self.hops_reference = hot.histogram(h[Metric.HOPS_REFERENCE], HOP_LABELS)
        self.hops_agent = hot.histogram(h[Metric.HOPS_AGENT], HOP_LABELS)
        self.tool_calls = hot.histogram(h[Metric.AGENT_TOOL_CALLS], TOOL_CALL_LABELS)
        self.reasoning_tokens = hot.histogram(h[Metric.REASONING_TOKENS], HOP_LABELS)
        self.ttfc = hot.histogram(h[Metric.TIME_TO_FIRST_CONTENT], SUCCESS_LABELS)
        self.requests = hot.counter(
            Metric.REQUESTS, "{request}", "Finished requests by outcome.", REQUEST_LABELS
        )
        self.in_flight = hot.counter(
            Metric.IN_FLIGHT,
            "{request}",
            "Requests being served now.",
            IN_FLIGHT_LABELS,
            monotonic=False,
        )
        self.failovers = hot.counter(
            Metric.FAILOVERS,
            "{failover}",
            "Requests moved to another variant after the first choice failed before any byte.",
            FAILOVER_LABELS,
        )
        self.shadow_copies = hot.counter(
            Metric.SHADOW_COPIES,
            "{copy}",
            "Shadow copies by outcome: sent, completed, failed, dropped.",
            SHADOW_LABELS,
        )
        self.energy_attributed = meter.create_counter(
            Metric.ENERGY_ATTRIBUTED,
            unit="J",
            description="GPU energy apportioned to requests (measured methods only).",
        )
        self.energy_idle = meter.create_counter(
            Metric.ENERGY_IDLE,
            unit="J",
            description="GPU energy of intervals with no request in flight.",
        )
        self.energy_method_info = meter.create_gauge(
            Metric.ENERGY_METHOD_INFO,
            unit="",
            description="1 for the energy method each variant uses now (none: not measured).",
        )
        self.gpu_power = meter.create_gauge(
            Metric.GPU_POWER, unit="W", description="GPU board power at the last sample."
        )
        self.gpu_memory = meter.create_gauge(
            Metric.GPU_MEMORY_USED, unit="By", description="GPU memory in use at the last sample."
        )
        self.upstream_running = meter.create_gauge(
            Metric.UPSTREAM_RUNNING,
            unit="{request}",
            description="Requests the upstream reports decoding now (vLLM).",
        )
        self.upstream_waiting = meter.create_gauge(
            Metric.UPSTREAM_WAITING,
            unit="{request}",
            description="Requests waiting in the upstream's queue (vLLM).",
        )
        self.upstream_kv_cache = meter.create_gauge(
            Metric.UPSTREAM_KV_CACHE,
            unit="1",
            description="Fraction of the upstream's KV cache in use (vLLM).",
        )
        self._errors = meter.create_counter(
            Metric.TELEMETRY_ERRORS,
            unit="{error}",
            description="Errors inside telemetry (caught, logged, never failing a request).",
        )
        for component in COMPONENTS:  # every series exists from the start, at 0
            self._errors.add(0, {Key.TELEMETRY_COMPONENT: component})

    def count_error(self, component: Component) -> None:
        self._errors.add(1, {Key.TELEMETRY_COMPONENT: component})
