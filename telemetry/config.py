"""Telemetry settings (the ``telemetry:`` section of the main config file).

Everything here is validated once at start-up; a bad value fails start-up with the field's
name, never a request. Tracing export is configured the standard OpenTelemetry way, through
``OTEL_EXPORTER_OTLP_*`` environment variables (see :mod:`telemetry.providers`), not here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EnergyConfig", "EnergySourceKind", "TelemetryConfig"]

EnergySourceKind = Literal["auto", "nvml", "remote", "dcgm", "none"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnergyConfig(_Strict):
    """Where GPU energy readings come from and how often they are taken."""

    source: EnergySourceKind = "auto"
    """``auto``: NVML when a GPU is visible, else none. ``nvml``: NVML, and start-up fails
    without it. ``remote``: a ``quanttrap nvml-agent`` at ``url``. ``dcgm``: a DCGM exporter's
    ``/metrics`` at ``url``. ``none``: no GPU metering (HLI still applies where a variant has
    ``rated_power_w``)."""
    url: str | None = Field(default=None, pattern=r"^https?://")
    """Base URL of the nvml-agent (``remote``) or the DCGM exporter's metrics URL (``dcgm``)."""
    sample_interval_ms: float = Field(default=100.0, ge=10.0, le=10_000.0)
    """Sampling period of the energy counter. NVML refreshes it about every 100 ms."""
    finish_timeout_s: float = Field(default=2.0, gt=0.0, le=60.0)
    """Longest wait, after a request finished, for the sample that closes its last interval."""
    request_timeout_s: float = Field(default=1.0, gt=0.0, le=30.0)
    """HTTP timeout of one read from a remote agent or DCGM exporter."""

    @model_validator(mode="after")
    def _url_when_remote(self) -> EnergyConfig:
        if self.source in ("remote", "dcgm") and not self.url:
            raise ValueError(f"energy.url is required when energy.source is {self.source!r}")
        return self


class TelemetryConfig(_Strict):
    enabled: bool = True
    """Off: every telemetry call is a no-op and ``/metrics`` says telemetry is disabled."""
    capture_content: bool = False
    """Prompt and completion text in spans. Off unless switched on here or by the standard
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``."""
    service_name: str = Field(default="quanttrap", min_length=1)
    """``service.name`` of the OpenTelemetry resource unless ``OTEL_SERVICE_NAME`` is set."""
    energy: EnergyConfig = EnergyConfig()
    upstream_scrape_interval_ms: float = Field(default=250.0, ge=50.0, le=60_000.0)
    """Polling period of vLLM upstreams' ``/metrics`` (running/waiting requests, KV cache)."""
    session_header: str = Field(default="x-session-id", min_length=1)
    """Request header that groups the calls of one agent session (case-insensitive)."""
    agent_chain_ttl_s: float = Field(default=600.0, gt=0.0)
    """How long a trace or session id is remembered when counting agent hops."""
    agent_chain_max_entries: int = Field(default=10_000, ge=1)
    """Most trace/session ids remembered at once (least recently used are forgotten)."""
