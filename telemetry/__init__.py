"""OpenTelemetry set-up, GenAI instruments, hop counting and GPU energy metering.

The proxy uses one object, :class:`Telemetry` (see ``docs/telemetry.md``)::

    tel = Telemetry.create(settings.telemetry, variants)     # at start-up
    await tel.start()
    obs = tel.start_attempt(model=..., variant=..., attempt_id=..., role=..., ...)
    upstream_headers = obs.upstream_headers()               # traceparent for the upstream
    obs.tokens(n)                                           # per streamed chunk
    facts = await obs.finish(outcome)                       # energy share, hops, span ids
    body, content_type = tel.metrics_payload()              # GET /metrics
    await tel.aclose()

Everything else here is its parts, exported for tests, benchmarks and other tools.
"""

from telemetry.attribution import EnergyAttributor, EnergyShare, EnergyTicket, IntervalReport
from telemetry.commands import add_commands
from telemetry.config import EnergyConfig, TelemetryConfig
from telemetry.core import ShadowOutcome, Telemetry
from telemetry.energy_meter import EnergyMeter, GroupEnergy
from telemetry.energy_source import (
    EmptyEnergySource,
    EnergyMethod,
    EnergySource,
    EnergySourceError,
    GpuInfo,
    GpuReading,
)
from telemetry.errors import TelemetryConfigError
from telemetry.fake_energy import FakeEnergySource
from telemetry.hops import AgentChainTracker, count_prior_turns
from telemetry.nvml import NvmlEnergySource
from telemetry.propagation import extract_context, inject_headers
from telemetry.remote import DcgmEnergySource, RemoteEnergySource
from telemetry.request import PendingFacts, RequestObserver, TelemetryFacts
from telemetry.semconv import provider_for_backend_kind
from telemetry.variants import VariantSpec
from telemetry.vllm_scraper import UpstreamLoad, VllmMetricsScraper

__all__ = [
    "AgentChainTracker",
    "DcgmEnergySource",
    "EmptyEnergySource",
    "EnergyAttributor",
    "EnergyConfig",
    "EnergyMeter",
    "EnergyMethod",
    "EnergyShare",
    "EnergySource",
    "EnergySourceError",
    "EnergyTicket",
    "FakeEnergySource",
    "GpuInfo",
    "GpuReading",
    "GroupEnergy",
    "IntervalReport",
    "NvmlEnergySource",
    "PendingFacts",
    "RemoteEnergySource",
    "RequestObserver",
    "ShadowOutcome",
    "Telemetry",
    "TelemetryConfig",
    "TelemetryConfigError",
    "TelemetryFacts",
    "UpstreamLoad",
    "VariantSpec",
    "VllmMetricsScraper",
    "add_commands",
    "count_prior_turns",
    "extract_context",
    "inject_headers",
    "provider_for_backend_kind",
]
