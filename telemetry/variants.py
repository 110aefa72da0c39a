"""What telemetry needs to know about each configured variant (built by the proxy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["VariantSpec", "group_key"]


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One variant of one model, as telemetry sees it.

    ``provider`` is ``gen_ai.provider.name`` (see
    :func:`telemetry.semconv.provider_for_backend_kind`); ``server_address``/``server_port``
    the upstream's host and port (``None`` for the in-process engine, whose spans are then
    ``INTERNAL`` rather than ``CLIENT``). ``gpus`` places the variant for energy metering:
    CUDA indices or UUIDs as the energy source sees them, ``"all"`` for every GPU it reads
    (the in-process engine), ``()`` for none. ``rated_power_w`` enables the HLI estimate
    where no GPU is read. ``metrics_url`` is a vLLM ``/metrics`` to poll for batch sizes.
    """

    model: str
    name: str
    bits: int
    provider: str = "openai"
    server_address: str | None = None
    server_port: int | None = None
    in_process: bool = False
    gpus: tuple[str | int, ...] | Literal["all"] = ()
    rated_power_w: float | None = None
    metrics_url: str | None = None

    @property
    def key(self) -> str:
        return group_key(self.model, self.name)


def group_key(model: str, variant: str) -> str:
    """The key of a variant in energy metering and scraping (variant names have no ``/``)."""
    return f"{model}/{variant}"
