"""The ASGI application: routes, body limits, auth, errors, lifespan.

A plain ASGI callable rather than a framework app: the proxy's whole job is to add next to
nothing to each request, and a router, middleware stack and request objects would cost more CPU
than everything else it does (see ``benchmarks/proxy_overhead.py``). Every response that is not
a success carries OpenAI's error body; no exception ever reaches the server as a 500 with a
traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson

from backends.base import Backend
from proxy.completions import CompletionService, RecordSink, RequestMeta, parse_reference_depth
from proxy.config import Settings
from proxy.errors import APIError
from proxy.shadow import PairSink
from telemetry import Telemetry

__all__ = ["QuanttrapApp", "StatusProvider"]

log = logging.getLogger("quanttrap.proxy")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MetricsProvider = Callable[[], tuple[bytes, str]]
StatusProvider = Callable[[], Any]
Hook = Callable[[], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_FORWARDED = {b"traceparent": "traceparent", b"tracestate": "tracestate"}
_MAX_REQUEST_ID = 128


class QuanttrapApp:
    """The proxy. Build it with settings and started-or-not backends; run it under uvicorn."""

    def __init__(
        self,
        settings: Settings,
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
        self.service = CompletionService(
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
        raw_keys = environ.get(settings.server.api_keys_env, "")
        self._api_keys = frozenset(k.strip() for k in raw_keys.split(",") if k.strip())
        self._max_body = settings.server.max_body_bytes
        created = int(time.time())
        self._models_body = orjson.dumps(
            {
                "object": "list",
                "data": [
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
                    for m in settings.models
                ],
            }
        )
        self._routes: dict[str, tuple[str, Callable[..., Awaitable[None]], bool]] = {
            # path: (method, handler, needs an API key)
            "/v1/chat/completions": ("POST", self._chat, True),
            "/v1/completions": ("POST", self._completions, True),
            "/v1/models": ("GET", self._list_models, True),
            "/healthz": ("GET", self._healthz, settings.server.protect_metrics),
            "/readyz": ("GET", self._readyz, settings.server.protect_metrics),
            "/metrics": ("GET", self._metrics_route, settings.server.protect_metrics),
        }

    def add_route(
        self, path: str, method: str, handler: Callable[..., Awaitable[None]], *, auth: bool
    ) -> None:
        """Register another route (``handler(scope, receive, send)``), e.g. the status API.

        ``handler`` may raise :class:`~proxy.errors.APIError`; it is answered in OpenAI's shape.
        """
        self._routes[path] = (method, handler, auth)

    def add_record_sink(self, sink: RecordSink) -> None:
        """Also hand every finished request's record to ``sink`` (must be cheap, never raise)."""
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
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"])
        try:
            if route is None:
                raise APIError(
                    404,
                    f"Unknown request URL: {scope['method']} {scope['path']}.",
                    code="unknown_url",
                )
            method, handler, needs_key = route
            if scope["method"] != method:
                raise APIError(
                    405,
                    f"Method {scope['method']} not allowed on {scope['path']}; use {method}.",
                    code="method_not_allowed",
                )
            if needs_key and self._api_keys:
                self._authenticate(scope)
            await handler(scope, receive, send)
        except APIError as exc:
            await _send_error(send, exc)
        except Exception:
            # Nothing may surface as a bare 500 with a traceback; log it for the operator.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await _send_error(
                send,
                APIError(
                    500,
                    "The proxy hit an internal error; see its log.",
                    type="server_error",
                    code="internal_error",
                ),
            )

    def _authenticate(self, scope: Scope) -> None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip() in self._api_keys:
                    return
                raise APIError(
                    401,
                    "Incorrect API key provided.",
                    type="authentication_error",
                    code="invalid_api_key",
                )
        raise APIError(
            401,
            "You didn't provide an API key. Provide it in the Authorization header: "
            "'Authorization: Bearer YOUR_KEY'.",
            type="authentication_error",
            code="missing_api_key",
        )

    # -- /v1 completions ---------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._complete("chat", scope, receive, send)

    async def _completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._complete("completions", scope, receive, send)

    async def _complete(self, endpoint: Any, scope: Scope, receive: Receive, send: Send) -> None:
        meta = RequestMeta("", time.perf_counter(), time.time())
        forward: dict[str, str] = {}
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"x-quanttrap-variant":
                meta.pinned = value.decode("latin-1")
            elif name in _FORWARDED:
                forward[_FORWARDED[name]] = value.decode("latin-1")
            elif name == b"x-session-id":
                meta.session_id = value.decode("latin-1")[:_MAX_REQUEST_ID]
            elif name == b"x-quanttrap-expected":
                meta.expected_answer = value.decode("utf-8", errors="replace")
            elif name == b"x-quanttrap-dataset":
                meta.dataset = value.decode("latin-1")[:64]
            elif name == b"x-quanttrap-depth":
                meta.reference_depth = parse_reference_depth(value)
            elif name == b"content-length" and value.isdigit() and int(value) > self._max_body:
                raise _too_large(self._max_body)
        if not request_id or len(request_id) > _MAX_REQUEST_ID or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        meta.request_id = request_id
        forward["x-request-id"] = request_id
        meta.forward_headers = forward
        raw = await _read_body(receive, self._max_body)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise APIError(
                400,
                f"We could not parse the JSON body of your request ({exc}). The OpenAI API "
                "expects a JSON payload.",
                code="invalid_json",
            ) from None
        if isinstance(body, dict) and body.get("stream") is True:
            await self._complete_streaming(endpoint, body, meta, receive, send)
        else:
            await self.service.handle(endpoint, body, meta, send)

    async def _complete_streaming(
        self, endpoint: Any, body: dict[str, Any], meta: RequestMeta, receive: Receive, send: Send
    ) -> None:
        # Watch for the client hanging up, so an abandoned stream frees its upstream slot.
        task = asyncio.current_task()
        watcher = asyncio.ensure_future(receive())

        def on_message(fut: asyncio.Future[dict[str, Any]]) -> None:
            if (
                not fut.cancelled()
                and fut.exception() is None
                and fut.result().get("type") == "http.disconnect"
                and task is not None
                and not meta.ending
            ):
                meta.disconnected = True
                task.cancel()

        watcher.add_done_callback(on_message)
        try:
            await self.service.handle(endpoint, body, meta, send)
        finally:
            watcher.remove_done_callback(on_message)
            watcher.cancel()

    # -- other routes ------------------------------------------------------------------------

    async def _list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, self._models_body)

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, b'{"status":"ok"}')

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Ready when each model's primary variant is reachable (cheap checks, no inference)."""
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
        body = orjson.dumps({"status": "ready" if ready else "not_ready", "models": report})
        await _send_json(send, 200 if ready else 503, body)

    async def _metrics_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._metrics is None:
            raise APIError(
                404, "Metrics are switched off (telemetry.enabled: false).", code="metrics_disabled"
            )
        # Rendering the exposition takes milliseconds: off the event loop.
        body, content_type = await asyncio.to_thread(self._metrics)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

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


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise _too_large(limit)
        return body  # the common case: one message, no copy
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"Request body is larger than the limit of {limit} bytes (server.max_body_bytes).",
        code="request_too_large",
    )


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, exc: APIError) -> None:
    try:
        await _send_json(send, exc.status, exc.body())
    except RuntimeError:
        # The response had already started (a stream): it was ended with an error event.
        log.debug("could not send error %s: response already started", exc.status)
