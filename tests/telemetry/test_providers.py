"""Start-up configuration: OTLP from the standard variables, config validation."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from pydantic import ValidationError

from telemetry import EnergyConfig, Telemetry, TelemetryConfig, TelemetryConfigError, VariantSpec
from telemetry.providers import build_resource, build_tracer_provider, tracing_requested


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_follows_the_standard_variables(env: dict[str, str], wanted: bool) -> None:
    assert tracing_requested(env) is wanted


def test_grpc_protocol_fails_at_start_up() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with pytest.raises(TelemetryConfigError, match="http/protobuf"):
        Telemetry.create(TelemetryConfig(), [VariantSpec("m", "v", 16)], environ=env)


def test_otlp_exporter_is_installed_when_an_endpoint_is_set() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    provider, recording = build_tracer_provider(Resource.create({}), env)
    assert recording
    span = provider.get_tracer("t").start_span("s")
    assert span.is_recording()
    span.end()
    provider.shutdown()
    quiet, recording = build_tracer_provider(Resource.create({}), {})
    assert not recording and not quiet.get_tracer("t").start_span("s").is_recording()


def test_service_name_from_env_wins() -> None:
    res = build_resource("quanttrap", {"OTEL_SERVICE_NAME": "proxy-eu"})
    assert res.attributes["service.name"] == "proxy-eu"


def test_remote_energy_needs_a_url() -> None:
    with pytest.raises(ValidationError, match=r"energy\.url is required"):
        EnergyConfig(source="remote")
    assert EnergyConfig(source="dcgm", url="http://dcgm:9400/metrics").url


def test_duplicate_variants_are_rejected() -> None:
    with pytest.raises(TelemetryConfigError, match="share a model and a name"):
        Telemetry.create(TelemetryConfig(), [VariantSpec("m", "v", 16), VariantSpec("m", "v", 4)])
