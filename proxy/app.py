"""The application: a FastAPI shell, with the OpenAI-compatible hot routes kept lean.

Everything a person browses — ``/docs``, ``/openapi.json``, health, readiness, models,
metrics, the status API and page — is an ordinary FastAPI route. The hot routes
(``/v1/chat/completions``, ``/v1/completions``, …) are plain ASGI handlers
(:mod:`proxy.routes`) that :class:`QuanttrapApp` dispatches to by exact path before the
framework sees the request: a framework's router, middleware and request objects would cost
more CPU than everything else the proxy does per request (``benchmarks/proxy_overhead.py``).
They are still documented in ``/openapi.json`` (:mod:`proxy.openapi`). Every error, on every
route, carries OpenAI's error body; no exception ever reaches the server as a bare 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Route

from backends.base import Backend
from proxy.auth import KeyChecker
from proxy.config import ProxySettings
from proxy.errors import APIError
from proxy.openapi import hot_route_paths
from proxy.routes import HOT_ROUTES, HotRoute, Receive, Scope, Send
from proxy.service import RecordSink, RequestService
from proxy.shadow import PairSink
from telemetry import Telemetry

__all__ = ["QuanttrapApp"]

log = logging.getLogger("quanttrap.proxy")

MetricsProvider = Callable[[], tuple[bytes, str]]
Hook = Callable[[], Awaitable[None]]

_JSON = "application/json"


class QuanttrapApp:
    """The proxy. Build it with settings and started-or-not backends; run it under uvicorn."""

    def __init__(
        self,
        settings: ProxySettings,
        backends: Mapping[tuple[str, str], Backend],
        *,
        record_sinks: Sequence[RecordSink] = (),
        pair_sinks: Sequence[PairSink] = (),
        metrics: MetricsProvider | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        environ: Mapping[str, str] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.telemetry = telemetry or Telemetry()
        self.service = RequestService(
            settings,
            backends,
            record_sinks=record_sinks,
            pair_sinks=pair_sinks,
            telemetry=self.telemetry,
        )
        if metrics is None and self.telemetry.enabled:
            metrics = self.telemetry.metrics_payload
        self._metrics = metrics
        self._on_startup = list(on_startup)
        self._on_shutdown = list(on_shutdown)
        environ = os.environ if environ is None else environ
        server = settings.server
        self.keys = KeyChecker.from_environ(
            environ,
            server.api_keys_env,
            server.monitoring_keys_env,
            protect_metrics=server.protect_metrics,
        )
        self._hot: dict[str, HotRoute] = {
            path: HotRoute(self.service, settings, self.keys, operation)
            for path, operation in HOT_ROUTES.items()
        }
        self.api = self._build_api()

    # -- the FastAPI shell -------------------------------------------------------------------

    def _build_api(self) -> FastAPI:
        api = FastAPI(
            title="quanttrap",
            summary="OpenAI-compatible proxy that measures whether quantized variants of a "
            "model are really cheaper and still trustworthy.",
            version="0.1.0",
            docs_url="/docs",
            redoc_url=None,
        )
        api.add_exception_handler(APIError, _api_error)
        api.add_exception_handler(HTTPException, _http_error)
        api.add_exception_handler(RequestValidationError, _validation_error)
        api.add_exception_handler(Exception, _internal_error)
        health = [Depends(self.keys.health)]
        api.add_api_route(
            "/healthz", self._healthz, methods=["GET"], dependencies=health, tags=["health"],
            summary="Alive",
        )  # fmt: skip
        api.add_api_route(
            "/readyz", self._readyz, methods=["GET"], dependencies=health, tags=["health"],
            summary="Each model's primary variant reachable (no inference)",
        )  # fmt: skip
        api.add_api_route(
            "/metrics", self._metrics_route, methods=["GET"],
            dependencies=[Depends(self.keys.metrics)],
            tags=["monitoring"], summary="Prometheus metrics",
        )  # fmt: skip
        api.add_api_route(
            "/v1/models", self._list_models, methods=["GET"],
            dependencies=[Depends(self.keys.client)], tags=["OpenAI"],
            summary="The configured models",
        )  # fmt: skip
        for path, route in self._hot.items():
            # Reached only through the fast path in __call__; registered so the framework
            # knows them (405s, and the schema below).
            api.router.routes.append(Route(path, route, include_in_schema=False))
        default_openapi = api.openapi

        def openapi() -> dict[str, Any]:
            if api.openapi_schema is None:
                schema = default_openapi()
                schema["paths"].update(hot_route_paths(schema))
                api.openapi_schema = schema
            return api.openapi_schema

        api.openapi = openapi  # type: ignore[method-assign]
        return api

    def add_status_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Register a status or admin route (``/quanttrap/...``): it needs a monitoring or
        client key whenever keys are configured (:mod:`proxy.auth`). ``endpoint`` may raise
        :class:`APIError`."""
        self.api.add_api_route(path, endpoint, dependencies=[Depends(self.keys.status)], **kwargs)

    def add_record_sink(self, sink: RecordSink) -> None:
        """Also hand every finished attempt's record to ``sink`` (cheap, never raises)."""
        self.service.add_record_sink(sink)

    def add_pair_sink(self, sink: PairSink) -> None:
        """Also hand every shadow pair to ``sink``."""
        self.service.add_pair_sink(sink)

    def add_lifespan_hooks(
        self, *, startup: Hook | None = None, shutdown: Hook | None = None
    ) -> None:
        if startup is not None:
            self._on_startup.append(startup)
        if shutdown is not None:
            self._on_shutdown.insert(0, shutdown)  # last started, first stopped

    # -- ASGI entry point --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._hot.get(scope["path"])
            if route is not None:
                await route(scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            # Ours, not the framework's: a failed start-up is one clear log line, no traceback.
            await self._lifespan(receive, send)
            return
        try:
            await self.api(scope, receive, send)  # type: ignore[arg-type]
        except Exception:
            # Already answered in OpenAI's shape and logged by _internal_error; Starlette
            # re-raises it for the server's benefit, which would only log it twice.
            if scope["type"] != "http":
                raise

    # -- ordinary routes ---------------------------------------------------------------------

    async def _list_models(self) -> Response:
        created = int(time.time())
        data = [
            {
                "id": m.name,
                "object": "model",
                "created": created,
                "owned_by": "quanttrap",
                "quanttrap": {
                    "anchor": m.anchor,
                    "variants": [{"name": v.name, "bits": v.bits} for v in m.variants],
                },
            }
            for m in self.settings.models
        ]
        return _json(200, {"object": "list", "data": data})

    async def _healthz(self) -> Response:
        return _json(200, {"status": "ok"})

    async def _readyz(self) -> Response:
        models = self.settings.models
        checks = await asyncio.gather(
            *(self.backends[m.name, m.routing.primary].ready() for m in models),
            return_exceptions=True,
        )
        report = {
            m.name: {"variant": m.routing.primary, "ready": ok is True}
            for m, ok in zip(models, checks, strict=True)
        }
        ready = all(item["ready"] for item in report.values())
        return _json(200 if ready else 503, {"status": "ready" if ready else "not_ready",
                                             "models": report})  # fmt: skip

    async def _metrics_route(self) -> Response:
        if self._metrics is None:
            raise APIError(
                404, "Metrics are switched off (telemetry.enabled: false).", code="metrics_disabled"
            )
        # Rendering the exposition takes milliseconds: off the event loop.
        body, content_type = await asyncio.to_thread(self._metrics)
        return Response(body, media_type=content_type)

    # -- lifespan ----------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("start-up failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Start every backend (in parallel), telemetry, then the hooks (scoring)."""
        await asyncio.gather(*(b.start() for b in self.backends.values()))
        await self.telemetry.start()
        for hook in self._on_startup:
            await hook()

    async def shutdown(self) -> None:
        await self.service.aclose()
        for hook in self._on_shutdown:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")
        try:
            await self.telemetry.aclose()
        except Exception:
            log.exception("telemetry failed to close")
        results = await asyncio.gather(
            *(b.aclose() for b in self.backends.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                log.error("backend failed to close: %s", result)


# -- errors in OpenAI's shape, for the framework's routes ------------------------------------


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=_JSON)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return Response(exc.body(), status_code=exc.status, media_type=_JSON)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = APIError(
            404, f"Unknown request URL: {request.method} {request.url.path}.", code="unknown_url"
        )
    elif exc.status_code == 405:
        error = APIError(
            405,
            f"Method {request.method} not allowed on {request.url.path}.",
            code="method_not_allowed",
        )
    else:
        error = APIError(exc.status_code, str(exc.detail))
    return Response(error.body(), status_code=error.status, media_type=_JSON,
                    headers=exc.headers)  # fmt: skip


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
    error = APIError(400, f"Invalid parameter {where}: {first.get('msg', 'invalid')}",
                     param=where or None)  # fmt: skip
    return Response(error.body(), status_code=400, media_type=_JSON)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = APIError(
        500, "The proxy hit an internal error; see its log.", type="server_error",
        code="internal_error",
    )  # fmt: skip
    return Response(error.body(), status_code=500, media_type=_JSON)
