"""The hot routes: plain ASGI handlers for the OpenAI-compatible API.

Each :class:`HotRoute` reads the HTTP request once — the headers the proxy honours, the body
(bounded), its JSON — into one :class:`~proxy.context.RequestContext` and hands it to the
:class:`~proxy.service.RequestService`. No framework request object, router or middleware:
parse once, allocate little, never block. Errors are answered in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from core.records import Operation
from proxy.auth import KeyChecker
from proxy.config import ProxySettings
from proxy.context import RequestContext, new_id
from proxy.errors import APIError
from proxy.evaluation_tags import EVAL_KEYS, parse_reference_depth, take_evaluation_tags
from proxy.operations import OPERATIONS, ErrorShape
from proxy.service import RequestService
from proxy.validation import validate_body

__all__ = ["HOT_ROUTES", "HotRoute", "Receive", "Scope", "Send"]

log = logging.getLogger("quanttrap.proxy")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HOT_ROUTES: Final[dict[str, Operation]] = {spec.path: spec.operation for spec in OPERATIONS}
"""Path → operation of every hot route."""

_SPECS: Final = {spec.operation: spec for spec in OPERATIONS}
_TRACE = {b"traceparent": "traceparent", b"tracestate": "tracestate"}
_FORWARD: Final = {
    name.encode(): name
    for name in ("idempotency-key", "user-agent", "anthropic-version", "anthropic-beta",
                 "openai-beta")
}  # fmt: skip
"""Client headers passed upstream as they came: agents rely on them (retries that must not
run twice, the SDK's identity, the API version). ``Authorization`` never is: the upstream
gets its own key."""
_MAX_FORWARDED = 1024
_MAX_ID = 128
_JSON_HEADERS = [(b"content-type", b"application/json")]


class HotRoute:
    """One OpenAI-compatible route: ``POST`` only, key-checked, answered by the service."""

    def __init__(
        self,
        service: RequestService,
        settings: ProxySettings,
        keys: KeyChecker,
        operation: Operation,
    ) -> None:
        self._service = service
        self._keys = keys
        self._operation = operation
        self._spec = _SPECS[operation]
        self._endpoint = self._spec.endpoint
        self._max_body = settings.server.max_body_bytes
        self._session_header = settings.telemetry.session_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] != "POST":
                raise APIError(
                    405,
                    f"Method {scope['method']} not allowed on {scope['path']}; use POST.",
                    code="method_not_allowed",
                )
            self._keys.check_headers(scope["headers"])
            ctx = self._context(scope)
            ctx.body = self._parse(await _read_body(receive, self._max_body), ctx)
            if ctx.stream:
                await self._streaming(ctx, receive, send)
            else:
                await self._service.handle(ctx, send)
        except APIError as exc:
            await _send_error(send, exc, self._spec.error_shape)
        except Exception:
            # Nothing may surface as a bare 500 with a traceback; log it for the operator.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            error = APIError(
                500,
                "The proxy hit an internal error; see its log.",
                type="server_error",
                code="internal_error",
            )
            await _send_error(send, error, self._spec.error_shape)

    def _context(self, scope: Scope) -> RequestContext:
        """The request's context from its headers (the body comes next)."""
        ctx = RequestContext(self._operation, self._endpoint, "", {})
        trace: dict[str, str] = {}
        forward: dict[str, str] = {}
        request_id = None
        session = self._session_header
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"x-quanttrap-variant":
                ctx.pinned = value.decode("latin-1")
            elif name in _TRACE:
                trace[_TRACE[name]] = value.decode("latin-1")
            elif name in _FORWARD and len(value) <= _MAX_FORWARDED:
                forward[_FORWARD[name]] = value.decode("latin-1")
            elif name == session:
                ctx.session_id = value.decode("latin-1")[:_MAX_ID] or None
            elif name == b"x-quanttrap-expected":
                ctx.expected_answer = value.decode("utf-8", errors="replace")
            elif name == b"x-quanttrap-dataset":
                ctx.dataset = value.decode("latin-1")[:64]
            elif name == b"x-quanttrap-depth":
                ctx.reference_depth = parse_reference_depth(value)
            elif name == b"content-length" and value.isdigit() and int(value) > self._max_body:
                raise _too_large(self._max_body)
        if not request_id or len(request_id) > _MAX_ID or not request_id.isprintable():
            request_id = new_id()
        ctx.request_id = request_id
        ctx.trace_headers = trace
        forward["x-request-id"] = request_id
        ctx.forward_headers = forward
        return ctx

    def _parse(self, raw: bytes, ctx: RequestContext) -> dict[str, Any]:
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise APIError(
                400,
                f"We could not parse the JSON body of your request ({exc}). The OpenAI API "
                "expects a JSON payload.",
                code="invalid_json",
            ) from None
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        validate_body(self._operation, body)
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and EVAL_KEYS & metadata.keys():
            body = take_evaluation_tags(body, metadata, ctx)
        parsed: dict[str, Any] = body
        return parsed

    async def _streaming(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        # Watch for the client hanging up, so an abandoned stream frees its upstream slot.
        task = asyncio.current_task()
        watcher = asyncio.ensure_future(receive())

        def on_message(fut: asyncio.Future[dict[str, Any]]) -> None:
            if (
                not fut.cancelled()
                and fut.exception() is None
                and fut.result().get("type") == "http.disconnect"
                and task is not None
                and not ctx.ending
            ):
                ctx.disconnected = True
                task.cancel()

        watcher.add_done_callback(on_message)
        try:
            await self._service.handle(ctx, send)
        finally:
            watcher.remove_done_callback(on_message)
            watcher.cancel()


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


async def _send_error(send: Send, exc: APIError, shape: ErrorShape) -> None:
    body = exc.anthropic_body() if shape == "anthropic" else exc.body()
    try:
        await send({"type": "http.response.start", "status": exc.status,
                    "headers": [*_JSON_HEADERS, *exc.headers]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
    except RuntimeError:
        # The response had already started (a stream): it was ended with an error event.
        log.debug("could not send error %s: response already started", exc.status)
