"""The composition root: settings → backends, telemetry, app, live scoring.

Request handling (:mod:`proxy.app`, :mod:`proxy.routes`, :mod:`proxy.service`) knows nothing
of how it is assembled; this module is the one place that builds every part from the settings
and wires them together (``quanttrap serve`` calls :func:`build_app`).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from opentelemetry.metrics import Meter

from backends.config import EngineBackendConfig, OpenAIBackendConfig, VllmBackendConfig
from backends.factory import build_backend
from proxy.app import QuanttrapApp
from proxy.canary import CanaryRunner
from proxy.scoring_runtime import ScoringRuntime
from proxy.status import add_status_routes
from quanttrap.settings import Settings
from telemetry import Telemetry, VariantSpec, provider_for_backend_kind

__all__ = ["attach_scoring", "build_app", "variant_specs"]


def build_app(settings: Settings) -> QuanttrapApp:
    """Backends and telemetry from the settings, the app over them, scoring attached."""
    backends = {
        (m.name, v.name): build_backend(v.name, v.backend)
        for m in settings.models
        for v in m.variants
    }
    telemetry = Telemetry.create(settings.telemetry, variant_specs(settings))
    app = QuanttrapApp(settings, backends, telemetry=telemetry)
    attach_scoring(app, settings, meter=telemetry.meter)
    return app


def variant_specs(settings: Settings) -> list[VariantSpec]:
    """What telemetry needs to know of each variant: where it runs and on which GPUs."""
    specs = []
    for m in settings.models:
        for v in m.variants:
            backend = v.backend
            address: str | None = None
            port: int | None = None
            metrics_url: str | None = None
            gpus: tuple[str | int, ...] | Literal["all"] = ()
            if isinstance(backend, OpenAIBackendConfig):
                url = urlsplit(backend.base_url)
                address = url.hostname
                port = url.port or (443 if url.scheme == "https" else 80)
            elif isinstance(backend, VllmBackendConfig):
                address, port = backend.host, backend.port
                metrics_url = f"http://{backend.host}:{backend.port}/metrics"
                gpus = backend.gpus
            else:
                gpus = "all"  # the in-process engine runs on every GPU this process sees
            if v.gpus is not None:
                gpus = v.gpus
            specs.append(
                VariantSpec(
                    model=m.name,
                    name=v.name,
                    bits=v.bits,
                    provider=provider_for_backend_kind(backend.kind),
                    server_address=address,
                    server_port=port,
                    in_process=isinstance(backend, EngineBackendConfig),
                    gpus=gpus,
                    rated_power_w=v.rated_power_w,
                    metrics_url=metrics_url,
                )
            )
    return specs


def attach_scoring(
    app: QuanttrapApp, settings: Settings, meter: Meter | None = None
) -> ScoringRuntime | None:
    """Wire live scoring into ``app`` (``None`` when ``scoring.enabled`` is false).

    Raises :class:`~proxy.config.ConfigError` for a ``scoring.memory_gb`` entry that names no
    configured variant.
    """
    if not settings.scoring.enabled:
        return None
    runtime = ScoringRuntime(settings, app.backends, meter=meter)
    app.add_record_sink(runtime.record_sink)
    app.add_pair_sink(runtime.pair_sink)
    # Evaluation traffic is journaled before its last byte goes out: a crash loses none.
    app.service.pipeline.journal = runtime.journal
    shadows = app.service.shadows
    runtime.shadow_coverage = lambda: {m: d.sampler.stats() for m, d in shadows.items()}
    canary = None
    if settings.scoring.canary.enabled:
        canary = CanaryRunner(
            app.service,
            settings,
            register=runtime.register_canary,
            metrics=runtime.metrics,
        )
        runtime.canary = canary

    async def startup() -> None:
        await runtime.start()
        if canary is not None:
            await canary.start()

    async def shutdown() -> None:
        if canary is not None:
            await canary.stop()
        await runtime.stop()

    app.add_lifespan_hooks(startup=startup, shutdown=shutdown)
    add_status_routes(app, runtime)
    return runtime
