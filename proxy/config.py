"""The proxy's own configuration: models, their variants, routing, shadowing, the server.

The settings aggregate that holds these beside telemetry's and scoring's, and reads them from
the YAML file and the environment, lives in the composition root (:mod:`quanttrap.settings`);
request handling only sees :class:`ProxySettings`, the part of it that it reads.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backends.config import (
    BackendConfig,
    EngineBackendConfig,
    OpenAIBackendConfig,
    VllmBackendConfig,
)
from core.errors import ConfigError
from scoring.config import ScoringConfig
from telemetry.config import TelemetryConfig

__all__ = [
    "BackendConfig",
    "ConfigError",
    "EngineBackendConfig",
    "ModelConfig",
    "OpenAIBackendConfig",
    "ProxySettings",
    "RoutingConfig",
    "ServerConfig",
    "ShadowConfig",
    "VariantConfig",
    "VllmBackendConfig",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    bits: int = Field(ge=1, le=64)
    backend: BackendConfig
    rated_power_w: float | None = Field(default=None, gt=0)
    """Board power used by the HLI energy estimate when no NVML reading is available."""
    gpus: tuple[int | str, ...] | None = None
    """GPUs serving this variant, as the energy source sees them (CUDA indices or UUIDs), for
    energy metering. Default: every GPU for the in-process engine, ``backend.gpus`` for a
    launched vLLM, none for an HTTP upstream (its energy is then not measured)."""


class RoutingConfig(_Strict):
    primary: str
    weights: dict[str, float] | None = None
    """Optional weighted split, e.g. ``{bf16: 0.9, nf4: 0.1}``; replaces ``primary`` as the
    first choice when given. Failover order after the first choice is the variants' order."""
    failover: bool = True


class ShadowConfig(_Strict):
    variants: tuple[str, ...] = ()
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    max_concurrency: int = Field(default=8, ge=1)
    """Shadow copies in flight at once across this model; further copies are dropped."""


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    anchor: str
    variants: tuple[VariantConfig, ...] = Field(min_length=1)
    routing: RoutingConfig
    shadow: ShadowConfig = ShadowConfig()

    @model_validator(mode="after")
    def _check_references(self) -> ModelConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        known = ", ".join(names)

        def check(field: str, value: str) -> None:
            if value not in names:
                raise ValueError(
                    f"{field}: {value!r} is not one of this model's variants ({known})"
                )

        check("anchor", self.anchor)
        check("routing.primary", self.routing.primary)
        for name, weight in (self.routing.weights or {}).items():
            check("routing.weights", name)
            if weight < 0:
                raise ValueError(f"routing.weights.{name}: weight must be >= 0, got {weight}")
        if self.routing.weights is not None and sum(self.routing.weights.values()) <= 0:
            raise ValueError("routing.weights: at least one weight must be positive")
        for name in self.shadow.variants:
            check("shadow.variants", name)
        return self

    def variant(self, name: str) -> VariantConfig | None:
        for v in self.variants:
            if v.name == name:
                return v
        return None


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    api_keys_env: str = "QUANTTRAP_API_KEYS"
    """Environment variable with comma-separated client API keys; unset or empty = no auth."""
    monitoring_keys_env: str = "QUANTTRAP_MONITORING_KEYS"
    """Environment variable with comma-separated monitoring keys: when set, ``/metrics`` needs
    one, and the status routes accept one (see ``proxy/auth.py``)."""
    protect_metrics: bool = False
    """Require a client API key on ``/metrics`` and the health routes too."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class ProxySettings(Protocol):
    """What request handling reads of the settings (the aggregate is
    :class:`quanttrap.settings.Settings`)."""

    @property
    def server(self) -> ServerConfig: ...

    @property
    def models(self) -> tuple[ModelConfig, ...]: ...

    @property
    def telemetry(self) -> TelemetryConfig: ...

    @property
    def scoring(self) -> ScoringConfig: ...

    def model(self, name: str) -> ModelConfig | None: ...
