"""Assembling and running the proxy: settings → backends → app → uvicorn."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

import uvicorn

from backends.config import EngineBackendConfig, OpenAIBackendConfig, VllmBackendConfig
from backends.factory import build_backend
from proxy.app import QuanttrapApp
from proxy.config import Settings
from proxy.http_limits import HttpLimits, limited_protocol
from proxy.scoring_runtime import attach_scoring
from proxy.shadow import PairStore
from telemetry import Telemetry, VariantSpec, provider_for_backend_kind

__all__ = ["build_app", "serve"]

log = logging.getLogger("quanttrap")


def build_app(settings: Settings) -> QuanttrapApp:
    """Backends and telemetry from the settings, the app over them, scoring attached."""
    backends = {
        (m.name, v.name): build_backend(v.name, v.backend)
        for m in settings.models
        for v in m.variants
    }
    telemetry = Telemetry.create(settings.telemetry, variant_specs(settings))
    pairs = PairStore(max((m.shadow.keep_pairs for m in settings.models), default=0))
    app = QuanttrapApp(settings, backends, pair_sinks=[pairs], telemetry=telemetry)
    app.pair_store = pairs  # type: ignore[attr-defined]
    attach_scoring(app, settings, meter=getattr(telemetry, "meter", None))
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


def serve(settings: Settings, *, source: str) -> int:
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = build_app(settings)
    host, port = settings.server.host, settings.server.port
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        # uvicorn's httptools protocol with header, body and header-timeout limits that answer
        # in OpenAI's error shape (proxy/http_limits.py).
        http=limited_protocol(HttpLimits(max_body_bytes=settings.server.max_body_bytes)),
        lifespan="on",
        access_log=False,
        # No X-Forwarded-* rewriting middleware: the proxy never uses the client's address,
        # and every layer costs CPU on each request.
        proxy_headers=False,
        server_header=False,
        log_level=settings.server.log_level,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        # Print the URLs once the socket really listens (port 0 picks a free port).
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.05)
        bound = port
        for srv in server.servers:
            for sock in srv.sockets:
                bound = sock.getsockname()[1]
        base = f"http://{host}:{bound}"
        print(f"quanttrap serving {len(settings.models)} model(s) from {source}", flush=True)
        for m in settings.models:
            names = ", ".join(f"{v.name} ({v.bits}-bit)" for v in m.variants)
            print(f"  model {m.name!r}: {names}; primary {m.routing.primary}", flush=True)
        print(f"  OpenAI API: {base}/v1", flush=True)
        print(f"  metrics:    {base}/metrics", flush=True)
        if settings.scoring.enabled:
            print(f"  status:     {base}/quanttrap/", flush=True)

    async def run() -> None:
        announcer = asyncio.create_task(announce())
        try:
            await server.serve()
        except SystemExit:
            # uvicorn exits this way when start-up fails; it has logged why already.
            pass
        finally:
            announcer.cancel()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())
    return 0 if server.started else 1


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): a much cheaper event loop."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: quanttrap serve")
