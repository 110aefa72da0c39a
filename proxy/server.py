"""Assembling and running the proxy: settings → backends → app → uvicorn."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

import uvicorn

from backends.factory import build_backend
from proxy.app import QuanttrapApp
from proxy.config import Settings
from proxy.shadow import PairStore

__all__ = ["build_app", "serve"]

log = logging.getLogger("quanttrap")


def build_app(settings: Settings) -> QuanttrapApp:
    backends = {
        (m.name, v.name): build_backend(v.name, v.backend)
        for m in settings.models
        for v in m.variants
    }
    pairs = PairStore(max((m.shadow.keep_pairs for m in settings.models), default=0))
    app = QuanttrapApp(settings, backends, pair_sinks=[pairs])
    app.pair_store = pairs  # type: ignore[attr-defined]
    return app


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
        http="auto",
        lifespan="on",
        access_log=False,
        log_level=settings.server.log_level,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        # Announce the URLs once the socket is really listening (port 0 picks a free port).
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.05)
        if server.started:
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
        await task

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
