"""The real per-request handle (see :mod:`telemetry.request` for the contract).

One span per handle, named ``"{gen_ai.operation.name} {gen_ai.request.model}"``, of kind
``CLIENT`` (the convention's kind for a call to a model served by another process: the proxy
calls the variant's upstream) or ``INTERNAL`` for the in-process engine. Its parent is the
client's ``traceparent``; its own context goes to the upstream. Metric labels are bounded
(config names, fixed buckets); ids and free text go to the span only.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from scoring.hops import logical_hops
from scoring.records import Operation, RequestRecord, Role
from telemetry.aggregation import HotCounter, HotHistogram
from telemetry.attribution import EnergyShare
from telemetry.energy_meter import EnergyMeter
from telemetry.errors import ErrorReporter
from telemetry.hops import AgentChainTracker, count_prior_turns
from telemetry.instruments import Instruments
from telemetry.labels import LabelPolicy, batch_size_bucket, bounded_error_type, status_class
from telemetry.propagation import (
    extract_context,
    inject_headers,
    parse_traceparent,
    remote_trace_id,
)
from telemetry.request import PendingRecord, RequestTelemetry
from telemetry.semconv import Key
from telemetry.variants import VariantSpec, group_key
from telemetry.vllm_scraper import VllmMetricsScraper

__all__ = ["ActiveRequest", "RequestDeps"]

_ids = itertools.count(1)
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
    session_header: str
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


class ActiveRequest(RequestTelemetry):
    """A request being measured; created by :meth:`telemetry.Telemetry.start_request`."""

    __slots__ = ("_batch_hint", "_chain_pos", "_d", "_finished", "_group", "_meter_key",
                 "_model", "_model_label", "_ntokens", "_operation", "_role", "_session",
                 "_span", "_spec", "_t0", "_t_first", "_trace_id", "_turns", "_upstream",
                 "_variant", "_variant_label")  # fmt: skip

    def __init__(
        self,
        deps: RequestDeps,
        *,
        model: str,
        variant: str,
        role: Role,
        operation: Operation,
        headers: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        request_id: str,
        pair_id: str | None,
    ) -> None:
        self._d = deps
        self._t0 = time.perf_counter()
        self._model, self._role, self._operation = model, role, operation
        self._t_first: float | None = None
        self._ntokens = 0
        self._finished = False
        self._span: Span | None = None
        self._upstream: dict[str, str] | None = None
        self._batch_hint: int | None = None
        self._trace_id: str | None = None
        self._session: str | None = None
        self._turns = self._chain_pos = 0
        self._meter_key = f"{request_id or next(_ids)}/{role}"
        self._model_label = deps.labels.model(model)
        self._set_variant(variant)
        try:
            self._meter_started()
            ctx = None
            if deps.recording:
                ctx = extract_context(headers)
                self._trace_id = remote_trace_id(ctx)
            else:
                self._upstream = self._pass_through(headers)
            session = _header(headers, deps.session_header)
            self._session = session[:128] if session else None
            self._turns = count_prior_turns(body.get("messages") if body else None)
            chain_key = self._session or self._trace_id
            if chain_key is not None:
                self._chain_pos = deps.tracker.position(chain_key, time.monotonic())
            if deps.recording:
                in_process = self._spec is not None and self._spec.in_process
                self._span = deps.tracer.start_span(
                    f"{operation} {model[:_MAX_ATTR]}",
                    context=ctx,
                    kind=SpanKind.INTERNAL if in_process else SpanKind.CLIENT,
                    attributes=self._start_attributes(body, request_id, pair_id),
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
        self, body: Mapping[str, Any] | None, request_id: str, pair_id: str | None
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
        if request_id:
            attrs[Key.REQUEST_ID] = request_id[:_MAX_ATTR]
        if pair_id:
            attrs[Key.PAIR_ID] = pair_id[:_MAX_ATTR]
        if self._session:
            attrs[Key.CONVERSATION_ID] = self._session
        return attrs

    @property
    def trace_id(self) -> str | None:
        return self._trace_id

    @property
    def session_id(self) -> str | None:
        return self._session

    @property
    def agent_turns_before(self) -> int:
        return self._turns

    @property
    def agent_chain_position(self) -> int:
        return self._chain_pos

    @property
    def meter_key(self) -> str:
        """The key this request is metered under (for ``EnergyMeter.tokens`` from a thread)."""
        return self._meter_key

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
        try:
            old_label = self._variant_label
            d.instruments.in_flight.add(-1, (self._model_label, old_label, self._role))
            d.meter.request_finished(self._meter_key, self._group, duration_s=0.0)
            self._set_variant(to_variant)
            d.instruments.failovers.add(1, (self._model_label, old_label, self._variant_label))
            self._meter_started()
            if self._span is not None:
                self._span.add_event(
                    "quanttrap.failover",
                    {
                        Key.FAILOVER_TO: to_variant[:_MAX_ATTR],
                        Key.ERROR_TYPE: bounded_error_type(error_type) or "",
                    },
                )
                self._span.set_attribute(Key.VARIANT, to_variant[:_MAX_ATTR])
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

    def finish(
        self,
        record: RequestRecord,
        *,
        response_id: str | None = None,
        response_model: str | None = None,
    ) -> PendingRecord:
        if self._finished:
            return PendingRecord(record)
        self._finished = True
        d = self._d
        try:
            end_ns = time.time_ns()
            inst = d.instruments
            batch = record.batch_size
            if batch is None:
                batch = self._batch_hint
                if batch is None and d.scraper is not None:
                    batch = d.scraper.current_batch(self._group)
            bucket = batch_size_bucket(batch)
            variant_label = d.labels.variant(self._model, record.variant)
            spec = d.variants.get(group_key(self._model, record.variant))
            bits = str(spec.bits if spec else record.bits)
            provider = spec.provider if spec else "openai"
            ok = record.ok
            err = "" if ok else bounded_error_type(record.error_type or str(record.status))
            ok_labels = (self._operation, provider, self._model_label, variant_label, bits,
                         self._role, bucket)  # fmt: skip
            all_labels = (*ok_labels, status_class(record.status), err or "")
            duration = record.duration_s
            m: list[tuple[HotHistogram | HotCounter, float, tuple[str, ...]]] = [
                (inst.duration, duration, all_labels),
                (inst.requests, 1.0, all_labels),
                (inst.in_flight, -1.0, (self._model_label, self._variant_label, self._role)),
            ]
            ttft = record.time_to_first_token_s
            if ttft is None and self._t_first is not None:
                ttft = self._t_first - self._t0
            out = record.completion_tokens
            if out is None and self._ntokens:
                out = self._ntokens
            if ok and ttft is not None:
                m.append((inst.ttft, ttft, ok_labels))
                if out is not None and out > 1 and duration > ttft:
                    m.append((inst.tpot, (duration - ttft) / (out - 1), ok_labels))
            if record.prompt_tokens is not None:
                m.append((inst.token_usage, record.prompt_tokens, (*ok_labels, "input")))
            hop_labels = (self._model_label, variant_label, bits, self._role)
            if out is not None:
                m.append((inst.token_usage, out, (*ok_labels, "output")))
                m.append((inst.hops_atomic, out, hop_labels))
            logical = self._logical_hops(record.text)
            if logical is not None:
                m.append((inst.hops_logical, logical, hop_labels))
            if record.reference_depth is not None:
                m.append((inst.hops_reference, record.reference_depth, hop_labels))
            agent_hops = max(record.agent_turns_before or self._turns, self._chain_pos)
            m.append((inst.hops_agent, agent_hops, hop_labels))
            inst.hot.record_all(m)
            ticket = d.meter.request_finished(
                self._meter_key, self._group, duration_s=duration, batch_size=record.batch_size
            )
            if self._span is not None:
                self._finish_span(record, response_id, response_model, out, batch, bucket, err)
                self._span.set_attribute(Key.HOPS_AGENT, agent_hops)
                if logical is not None:
                    self._span.set_attribute(Key.HOPS_LOGICAL, logical)
            energy_labels = (*hop_labels, bucket)
            ticket.add_done_callback(lambda share: self._on_energy(share, energy_labels, end_ns))
            return PendingRecord(record, ticket, d.finish_timeout_s, self._fill(record, batch))
        except Exception as exc:
            d.reporter.report("request", exc)
            if self._span is not None:
                self._span.end()
            return PendingRecord(record)

    def _logical_hops(self, text: str) -> int | None:
        if not text:
            return None
        try:
            return logical_hops(text)
        except Exception as exc:
            self._d.reporter.report("hops", exc)
            return None

    def _fill(self, record: RequestRecord, batch: int | None) -> dict[str, Any]:
        """Record fields telemetry knows and the proxy left empty (applied once, later)."""
        changes: dict[str, Any] = {}
        if record.trace_id is None and self._trace_id is not None:
            changes["trace_id"] = self._trace_id
        if record.session_id is None and self._session is not None:
            changes["session_id"] = self._session
        if record.agent_turns_before == 0 and self._turns:
            changes["agent_turns_before"] = self._turns
        if record.batch_size is None and batch is not None:
            changes["batch_size"] = batch
        return changes

    def _finish_span(
        self,
        record: RequestRecord,
        response_id: str | None,
        response_model: str | None,
        out: int | None,
        batch: int | None,
        bucket: str,
        err: str | None,
    ) -> None:
        span = self._span
        assert span is not None
        attrs: dict[str, Any] = {Key.BATCH_SIZE_BUCKET: bucket}
        if response_id:
            attrs[Key.RESPONSE_ID] = response_id[:_MAX_ATTR]
        if response_model:
            attrs[Key.RESPONSE_MODEL] = response_model[:_MAX_ATTR]
        if record.finish_reason:
            attrs[Key.RESPONSE_FINISH_REASONS] = (record.finish_reason[:_MAX_ATTR],)
        if record.prompt_tokens is not None:
            attrs[Key.USAGE_INPUT_TOKENS] = record.prompt_tokens
        if out is not None:
            attrs[Key.USAGE_OUTPUT_TOKENS] = out
            attrs[Key.HOPS_ATOMIC] = out
        if batch is not None:
            attrs[Key.BATCH_SIZE] = batch
        if record.reference_depth is not None:
            attrs[Key.HOPS_REFERENCE] = record.reference_depth
        if self._d.capture_content and record.text:
            message = {
                "role": "assistant",
                "parts": [{"type": "text", "content": record.text}],
                "finish_reason": record.finish_reason or "",
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
