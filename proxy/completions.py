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
from typing import Any

from backends.base import (
    Backend,
    BackendError,
    BackendRequest,
    BackendResponse,
    BackendUnavailable,
    Endpoint,
)
from proxy.config import ModelConfig, Settings
from proxy.errors import APIError, error_body, from_backend_error
from proxy.evaluation_tags import (
    EVAL_KEYS,
    MAX_REFERENCE_DEPTH,
    parse_reference_depth,
    prompt_text,
    take_evaluation_tags,
)
from proxy.openai_format import Accumulator, parse_body, validate_request
from proxy.request_meta import RequestMeta
from proxy.routing import Router
from proxy.shadow import PairSink, PendingPair, ShadowDispatcher
from proxy.streaming import SSE_HEADERS, Send, consume_stream, forward_stream, with_usage
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

_JSON = b"application/json"


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
        if isinstance(metadata, dict) and EVAL_KEYS & metadata.keys():
            body = take_evaluation_tags(body, metadata, meta)
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
        upstream_body = with_usage(body) if stream else body
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
                {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers}
            )
            counts = (model.name, variant) not in self._self_counting
            try:
                error_type = await forward_stream(
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
                    await consume_stream(response, acc, h if counts else None)
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
            prompt="" if meta.expected_answer is None else prompt_text(request.body),
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
