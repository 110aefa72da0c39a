"""Helpers for the telemetry tests: reading a registry, building records and telemetry."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from core.records import AttemptOutcome, RequestRecord
from telemetry import (
    FakeEnergySource,
    PendingFacts,
    RequestObserver,
    Telemetry,
    TelemetryConfig,
    TelemetryFacts,
    VariantSpec,
)
from telemetry.hops import count_prior_turns

MODEL = "m"
VARIANTS = (
    VariantSpec(MODEL, "fp16", 16, gpus="all", server_address="gpu-host", server_port=8001),
    VariantSpec(MODEL, "nf4", 4, rated_power_w=300.0),
    VariantSpec(MODEL, "int8", 8),
)


def samples(
    registry: CollectorRegistry, name: str, **labels: str
) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` whose labels include ``labels``."""
    out = []
    for family in registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out.append((dict(s.labels), s.value))
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """Sum of the matching samples, ``None`` if there is none."""
    found = samples(registry, name, **labels)
    return sum(v for _, v in found) if found else None


def record(**overrides: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "model": MODEL,
        "variant": "fp16",
        "bits": 16,
        "role": "primary",
        "operation": "chat",
        "stream": True,
        "status": 200,
        "started_at": time.time(),
        "duration_s": 0.5,
        "time_to_first_token_s": 0.1,
        "prompt_tokens": 12,
        "completion_tokens": 9,
        "finish_reason": "stop",
        "text": "3 * 4 = 12\nSo 12 + 1 = 13.\nThe answer is 13.",
    }
    fields.update(overrides)
    return RequestRecord(**fields)


def make_telemetry(
    *,
    variants: Sequence[VariantSpec] = VARIANTS,
    source: FakeEnergySource | None = None,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Telemetry, CollectorRegistry, InMemorySpanExporter]:
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    cfg = TelemetryConfig.model_validate(
        {"energy": {"sample_interval_ms": 10, "finish_timeout_s": 5.0}, **(config or {})}
    )
    tel = Telemetry.create(
        cfg,
        variants,
        registry=registry,
        energy_source=source if source is not None else FakeEnergySource(power_w=250.0),
        span_processor=SimpleSpanProcessor(exporter),
        environ=environ or {},
    )
    return tel, registry, exporter


_attempts = itertools.count(1)


class Observed:
    """An observer with the record-in, record-out calls the telemetry tests are written in:
    ``finish(record)`` hands telemetry the record's outcome and resolves to the record with
    telemetry's facts merged in (what the proxy's pipeline builds its record from)."""

    def __init__(self, obs: RequestObserver, turns: int, session: str | None) -> None:
        self.obs, self._turns, self._session = obs, turns, session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.obs, name)

    def finish(
        self,
        record: RequestRecord,
        *,
        response_id: str | None = None,
        response_model: str | None = None,
    ) -> Awaitable[RequestRecord]:
        """Finish now (as the pipeline does); await the result for the merged record."""
        outcome = AttemptOutcome(
            status=record.status,
            error_type=record.error_type,
            duration_s=record.duration_s,
            stream=record.stream,
            time_to_first_token_s=record.time_to_first_token_s,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            finish_reason=record.finish_reason,
            text=record.text,
            reasoning_text=record.reasoning_text,
            batch_size=record.batch_size,
            response_id=response_id,
            response_model=response_model,
        )
        pending = self.obs.finish(outcome)
        return self._merged(record, pending)

    async def _merged(self, record: RequestRecord, pending: PendingFacts) -> RequestRecord:
        facts: TelemetryFacts = await pending
        return dataclasses.replace(
            record,
            energy_j=facts.energy_j,
            energy_method=facts.energy_method,
            trace_id=record.trace_id or facts.trace_id,
            session_id=record.session_id or self._session,
            agent_turns_before=record.agent_turns_before or self._turns,
            batch_size=record.batch_size if record.batch_size is not None else facts.batch_size,
            agent_chain_position=facts.agent_chain_position,
        )


def start(
    tel: Telemetry,
    *,
    model: str,
    variant: str,
    role: Any = "primary",
    operation: Any = "chat",
    headers: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
    request_id: str = "",
    pair_id: str | None = None,
    reference_depth: int | None = None,
    attempt_id: str | None = None,
) -> Observed:
    """``tel.start_attempt`` from HTTP-ish inputs, as the proxy's route reads them."""
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    trace = {k: lower[k] for k in ("traceparent", "tracestate") if k in lower}
    session = lower.get("x-session-id")
    turns = count_prior_turns(body.get("messages") if body else None)
    obs = tel.start_attempt(
        model=model,
        variant=variant,
        attempt_id=attempt_id or f"attempt-{next(_attempts)}",
        role=role,
        operation=operation,
        request_id=request_id,
        pair_id=pair_id,
        trace_headers=trace,
        session_id=session,
        agent_turns_before=turns,
        reference_depth=reference_depth,
        body=body,
    )
    return Observed(obs, turns, session)
