"""Running the proxy under uvicorn (the app itself is assembled in :mod:`quanttrap.assembly`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

import uvicorn

from proxy.http_limits import HttpLimits, limited_protocol
from quanttrap.assembly import build_app
from quanttrap.settings import Settings

__all__ = ["serve"]

log = logging.getLogger("quanttrap")


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
