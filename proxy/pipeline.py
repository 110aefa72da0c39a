"""One attempt pipeline for every upstream attempt: primary, failover, shadow copy, canary.

An attempt is: observe (telemetry's observer, under a fresh attempt id) → send to the
variant's backend → relay its answer to where the bytes go (the client, or
:func:`~proxy.streaming.discard` for shadows and canaries), reading it as it passes → finish:
tell the observer the :class:`~core.records.AttemptOutcome`, and once telemetry's facts are
in (the energy share comes at the next sample), build the one
:class:`~core.records.RequestRecord` and hand it on. What differs between roles is passed
in; the steps are the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backends.base import Backend, BackendRequest, BackendResponse, BackendServerError
from core.records import AttemptOutcome, RequestRecord
from proxy.context import Attempt, RequestContext
from proxy.errors import APIError
from proxy.evaluation_tags import prompt_text
from proxy.formats import ResponseReader, reader_for
from proxy.formats._reader import load_object
from proxy.openai_format import Accumulator
from proxy.operations import OPERATIONS
from proxy.streaming import SSE_HEADERS, Send, forward_stream, forward_typed_stream, with_usage
from telemetry import RequestObserver, Telemetry, TelemetryFacts
from telemetry.request import NO_FACTS

__all__ = ["AttemptPipeline", "Relayed", "build_record", "failed"]

log = logging.getLogger("quanttrap.proxy")

_JSON = b"application/json"
OnRecord = Callable[[RequestRecord], None]
Journal = Callable[[RequestRecord], Awaitable[object]]


@dataclass(slots=True)
class Relayed:
    """What relaying one response produced: its status, error type and what was read."""

    status: int
    error_type: str | None
    reader: ResponseReader
    batch_size: int | None = None


class AttemptPipeline:
    """The steps of one upstream attempt, shared by every role."""

    def __init__(
        self,
        backends: Mapping[tuple[str, str], Backend],
        bits: Mapping[tuple[str, str], int],
        telemetry: Telemetry,
    ) -> None:
        self._backends = backends
        self._bits = bits
        self._telemetry = telemetry
        self.journal: Journal | None = None
        """Awaited with a provisional record before the last byte of evaluation traffic (the
        evaluation store's write-ahead journal, attached by the composition root)."""

    def observe(self, ctx: RequestContext, attempt: Attempt) -> RequestObserver:
        return self._telemetry.start_attempt(
            model=ctx.model,
            variant=attempt.variant,
            attempt_id=attempt.attempt_id,
            role=ctx.role,
            operation=ctx.operation,
            request_id=ctx.request_id,
            pair_id=ctx.pair_id,
            trace_headers=ctx.trace_headers,
            session_id=ctx.session_id,
            agent_turns_before=ctx.agent_turns_before,
            reference_depth=ctx.reference_depth,
            body=ctx.body,
        )

    async def send(
        self, ctx: RequestContext, attempt: Attempt, obs: RequestObserver
    ) -> BackendResponse:
        """Send to the attempt's variant (raises ``BackendUnavailable`` before any byte)."""
        backend = self._backends[ctx.model, attempt.variant]
        upstream = obs.upstream_headers()
        headers = {**ctx.forward_headers, **ctx.trace_headers, **upstream}
        body = with_usage(ctx.body) if ctx.stream and SPECS[ctx.operation].asks_usage else ctx.body
        request = BackendRequest(
            ctx.endpoint,
            body,
            ctx.stream,
            ctx.request_id,
            headers,
            attempt_id=attempt.attempt_id,
            on_tokens=obs.tokens if backend.reports_tokens else None,
        )
        response = await backend.send(request)
        if not response.streaming and 200 <= response.status < 300:
            # A success whose body is not a JSON object is a broken upstream, not an answer:
            # fail this attempt before any byte went to the client, so failover can still help.
            parsed = load_object(response.body)
            if parsed is None:
                raise BackendServerError(502, b"the upstream's answer is not a JSON object")
            response.parsed = parsed
        return response

    async def relay(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        response: BackendResponse,
        obs: RequestObserver,
        send: Send,
    ) -> Relayed:
        """Pass ``response`` on to ``send``, reading it as it goes."""
        spec = SPECS[ctx.operation]
        headers = [
            (b"x-quanttrap-variant", attempt.variant.encode()),
            (b"x-request-id", ctx.request_id.encode()),
            *response.headers,
        ]
        reader = reader_for(ctx.operation, attempt.started)
        batch = response.info.batch_size
        journal = self.journal
        if journal is not None and ctx.expected_answer is not None and ctx.role != "shadow":
            send = self._journal_first(ctx, attempt, reader, batch, response.status, send, journal)
        if response.streaming:
            await send(
                {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers}
            )
            counts = not self._backends[ctx.model, attempt.variant].reports_tokens
            h = obs if counts else None
            if spec.typed_events:
                broke = await forward_typed_stream(
                    response, reader, send, ctx, h, anthropic=spec.error_shape == "anthropic"
                )
            else:
                assert isinstance(reader, Accumulator)
                wants_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))
                broke = await forward_stream(response, reader, send, wants_usage, ctx, h)
            return Relayed(200, broke, reader, response.info.batch_size or batch)
        status = response.status
        body = response.body
        obj = response.parsed if response.parsed is not None else load_object(body)
        if obj is not None:
            reader.add_body(obj)
        error_type: str | None = None
        if status >= 400:
            error_type = str((reader.error or {}).get("type") or "upstream_client_error")
            if reader.error is None:  # not an error body the client can parse: wrap it
                message = f"upstream answered HTTP {status}: {body[:200].decode(errors='replace')}"
                error = APIError(status, message, type="upstream_error")
                body = error.anthropic_body() if spec.error_shape == "anthropic" else error.body()
        elif reader.error is not None:
            error_type = str(reader.error.get("type") or "upstream_error")
        ctx.ending = True
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", _JSON), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return Relayed(status, error_type, reader, batch)

    def _journal_first(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        reader: ResponseReader,
        batch: int | None,
        status: int,
        send: Send,
        journal: Journal,
    ) -> Send:
        """``send``, but the last body message waits until the evaluation is journaled, so
        that an answer the client has seen is never lost to a crash (the full record, with
        energy, replaces the journaled one later)."""
        bits = self._bits[ctx.model, attempt.variant]

        async def guarded(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                outcome = _outcome(ctx, attempt, Relayed(status, None, reader, batch))
                try:
                    await journal(build_record(ctx, attempt, bits, outcome, NO_FACTS))
                except Exception:  # the store says what failed; the answer still goes out
                    log.exception("evaluation journal failed")
            await send(message)

        return guarded

    def finish(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        obs: RequestObserver,
        relayed: Relayed,
        on_record: OnRecord,
        *,
        failed_over_from: tuple[str, ...] = (),
    ) -> None:
        """Tell the observer how the attempt ended; build its record once the facts are in."""
        outcome = _outcome(ctx, attempt, relayed)
        pending = obs.finish(outcome)
        bits = self._bits[ctx.model, attempt.variant]

        def ready(facts: TelemetryFacts) -> None:
            record = build_record(ctx, attempt, bits, outcome, facts, failed_over_from)
            try:
                on_record(record)
            except Exception:  # telemetry and scoring never fail a request
                log.exception("record sink failed")

        pending.on_ready(ready)


def failed(status: int, error_type: str, started: float) -> Relayed:
    """An attempt that produced no response (refused, timed out, cancelled)."""
    return Relayed(status, error_type, Accumulator(started))


SPECS = {spec.operation: spec for spec in OPERATIONS}


def _outcome(ctx: RequestContext, attempt: Attempt, relayed: Relayed) -> AttemptOutcome:
    reader = relayed.reader
    prompt_tokens, completion_tokens = reader.tokens()
    return AttemptOutcome(
        status=relayed.status,
        error_type=relayed.error_type,
        duration_s=time.perf_counter() - attempt.started,
        stream=ctx.stream,
        time_to_first_token_s=reader.ttft_s,
        time_to_first_content_s=reader.ttfc_s,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        reasoning_tokens=reader.reasoning_tokens,
        finish_reason=reader.finish_reason,
        text=reader.text,
        reasoning_text=reader.reasoning_text,
        tool_calls=reader.tool_calls,
        batch_size=relayed.batch_size,
        response_id=reader.response_id,
        response_model=reader.response_model,
    )


def build_record(
    ctx: RequestContext,
    attempt: Attempt,
    bits: int,
    outcome: AttemptOutcome,
    facts: TelemetryFacts,
    failed_over_from: tuple[str, ...] = (),
) -> RequestRecord:
    """The finished attempt's record: built once, from the context, outcome and facts."""
    return RequestRecord(
        request_id=ctx.request_id,
        model=ctx.model,
        variant=attempt.variant,
        bits=bits,
        role=ctx.role,
        operation=ctx.operation,
        stream=ctx.stream,
        status=outcome.status,
        started_at=attempt.started_at,
        duration_s=outcome.duration_s,
        time_to_first_token_s=outcome.time_to_first_token_s,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        finish_reason=outcome.finish_reason,
        text=outcome.text,
        tool_calls=outcome.tool_calls,
        reasoning_text=outcome.reasoning_text,
        reasoning_tokens=outcome.reasoning_tokens,
        time_to_first_content_s=outcome.time_to_first_content_s,
        error_type=outcome.error_type,
        batch_size=outcome.batch_size if outcome.batch_size is not None else facts.batch_size,
        pair_id=ctx.pair_id,
        failed_over_from=failed_over_from,
        agent_turns_before=ctx.agent_turns_before,
        trace_id=facts.trace_id,
        session_id=ctx.session_id,
        expected_answer=ctx.expected_answer,
        dataset=ctx.dataset,
        prompt="" if ctx.expected_answer is None else prompt_text(ctx.body),
        reference_depth=ctx.reference_depth,
        energy_j=facts.energy_j,
        energy_method=facts.energy_method,
        attempt_id=attempt.attempt_id,
        agent_chain_position=facts.agent_chain_position,
        response_id=outcome.response_id,
    )
