"""Serving one request: route it, fail over, mirror it to shadows, record every attempt.

One request's path: pick the variant order (pin, weighted draw or primary) → start shadow
copies in the background (:mod:`proxy.shadow`) → try each variant in turn through the
:class:`~proxy.pipeline.AttemptPipeline` (a fresh attempt id each; failover on refusal,
timeout or 5xx before the first byte) → relay the answer to the client → each attempt's record
goes to the record sinks (telemetry has already observed it), the primary's also to its
shadow pair. Shadow copies run the same pipeline with their bytes discarded.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence

from backends.base import Backend, BackendError, BackendResponse, BackendUnavailable
from core.buckets import batch_bucket
from core.records import RequestRecord
from proxy.config import ModelConfig, ProxySettings
from proxy.context import Attempt, RequestContext
from proxy.errors import APIError, from_backend_error
from proxy.pipeline import SPECS, AttemptPipeline, Relayed, failed
from proxy.response_chain import ChainEntry, ResponseChain
from proxy.routing import Router
from proxy.shadow import PairSink, PendingPair, ShadowDispatcher
from proxy.streaming import Send, discard
from telemetry import RequestObserver, Telemetry
from telemetry.hops import agent_hop_position

__all__ = ["RecordSink", "RequestService"]

log = logging.getLogger("quanttrap.proxy")

RecordSink = Callable[[RequestRecord], None]


class RequestService:
    """Routes, fails over and mirrors requests; owns the per-model routers and shadows."""

    def __init__(
        self,
        settings: ProxySettings,
        backends: Mapping[tuple[str, str], Backend],
        *,
        record_sinks: Sequence[RecordSink] = (),
        pair_sinks: Sequence[PairSink] = (),
        rng: random.Random | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self._record_sinks = list(record_sinks)
        rng = rng or random.Random()
        self.models: dict[str, ModelConfig] = {m.name: m for m in settings.models}
        self.routers = {m.name: Router(m, rng) for m in settings.models}
        bits = {(m.name, v.name): v.bits for m in settings.models for v in m.variants}
        self.pipeline = AttemptPipeline(backends, bits, self.telemetry)
        self.shadows = {
            m.name: ShadowDispatcher(
                m, self._run_shadow, pair_sinks, rng, on_count=self.telemetry.shadow_copy
            )
            for m in settings.models
        }
        self.chain = ResponseChain()
        """Which variant produced which Responses answer (follow-ups go back to it)."""
        self.in_flight: dict[tuple[str, str], int] = dict.fromkeys(bits, 0)
        """(model, first-choice variant) -> requests being served now (canaries yield to it)."""

    def model(self, name: object) -> ModelConfig:
        model = self.models.get(name) if isinstance(name, str) else None
        if model is None:
            raise APIError(
                404,
                f"The model `{name}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return model

    async def handle(self, ctx: RequestContext, send: Send) -> None:
        """Serve ``ctx`` and answer through ``send``; raises :class:`APIError` when no
        variant could answer (the app turns it into the error response)."""
        model = self.model(ctx.model)
        previous = ctx.body.get("previous_response_id") if ctx.operation == "responses" else None
        previous_hop = None
        if isinstance(previous, str):
            # A follow-up goes to the variant that holds the conversation, and only there.
            entry = self.chain.lookup(model.name, previous)
            if ctx.pinned is not None and ctx.pinned != entry.variant:
                raise APIError(
                    400,
                    f"previous_response_id {previous!r} was produced by variant "
                    f"{entry.variant!r}, but X-Quanttrap-Variant pins {ctx.pinned!r}.",
                    param="previous_response_id",
                    code="variant_conflict",
                )
            ctx.pinned, previous_hop = entry.variant, entry.hop
        ctx.agent_turns_before = agent_hop_position(
            ctx.operation, ctx.body, previous_hop=previous_hop
        )
        order = self.routers[model.name].order(ctx.pinned)
        key = (model.name, order[0])
        pending = None
        if ctx.role == "primary" and SPECS[ctx.operation].shadowable:
            bucket = batch_bucket(self.in_flight[key] + 1)
            pending = self.shadows[model.name].maybe_launch(order[0], ctx, bucket)
        self.in_flight[key] += 1
        try:
            await self._serve(ctx, order, send, pending)
        finally:
            self.in_flight[key] -= 1

    async def _serve(
        self, ctx: RequestContext, order: list[str], send: Send, pending: PendingPair | None
    ) -> None:
        pipeline = self.pipeline
        if pending is not None:
            ctx.pair_id = pending.pair_id
        errors: list[tuple[str, BackendError]] = []
        response: BackendResponse | None = None
        for i, variant in enumerate(order):
            attempt = ctx.new_attempt(variant)
            obs = pipeline.observe(ctx, attempt)
            try:
                response = await pipeline.send(ctx, attempt, obs)
            except BackendUnavailable as exc:
                log.warning("variant %s/%s unavailable: %s", ctx.model, variant, exc)
                errors.append((variant, exc))
                if i + 1 < len(order):
                    obs.failover(order[i + 1], type(exc).__name__)
                error = from_backend_error([(variant, exc)])
                outcome = failed(error.status, error.code or error.type, attempt.started)
                last = i + 1 == len(order)
                sink = self._primary_sink(pending) if last and pending else self._emit
                pipeline.finish(ctx, attempt, obs, outcome, sink)
                continue
            except asyncio.CancelledError:
                self._finish_cancelled(ctx, attempt, obs, pending)
                raise
            break
        if response is None:
            raise from_backend_error(errors)
        on_record = self._emit if pending is None else self._primary_sink(pending)
        if ctx.operation == "responses":
            on_record = self._chaining(on_record)
        tried = tuple(name for name, _ in errors)
        try:
            relayed = await pipeline.relay(ctx, attempt, response, obs, send)
        except asyncio.CancelledError:
            if not ctx.disconnected:
                self._finish_cancelled(ctx, attempt, obs, pending)
                raise
            # The client went away mid-stream (the app cancelled us): book it, don't propagate.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            relayed = failed(499, "client_disconnected", attempt.started)
        except BaseException:
            self._finish_cancelled(ctx, attempt, obs, pending)
            raise
        pipeline.finish(ctx, attempt, obs, relayed, on_record, failed_over_from=tried)

    def _finish_cancelled(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        obs: RequestObserver,
        pending: PendingPair | None,
    ) -> None:
        on_record = self._emit if pending is None else self._primary_sink(pending)
        self.pipeline.finish(
            ctx, attempt, obs, failed(499, "cancelled", attempt.started), on_record
        )

    def _chaining(self, sink: RecordSink) -> RecordSink:
        """``sink``, after remembering which variant produced a Responses answer."""

        def remember(record: RequestRecord) -> None:
            if record.ok and record.response_id:
                entry = ChainEntry(record.model, record.variant, record.agent_turns_before)
                self.chain.remember(record.response_id, entry)
            sink(record)

        return remember

    def _primary_sink(self, pending: PendingPair) -> Callable[[RequestRecord], None]:
        def sink(record: RequestRecord) -> None:
            pending.set_primary(record)
            self._emit(record)

        return sink

    # -- shadows -----------------------------------------------------------------------------

    async def _run_shadow(self, variant: str, ctx: RequestContext) -> RequestRecord:
        """One shadow copy through the same pipeline, its bytes discarded; returns its record
        once telemetry's facts are in (a background task: the wait delays nobody)."""
        pipeline = self.pipeline
        attempt = ctx.new_attempt(variant)
        obs = pipeline.observe(ctx, attempt)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[RequestRecord] = loop.create_future()

        def on_record(record: RequestRecord) -> None:
            if not done.done():
                done.set_result(record)

        relayed: Relayed
        try:
            response = await pipeline.send(ctx, attempt, obs)
            relayed = await pipeline.relay(ctx, attempt, response, obs, discard)
        except BackendUnavailable as exc:
            error = from_backend_error([(variant, exc)])
            relayed = failed(error.status, "upstream_error", attempt.started)
        except BackendError:
            relayed = failed(502, "upstream_stream_error", attempt.started)
        except asyncio.CancelledError:
            pipeline.finish(ctx, attempt, obs, failed(499, "cancelled", attempt.started), on_record)
            raise
        pipeline.finish(ctx, attempt, obs, relayed, on_record)
        return await done

    # -- records -----------------------------------------------------------------------------

    def _emit(self, record: RequestRecord) -> None:
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
