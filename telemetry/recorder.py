"""The real per-request handle (see :mod:`telemetry.request` for the contract).

One span per handle, named ``"{gen_ai.operation.name} {gen_ai.request.model}"``, of kind
``CLIENT`` (the convention's kind for a call to a model served by another process: the proxy
calls the variant's upstream) or ``INTERNAL`` for the in-process engine. Its parent is the
client's ``traceparent``; its own context goes to the upstream. Metric labels are bounded
(config names, fixed buckets); ids and free text go to the span only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from core.buckets import batch_bucket
from core.records import AttemptOutcome, Operation, Role
from scoring.hops import logical_hops
from telemetry.aggregation import HotCounter, HotHistogram
from telemetry.attribution import EnergyShare
from telemetry.energy_meter import EnergyMeter
from telemetry.errors import ErrorReporter
from telemetry.hops import AgentChainTracker, hop_position_bucket
from telemetry.instruments import Instruments
from telemetry.labels import LabelPolicy, bounded_error_type, status_class
from telemetry.propagation import (
    extract_context,
    inject_headers,
    parse_traceparent,
    remote_trace_id,
)
from telemetry.request import PendingFacts, RequestObserver, TelemetryFacts
from telemetry.semconv import Key
from telemetry.variants import VariantSpec, group_key
from telemetry.vllm_scraper import VllmMetricsScraper

__all__ = ["ActiveObserver", "RequestDeps"]

_MAX_ATTR = 256
_BODY_PARAMS = (
    ("max_completion_tokens", Key.REQUEST_MAX_TOKENS, int),
    ("max_tokens", Key.REQUEST_MAX_TOKENS, int),
    ("temperature", Key.REQUEST_TEMPERATURE, float),
    ("top_p", Key.REQUEST_TOP_P, float),
    ("seed", Key.REQUEST_SEED, int),
    ("frequency_penalty", Key.REQUEST_FREQUENCY_PENALTY, float),
    ("presence_penalty", Key.REQUEST_PRESENCE_PENALTY, float),
    ("n", Key.REQUEST_CHOICE_COUNT, int),
)


@dataclass(slots=True)
class RequestDeps:
    """What every handle of one :class:`telemetry.Telemetry` shares."""

    instruments: Instruments
    meter: EnergyMeter
    reporter: ErrorReporter
    tracer: Tracer
    recording: bool
    capture_content: bool
    tracker: AgentChainTracker
    scraper: VllmMetricsScraper | None
    labels: LabelPolicy
    variants: Mapping[str, VariantSpec]
    finish_timeout_s: float


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        for k, v in headers.items():
            if k.lower() == name:
                return v
    return value


def _request_attributes(body: Mapping[str, Any] | None, capture: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if not body:
        return attrs
    for field, key, kind in _BODY_PARAMS:
        value = body.get(field)
        if key in attrs or value is None or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and (kind is float or isinstance(value, int)):
            attrs[key] = kind(value)
    if capture:
        messages = body.get("messages", body.get("prompt"))
        if messages is not None:
            attrs[Key.INPUT_MESSAGES] = json.dumps(messages, default=str)
    return attrs


_SEMCONV_OPERATION: dict[str, str] = {
    "chat": "chat",
    "text_completion": "text_completion",
    "responses": "chat",  # the GenAI conventions name the Responses API a chat operation
    "messages": "chat",
    "embeddings": "embeddings",
}


class ActiveObserver(RequestObserver):
    """One attempt being measured; created by :meth:`telemetry.Telemetry.start_attempt`.

    Energy is metered under the attempt id, never the request id: a request's failover
    attempts and shadow copies share its request id but each has its own slot.
    """

    __slots__ = ("_batch_hint", "_chain_pos", "_d", "_failed_over", "_finished", "_group",
                 "_meter_key", "_model", "_model_label", "_ntokens", "_operation", "_ref_depth",
                 "_role", "_session", "_span", "_spec", "_t0", "_t_first", "_trace_id", "_turns",
                 "_upstream", "_variant", "_variant_label")  # fmt: skip

    def __init__(
        self,
        deps: RequestDeps,
        *,
        model: str,
        variant: str,
        role: Role,
        operation: Operation,
        attempt_id: str,
        request_id: str,
        pair_id: str | None,
        trace_headers: Mapping[str, str] | None,
        session_id: str | None,
        agent_turns_before: int,
        reference_depth: int | None,
        body: Mapping[str, Any] | None,
    ) -> None:
        self._d = deps
        self._ref_depth = reference_depth
        self._t0 = time.perf_counter()
        self._model, self._role = model, role
        self._operation = _SEMCONV_OPERATION.get(operation, "chat")
        self._t_first: float | None = None
        self._ntokens = 0
        self._finished = False
        self._failed_over = False
        self._span: Span | None = None
        self._upstream: dict[str, str] | None = None
        self._batch_hint: int | None = None
        self._trace_id: str | None = None
        self._session = session_id
        self._turns = agent_turns_before
        self._chain_pos = 0
        self._meter_key = attempt_id
        self._model_label = deps.labels.model(model)
        self._set_variant(variant)
        try:
            self._meter_started()
            ctx = None
            if deps.recording:
                ctx = extract_context(trace_headers)
                self._trace_id = remote_trace_id(ctx)
            else:
                self._upstream = self._pass_through(trace_headers)
            # Only the user's own calls advance an agent chain: a shadow copy or a canary is
            # not a step of the agent's task.
            chain_key = self._session or self._trace_id
            if chain_key is not None and role == "primary":
                self._chain_pos = deps.tracker.position(chain_key, time.monotonic())
            if deps.recording:
                in_process = self._spec is not None and self._spec.in_process
                self._span = deps.tracer.start_span(
                    f"{self._operation} {model[:_MAX_ATTR]}",
                    context=ctx,
                    kind=SpanKind.INTERNAL if in_process else SpanKind.CLIENT,
                    attributes=self._start_attributes(
                        body, request_id, attempt_id, pair_id, operation
                    ),
                    start_time=time.time_ns(),
                )
        except Exception as exc:
            deps.reporter.report("request", exc)

    def _pass_through(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        # Spans are not recorded: no span of ours exists, so the upstream's spans become
        # children of the client's (what a proxy without tracing, or OpenTelemetry's no-op
        # API, does), and the client's trace id is kept for agent-chain counting.
        parsed = parse_traceparent(_header(headers, "traceparent"))
        if parsed is None:
            return {}
        trace_id, parent_id, flags = parsed
        self._trace_id = trace_id
        out = {"traceparent": f"00-{trace_id}-{parent_id}-{flags}"}
        state = _header(headers, "tracestate")
        if state:
            out["tracestate"] = state
        return out

    def _set_variant(self, variant: str) -> None:
        self._variant = variant
        self._variant_label = self._d.labels.variant(self._model, variant)
        self._group = group_key(self._model, variant)
        self._spec = self._d.variants.get(self._group)

    def _meter_started(self) -> None:
        d = self._d
        d.meter.request_started(self._meter_key, self._group)
        d.instruments.in_flight.add(1, (self._model_label, self._variant_label, self._role))

    def _start_attributes(
        self,
        body: Mapping[str, Any] | None,
        request_id: str,
        attempt_id: str,
        pair_id: str | None,
        api: Operation,
    ) -> dict[str, Any]:
        spec = self._spec
        attrs = _request_attributes(body, self._d.capture_content)
        attrs[Key.OPERATION_NAME] = self._operation
        attrs[Key.PROVIDER_NAME] = spec.provider if spec else "openai"
        attrs[Key.REQUEST_MODEL] = self._model[:_MAX_ATTR]
        attrs[Key.VARIANT] = self._variant[:_MAX_ATTR]
        attrs[Key.ROLE] = self._role
        attrs[Key.AGENT_TURNS_BEFORE] = self._turns
        attrs[Key.AGENT_CHAIN_POSITION] = self._chain_pos
        if spec is not None:
            attrs[Key.PRECISION_BITS] = spec.bits
            if spec.server_address:
                attrs[Key.SERVER_ADDRESS] = spec.server_address
                if spec.server_port is not None:
                    attrs[Key.SERVER_PORT] = spec.server_port
        attrs[Key.API] = api
        if request_id:
            attrs[Key.REQUEST_ID] = request_id[:_MAX_ATTR]
        if attempt_id:
            attrs[Key.ATTEMPT_ID] = attempt_id[:_MAX_ATTR]
        if pair_id:
            attrs[Key.PAIR_ID] = pair_id[:_MAX_ATTR]
        if self._session:
            attrs[Key.CONVERSATION_ID] = self._session
        return attrs

    def first_token(self) -> None:
        if self._t_first is None:
            self._t_first = time.perf_counter()
            scraper = self._d.scraper
            if scraper is not None:
                self._batch_hint = scraper.current_batch(self._group)

    def tokens(self, n: int = 1) -> None:
        try:
            if self._t_first is None:
                self.first_token()
            self._ntokens += n
            self._d.meter.tokens(self._meter_key, n)
        except Exception as exc:
            self._d.reporter.report("request", exc)

    def failover(self, to_variant: str, error_type: str | None = None) -> None:
        d = self._d
        self._failed_over = True
        try:
            to_label = d.labels.variant(self._model, to_variant)
            d.instruments.failovers.add(1, (self._model_label, self._variant_label, to_label))
            if self._span is not None:
                self._span.add_event(
                    "quanttrap.failover",
                    {
                        Key.FAILOVER_TO: to_variant[:_MAX_ATTR],
                        Key.ERROR_TYPE: bounded_error_type(error_type) or "",
                    },
                )
        except Exception as exc:
            d.reporter.report("request", exc)

    def upstream_headers(self) -> dict[str, str]:
        if self._upstream is None:
            try:
                self._upstream = inject_headers(self._span) if self._span is not None else {}
            except Exception as exc:
                self._d.reporter.report("span", exc)
                self._upstream = {}
        return self._upstream

    def finish(self, outcome: AttemptOutcome) -> PendingFacts:
        if self._finished:
            return PendingFacts()
        self._finished = True
        d = self._d
        try:
            end_ns = time.time_ns()
            inst = d.instruments
            batch = outcome.batch_size
            if batch is None:
                batch = self._batch_hint
                if batch is None and d.scraper is not None:
                    batch = d.scraper.current_batch(self._group)
            bucket = batch_bucket(batch)
            variant_label = self._variant_label
            spec = self._spec
            bits = str(spec.bits) if spec else "other"
            provider = spec.provider if spec else "openai"
            ok = outcome.ok
            err = "" if ok else bounded_error_type(outcome.error_type or str(outcome.status))
            ok_labels = (self._operation, provider, self._model_label, variant_label, bits,
                         self._role, bucket)  # fmt: skip
            all_labels = (*ok_labels, status_class(outcome.status), err or "")
            duration = outcome.duration_s
            m: list[tuple[HotHistogram | HotCounter, float, tuple[str, ...]]] = [
                (inst.in_flight, -1.0, (self._model_label, self._variant_label, self._role)),
            ]
            if not self._failed_over:
                # A request that moved on to another variant is counted once, where it ended;
                # its failed attempts show in the failover counter (and the span's events).
                m += [(inst.duration, duration, all_labels), (inst.requests, 1.0, all_labels)]
            ttft = outcome.time_to_first_token_s
            if ttft is None and self._t_first is not None:
                ttft = self._t_first - self._t0
            out = outcome.completion_tokens
            if out is None and self._ntokens:
                out = self._ntokens
            if ok and outcome.time_to_first_content_s is not None:
                m.append((inst.ttfc, outcome.time_to_first_content_s, ok_labels))
            if ok and ttft is not None:
                m.append((inst.ttft, ttft, ok_labels))
                if out is not None and out > 1 and duration > ttft:
                    m.append((inst.tpot, (duration - ttft) / (out - 1), ok_labels))
            if outcome.prompt_tokens is not None:
                m.append((inst.token_usage, outcome.prompt_tokens, (*ok_labels, "input")))
            hop_labels = (self._model_label, variant_label, bits, self._role)
            if out is not None:
                m.append((inst.token_usage, out, (*ok_labels, "output")))
                m.append((inst.hops_atomic, out, hop_labels))
            logical = self._logical_hops(outcome.text, outcome.reasoning_text)
            if logical is not None:
                m.append((inst.hops_logical, logical, hop_labels))
            if self._ref_depth is not None:
                m.append((inst.hops_reference, self._ref_depth, hop_labels))
            agent_hops = max(self._turns, self._chain_pos)
            m.append((inst.hops_agent, agent_hops, hop_labels))
            if ok and self._operation != "embeddings":
                hop_bucket = hop_position_bucket(agent_hops)
                calls = len(outcome.tool_calls)
                m.append((inst.tool_calls, calls, (*hop_labels, hop_bucket)))
            if outcome.reasoning_tokens is not None:
                m.append((inst.reasoning_tokens, outcome.reasoning_tokens, hop_labels))
            inst.hot.record_all(m)
            ticket = d.meter.request_finished(
                self._meter_key, self._group, duration_s=duration, batch_size=outcome.batch_size
            )
            span_id = None
            if self._span is not None:
                self._finish_span(outcome, out, batch, bucket, err)
                self._span.set_attribute(Key.HOPS_AGENT, agent_hops)
                if logical is not None:
                    self._span.set_attribute(Key.HOPS_LOGICAL, logical)
                self._span.set_attribute(Key.TOOL_CALLS, len(outcome.tool_calls))
                if outcome.reasoning_tokens is not None:
                    self._span.set_attribute(Key.REASONING_TOKENS, outcome.reasoning_tokens)
                if outcome.time_to_first_content_s is not None:
                    self._span.set_attribute(
                        Key.TIME_TO_FIRST_CONTENT, outcome.time_to_first_content_s
                    )
                span_id = format(self._span.get_span_context().span_id, "016x")
            energy_labels = (*hop_labels, bucket)
            ticket.add_done_callback(lambda share: self._on_energy(share, energy_labels, end_ns))
            facts = TelemetryFacts(
                batch_size=batch,
                trace_id=self._trace_id,
                span_id=span_id,
                agent_chain_position=self._chain_pos,
                logical_hops=logical,
            )
            return PendingFacts(facts, ticket, d.finish_timeout_s)
        except Exception as exc:
            d.reporter.report("request", exc)
            if self._span is not None:
                self._span.end()
            return PendingFacts(TelemetryFacts(trace_id=self._trace_id))

    def _logical_hops(self, text: str, reasoning: str) -> int | None:
        if not text and not reasoning:
            return None
        try:
            return logical_hops(text, reasoning)
        except Exception as exc:
            self._d.reporter.report("hops", exc)
            return None

    def _finish_span(
        self,
        outcome: AttemptOutcome,
        out: int | None,
        batch: int | None,
        bucket: str,
        err: str | None,
    ) -> None:
        span = self._span
        assert span is not None
        attrs: dict[str, Any] = {Key.BATCH_SIZE_BUCKET: bucket}
        if outcome.response_id:
            attrs[Key.RESPONSE_ID] = outcome.response_id[:_MAX_ATTR]
        if outcome.response_model:
            attrs[Key.RESPONSE_MODEL] = outcome.response_model[:_MAX_ATTR]
        if outcome.finish_reason:
            attrs[Key.RESPONSE_FINISH_REASONS] = (outcome.finish_reason[:_MAX_ATTR],)
        if outcome.prompt_tokens is not None:
            attrs[Key.USAGE_INPUT_TOKENS] = outcome.prompt_tokens
        if out is not None:
            attrs[Key.USAGE_OUTPUT_TOKENS] = out
            attrs[Key.HOPS_ATOMIC] = out
        if batch is not None:
            attrs[Key.BATCH_SIZE] = batch
        if self._ref_depth is not None:
            attrs[Key.HOPS_REFERENCE] = self._ref_depth
        if self._d.capture_content and outcome.text:
            message = {
                "role": "assistant",
                "parts": [{"type": "text", "content": outcome.text}],
                "finish_reason": outcome.finish_reason or "",
            }
            attrs[Key.OUTPUT_MESSAGES] = json.dumps([message])
        if err:
            attrs[Key.ERROR_TYPE] = err
            span.set_status(Status(StatusCode.ERROR, err))
        span.set_attributes(attrs)

    def _on_energy(self, share: EnergyShare, labels: tuple[str, ...], end_ns: int) -> None:
        # Runs in the sampler thread (or inline for hli/none): both targets are thread-safe.
        try:
            if share.energy_j is not None:
                self._d.instruments.energy.record(share.energy_j, (*labels, share.method))
            span = self._span
            if span is not None:
                span.set_attribute(Key.ENERGY_METHOD, share.method)
                if share.energy_j is not None:
                    span.set_attribute(Key.ENERGY_J, share.energy_j)
                span.end(end_time=end_ns)
        except Exception as exc:
            self._d.reporter.report("request", exc)
