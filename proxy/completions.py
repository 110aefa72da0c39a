"""Serving ``/v1/chat/completions`` and ``/v1/completions``: route, fail over, stream, record.

One request's path: validate → pick the variant order → start shadow copies (background) →
send to the first variant that answers (failover on refusal, timeout or 5xx before the first
byte) → forward its answer (bytes as they arrive for streams) → build one
:class:`~scoring.records.RequestRecord` and hand it to the record sinks (telemetry, scoring).

Usage in streams: the upstream is always asked for it (``stream_options.include_usage``) so
the record has token counts; the usage chunk is forwarded only to clients that asked for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from backends.base import (
    Backend,
    BackendError,
    BackendRequest,
    BackendResponse,
    BackendStreamError,
    BackendUnavailable,
    Endpoint,
)
from proxy.config import ModelConfig, Settings
from proxy.errors import APIError, error_body, from_backend_error
from proxy.openai_format import Accumulator, parse_body, validate_request
from proxy.routing import Router
from proxy.shadow import PairSink, PendingPair, ShadowDispatcher
from scoring.records import RequestRecord, Role
from telemetry import PendingRecord, RequestTelemetry, Telemetry

__all__ = [
    "MAX_REFERENCE_DEPTH",
    "CompletionService",
    "RecordSink",
    "RequestMeta",
    "Send",
    "parse_reference_depth",
]

log = logging.getLogger("quanttrap.proxy")

RecordSink = Callable[[RequestRecord], None]
Send = Callable[[dict[str, Any]], Any]

_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_JSON = b"application/json"


@dataclass(slots=True)
class RequestMeta:
    """What the app learnt from the HTTP request before the body was handled."""

    request_id: str
    started: float
    """``time.perf_counter()`` when the request arrived."""
    started_at: float
    """Unix time when the request arrived."""
    pinned: str | None = None
    forward_headers: dict[str, str] | None = None
    session_id: str | None = None
    expected_answer: str | None = None
    """Reference answer of evaluation traffic (header ``X-Quanttrap-Expected`` or
    ``metadata.expected_answer``); never forwarded to the model."""
    dataset: str | None = None
    reference_depth: int | None = None
    """Reasoning steps the reference needs (header ``X-Quanttrap-Depth`` or
    ``metadata.reference_depth``, or the canary item's); never forwarded to the model."""
    role: Role = "primary"
    """``canary`` for the proxy's own evaluation prompts (never shadowed)."""
    disconnected: bool = False
    """Set by the app when the client hung up before the response ended."""
    ending: bool = False
    """Set just before the last body message: a hang-up after it needs no cancelling."""


class CompletionService:
    def __init__(
        self,
        settings: Settings,
        backends: Mapping[tuple[str, str], Backend],
        *,
        record_sinks: Sequence[RecordSink] = (),
        pair_sinks: Sequence[PairSink] = (),
        rng: random.Random | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.telemetry = telemetry or Telemetry()
        self._record_sinks = list(record_sinks)
        rng = rng or random.Random()
        self._models: dict[str, ModelConfig] = {m.name: m for m in settings.models}
        self.routers = {m.name: Router(m, rng) for m in settings.models}
        self._bits = {(m.name, v.name): v.bits for m in settings.models for v in m.variants}
        self.shadows = {
            m.name: ShadowDispatcher(
                m, self._shadow_runner(m), pair_sinks, rng, on_count=self.telemetry.shadow_copy
            )
            for m in settings.models
        }
        self.failovers = 0
        self.in_flight: dict[tuple[str, str], int] = dict.fromkeys(self._bits, 0)
        """(model, first-choice variant) -> requests being served now (canaries yield to it)."""
        # Backends that report generated tokens themselves (the in-process engine, per decode
        # step, from its worker thread) feed energy attribution directly; for the others the
        # proxy counts streamed chunks.
        self._token_handles: dict[tuple[str, str, str], RequestTelemetry] = {}
        self._self_counting: set[tuple[str, str]] = set()
        for (model_name, variant), backend in backends.items():
            if hasattr(backend, "on_tokens"):
                backend.on_tokens = self._token_hook(model_name, variant)
                self._self_counting.add((model_name, variant))

    def _token_hook(self, model: str, variant: str) -> Callable[[str, int], None]:
        handles = self._token_handles

        def on_tokens(request_id: str, n: int) -> None:  # called on the engine's thread
            h = handles.get((model, variant, request_id))
            if h is not None:
                h.tokens(n)

        return on_tokens

    async def _send(
        self, model: str, variant: str, request: BackendRequest, h: RequestTelemetry
    ) -> BackendResponse:
        """Send to one variant, letting a self-counting backend report tokens to ``h``."""
        if (model, variant) not in self._self_counting:
            return await self.backends[model, variant].send(request)
        key = (model, variant, request.request_id)
        self._token_handles[key] = h
        try:
            response = await self.backends[model, variant].send(request)
        except BaseException:
            self._token_handles.pop(key, None)
            raise
        response.info.extra["token_key"] = key
        return response

    def _release_tokens(self, response: BackendResponse | None) -> None:
        if response is not None:
            key = response.info.extra.pop("token_key", None)
            if key is not None:
                self._token_handles.pop(key, None)

    # -- the request ------------------------------------------------------------------------

    async def handle(self, endpoint: Endpoint, body: Any, meta: RequestMeta, send: Send) -> None:
        validate_request(endpoint, body)
        model = self._models.get(body["model"])
        if model is None:
            raise APIError(
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and _EVAL_KEYS & metadata.keys():
            body = _take_evaluation_tags(body, metadata, meta)
        order = self.routers[model.name].order(meta.pinned)
        key = (model.name, order[0])
        self.in_flight[key] += 1
        try:
            await self._handle(endpoint, model, order, body, meta, send)
        finally:
            self.in_flight[key] -= 1

    async def _handle(
        self,
        endpoint: Endpoint,
        model: ModelConfig,
        order: list[str],
        body: Any,
        meta: RequestMeta,
        send: Send,
    ) -> None:
        stream = bool(body.get("stream"))
        client_wants_usage = stream and bool(
            (body.get("stream_options") or {}).get("include_usage")
        )
        upstream_body = _with_usage(body) if stream else body
        forward = meta.forward_headers or {}
        h = self.telemetry.start_request(
            model=model.name,
            variant=order[0],
            role=meta.role,
            operation="chat" if endpoint == "chat" else "text_completion",
            headers=forward,
            body=body,
            request_id=meta.request_id,
        )
        upstream_headers = h.upstream_headers()
        request = BackendRequest(
            endpoint,
            upstream_body,
            stream,
            meta.request_id,
            {**forward, **upstream_headers} if upstream_headers else forward,
        )
        pending = (
            None
            if meta.role == "canary"
            else self.shadows[model.name].maybe_launch(order[0], meta.request_id, request)
        )
        record: RequestRecord | None = None
        acc: Accumulator | None = None
        try:
            record, acc = await self._serve(
                model, order, request, meta, send, client_wants_usage, pending, h
            )
        except APIError as exc:  # no variant could answer: booked, then answered by the app
            record = self._record(
                model,
                order[-1],
                meta.role,
                request,
                meta,
                Accumulator(meta.started),
                exc.status,
                exc.code or exc.type,
                None,
                failed_over_from=tuple(order[:-1]),
            )
            raise
        except asyncio.CancelledError:
            if not meta.disconnected:
                raise
            # The client went away mid-stream (the app cancelled us): book it, don't propagate.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            record = self._record(
                model,
                order[0],
                meta.role,
                request,
                meta,
                Accumulator(meta.started),
                499,
                "client_disconnected",
                None,
            )
        finally:
            if record is None:
                record = self._cancelled_record(model, order[0], request, meta)
            if pending is not None:
                pending.set_primary(record)
            self._finish(h, record, acc)

    def _finish(
        self, h: RequestTelemetry, record: RequestRecord, acc: Accumulator | None
    ) -> PendingRecord:
        """Book the request in telemetry, then hand it to the sinks once its energy is known.

        Shadow records are not handed over here: they travel in their pair, once the shadow
        task has awaited its energy figure.
        """
        finished: PendingRecord = h.finish(
            record,
            response_id=acc.response_id if acc is not None else None,
            response_model=acc.response_model if acc is not None else None,
        )
        if record.role != "shadow":
            finished.on_ready(self._emit)
        return finished

    async def _serve(
        self,
        model: ModelConfig,
        order: list[str],
        request: BackendRequest,
        meta: RequestMeta,
        send: Send,
        client_wants_usage: bool,
        pending: PendingPair | None,
        h: RequestTelemetry,
    ) -> tuple[RequestRecord, Accumulator]:
        errors: list[tuple[str, BackendError]] = []
        response: BackendResponse | None = None
        variant = order[0]
        for i, variant in enumerate(order):
            try:
                response = await self._send(model.name, variant, request, h)
                break
            except BackendUnavailable as exc:
                log.warning("variant %s/%s unavailable: %s", model.name, variant, exc)
                errors.append((variant, exc))
                if i + 1 < len(order):
                    h.failover(order[i + 1], type(exc).__name__)
        if response is None:
            raise from_backend_error(errors)
        if errors:
            self.failovers += len(errors)
        headers = [
            (b"x-quanttrap-variant", variant.encode()),
            (b"x-request-id", meta.request_id.encode()),
        ]
        acc = Accumulator(meta.started)
        error_type: str | None = None
        if response.streaming:
            await send(
                {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + headers}
            )
            counts = (model.name, variant) not in self._self_counting
            try:
                error_type = await _forward_stream(
                    response, acc, send, client_wants_usage, meta, h if counts else None
                )
            finally:
                self._release_tokens(response)
            status = 200
        else:
            self._release_tokens(response)
            status = response.status
            body = response.body
            parse_body(acc, body)
            if status >= 400:
                error_type = str((acc.error or {}).get("type") or "upstream_client_error")
                if acc.error is None:  # not an OpenAI error body: wrap it so clients can parse it
                    body = error_body(
                        f"upstream answered HTTP {status}: {body[:200].decode(errors='replace')}",
                        type="upstream_error",
                    )
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", _JSON), *headers],
                }
            )
            await send({"type": "http.response.body", "body": body})
        return self._record(
            model,
            variant,
            meta.role,
            request,
            meta,
            acc,
            status,
            error_type,
            response,
            failed_over_from=tuple(name for name, _ in errors),
            pair_id=pending.pair_id if pending is not None else None,
        ), acc

    # -- shadows -----------------------------------------------------------------------------

    def _shadow_runner(
        self, model: ModelConfig
    ) -> Callable[[str, BackendRequest, PendingPair], Any]:
        async def run(variant: str, request: BackendRequest, pending: PendingPair) -> RequestRecord:
            started, started_at = time.perf_counter(), time.time()
            meta = RequestMeta(pending.pair_id, started, started_at, role="shadow")
            h = self.telemetry.start_request(
                model=model.name,
                variant=variant,
                role="shadow",
                operation="chat" if request.endpoint == "chat" else "text_completion",
                headers=request.headers,
                body=request.body,
                request_id=pending.pair_id,
                pair_id=pending.pair_id,
            )
            own_headers = h.upstream_headers()  # the shadow's own span, not the primary's
            if own_headers:
                request = BackendRequest(
                    request.endpoint,
                    request.body,
                    request.stream,
                    request.request_id,
                    {**request.headers, **own_headers},
                )
            acc = Accumulator(started)
            status, error_type = 200, None
            response: BackendResponse | None = None
            record: RequestRecord | None = None
            try:
                response = await self._send(model.name, variant, request, h)
                if response.streaming:
                    counts = (model.name, variant) not in self._self_counting
                    await _consume_stream(response, acc, h if counts else None)
                else:
                    status = response.status
                    parse_body(acc, response.body)
                    if status >= 400:
                        error_type = "upstream_client_error"
            except BackendUnavailable as exc:
                status, error_type = from_backend_error([(variant, exc)]).status, "upstream_error"
            except BackendError:
                error_type = "upstream_stream_error"
            finally:
                self._release_tokens(response)
                record = self._record(
                    model,
                    variant,
                    "shadow",
                    request,
                    meta,
                    acc,
                    status,
                    error_type if response is not None or error_type else "cancelled",
                    response,
                    pair_id=pending.pair_id,
                )
                finished = self._finish(h, record, acc)
            # A background task: waiting (at most one energy sample) delays nobody.
            shadow_record: RequestRecord = await finished
            return shadow_record

        return run

    # -- records -----------------------------------------------------------------------------

    def _record(
        self,
        model: ModelConfig,
        variant: str,
        role: Role,
        request: BackendRequest,
        meta: RequestMeta,
        acc: Accumulator,
        status: int,
        error_type: str | None,
        response: BackendResponse | None,
        *,
        failed_over_from: tuple[str, ...] = (),
        pair_id: str | None = None,
    ) -> RequestRecord:
        prompt_tokens, completion_tokens = acc.tokens()
        if error_type is None and acc.error is not None:
            error_type = str(acc.error.get("type") or "upstream_error")
        return RequestRecord(
            request_id=meta.request_id,
            model=model.name,
            variant=variant,
            bits=self._bits[model.name, variant],
            role=role,
            operation="chat" if request.endpoint == "chat" else "text_completion",
            stream=request.stream,
            status=status,
            started_at=meta.started_at,
            duration_s=time.perf_counter() - meta.started,
            time_to_first_token_s=acc.ttft_s,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=acc.finish_reason,
            text=acc.text,
            error_type=error_type,
            batch_size=response.info.batch_size if response is not None else None,
            pair_id=pair_id,
            failed_over_from=failed_over_from,
            session_id=meta.session_id,
            expected_answer=meta.expected_answer,
            dataset=meta.dataset,
            prompt="" if meta.expected_answer is None else _prompt_text(request.body),
            reference_depth=meta.reference_depth,
        )

    def _cancelled_record(
        self, model: ModelConfig, variant: str, request: BackendRequest, meta: RequestMeta
    ) -> RequestRecord:
        acc = Accumulator(meta.started)
        return self._record(model, variant, meta.role, request, meta, acc, 499, "cancelled", None)

    def _emit(self, record: RequestRecord | None) -> None:
        if record is None:
            return
        for sink in self._record_sinks:
            try:
                sink(record)
            except Exception:  # telemetry and scoring never fail a request
                log.exception("record sink failed")

    def add_record_sink(self, sink: RecordSink) -> None:
        self._record_sinks.append(sink)

    def add_pair_sink(self, sink: PairSink) -> None:
        for dispatcher in self.shadows.values():
            dispatcher.add_sink(sink)

    async def aclose(self) -> None:
        await asyncio.gather(*(d.aclose() for d in self.shadows.values()))


async def _forward_stream(
    response: BackendResponse,
    acc: Accumulator,
    send: Send,
    client_wants_usage: bool,
    meta: RequestMeta,
    h: RequestTelemetry | None,
) -> str | None:
    """Forward SSE events as they arrive; return the record's error type, if any.

    Events that arrived together are forwarded with one write. A stream that breaks part-way
    ends with an OpenAI error event and is closed: the client sees an error instead of
    hanging or of a silently truncated answer.
    """
    error_type: str | None = None
    batches = response.batches()
    done = False
    try:
        async for payloads in batches:
            out: list[bytes] = []
            seen = acc.chunks
            for payload in payloads:
                if payload == b"[DONE]":
                    done = True
                    break
                obj = _loads(payload)
                if obj is not None:
                    acc.add_chunk(obj)
                    if not client_wants_usage and "usage" in obj:
                        if obj["usage"] is not None and not obj.get("choices"):
                            continue  # the usage-only chunk this client did not ask for
                        # Strip what the client would not have got without include_usage
                        # (OpenAI sends "usage": null on every chunk once it is set).
                        del obj["usage"]
                        payload = orjson.dumps(obj)
                out += (b"data: ", payload, b"\n\n")
            if h is not None and acc.chunks > seen:
                h.tokens(acc.chunks - seen)
            if done:
                meta.ending = True
                out.append(b"data: [DONE]\n\n")
                await send(
                    {"type": "http.response.body", "body": b"".join(out), "more_body": False}
                )
                break
            if out:
                await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        else:
            raise BackendStreamError("upstream stream ended without [DONE]")
    except BackendError as exc:
        error_type = "upstream_stream_error"
        log.warning("stream broke mid-way: %s", exc)
        body = error_body(
            f"The upstream stream broke before it finished: {exc}",
            type="upstream_error",
            code="stream_interrupted",
        )
        meta.ending = True
        await send(
            {"type": "http.response.body", "body": b"data: " + body + b"\n\n", "more_body": False}
        )
        return error_type
    finally:
        if hasattr(batches, "aclose"):
            await batches.aclose()
        await response.aclose()
    if acc.error is not None:
        error_type = str(acc.error.get("type") or "upstream_error")
    return error_type


async def _consume_stream(
    response: BackendResponse, acc: Accumulator, h: RequestTelemetry | None
) -> None:
    """Read a stream nobody is waiting for (a shadow copy) into ``acc``."""
    batches = response.batches()
    try:
        async for payloads in batches:
            seen = acc.chunks
            for payload in payloads:
                if payload == b"[DONE]":
                    if h is not None and acc.chunks > seen:
                        h.tokens(acc.chunks - seen)
                    return
                obj = _loads(payload)
                if obj is not None:
                    acc.add_chunk(obj)
            if h is not None and acc.chunks > seen:
                h.tokens(acc.chunks - seen)
        raise BackendStreamError("upstream stream ended without [DONE]")
    finally:
        if hasattr(batches, "aclose"):
            await batches.aclose()
        await response.aclose()


def _loads(payload: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


_EVAL_KEYS = frozenset({"expected_answer", "dataset", "reference_depth"})

MAX_REFERENCE_DEPTH = 64
"""Deepest reasoning depth a client may tag (deeper, or not an integer: ignored)."""


def parse_reference_depth(value: object) -> int | None:
    """A client's depth tag as an int in [0, :data:`MAX_REFERENCE_DEPTH`], else ``None``.

    Accepts an integer or a string of digits (a header, or a metadata value: OpenAI's
    ``metadata`` holds strings); anything else is ignored rather than refused, as the tag
    only stratifies accuracy and must never fail the user's request.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        depth = value
    elif isinstance(value, str | bytes):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 4:
            return None
        depth = int(text)
    else:
        return None
    return depth if 0 <= depth <= MAX_REFERENCE_DEPTH else None


def _take_evaluation_tags(
    body: dict[str, Any], metadata: dict[str, Any], meta: RequestMeta
) -> dict[str, Any]:
    """Move evaluation tags out of ``metadata``: the model must never see the answer."""
    expected = metadata.get("expected_answer")
    if expected is not None:
        meta.expected_answer = str(expected)
    dataset = metadata.get("dataset")
    if dataset is not None:
        meta.dataset = str(dataset)
    depth = parse_reference_depth(metadata.get("reference_depth"))
    if depth is not None:
        meta.reference_depth = depth
    rest = {k: v for k, v in metadata.items() if k not in _EVAL_KEYS}
    if rest:
        return {**body, "metadata": rest}
    return {k: v for k, v in body.items() if k != "metadata"}


def _prompt_text(body: Mapping[str, Any]) -> str:
    """The question of an evaluation request: the last user message, or the prompt."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else orjson.dumps(content).decode()
        return ""
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()


def _with_usage(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("stream_options") or {}
    if options.get("include_usage") is True:
        return body
    return {**body, "stream_options": {**options, "include_usage": True}}
