"""What ``telemetry`` exports, pinned (the proxy integrates against it)."""

from __future__ import annotations

import telemetry


def test_public_api() -> None:
    assert telemetry.__all__ == sorted(telemetry.__all__)
    assert set(telemetry.__all__) == {
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
    }
    for name in telemetry.__all__:
        assert getattr(telemetry, name) is not None
