"""Every metric name, attribute key, unit and bucket boundary quanttrap emits, in one place.

The GenAI names follow OpenTelemetry semantic conventions **v1.41.0**
(``docs/gen-ai/gen-ai-spans.md`` and ``gen-ai-metrics.md``), whose status is still
"Development": a rename upstream is one edit here. quanttrap's own names use the
``quanttrap.`` prefix. The Prometheus names in the comments are what the OpenTelemetry
Prometheus exporter makes of them (dots become underscores, the unit is appended, counters
get ``_total``); ``tests/telemetry/test_metric_names.py`` checks them against real output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "AGENT_HOP_BUCKETS",
    "ATOMIC_HOP_BUCKETS",
    "CAPTURE_CONTENT_ENV",
    "ENERGY_BUCKETS_J",
    "ERROR_TYPE_OTHER",
    "HISTOGRAMS",
    "LOGICAL_HOP_BUCKETS",
    "SCHEMA_URL",
    "SCOPE_NAME",
    "SEMCONV_VERSION",
    "HistogramSpec",
    "Key",
    "Metric",
    "provider_for_backend_kind",
]

SEMCONV_VERSION: Final = "1.41.0"
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.41.0"
SCOPE_NAME: Final = "quanttrap"
CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ERROR_TYPE_OTHER: Final = "_OTHER"
"""``error.type`` fallback value defined by the convention."""


class Key:
    """Attribute keys (span attributes and metric labels)."""

    # GenAI (v1.41.0)
    OPERATION_NAME: Final = "gen_ai.operation.name"
    PROVIDER_NAME: Final = "gen_ai.provider.name"
    REQUEST_MODEL: Final = "gen_ai.request.model"
    REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
    REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
    REQUEST_TOP_P: Final = "gen_ai.request.top_p"
    REQUEST_SEED: Final = "gen_ai.request.seed"
    REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
    REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
    REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
    RESPONSE_MODEL: Final = "gen_ai.response.model"
    RESPONSE_ID: Final = "gen_ai.response.id"
    RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
    USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
    TOKEN_TYPE: Final = "gen_ai.token.type"
    CONVERSATION_ID: Final = "gen_ai.conversation.id"
    INPUT_MESSAGES: Final = "gen_ai.input.messages"
    OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
    # General (stable)
    SERVER_ADDRESS: Final = "server.address"
    SERVER_PORT: Final = "server.port"
    ERROR_TYPE: Final = "error.type"
    # quanttrap
    VARIANT: Final = "quanttrap.variant"
    PRECISION_BITS: Final = "quanttrap.precision_bits"
    ROLE: Final = "quanttrap.role"
    BATCH_SIZE_BUCKET: Final = "quanttrap.batch_size_bucket"
    AGENT_HOP_BUCKET: Final = "quanttrap.agent.hop_bucket"
    TOOL_CALLS: Final = "quanttrap.agent.tool_calls"
    REASONING_TOKENS: Final = "gen_ai.usage.reasoning_tokens"
    TIME_TO_FIRST_CONTENT: Final = "quanttrap.time_to_first_content"
    BATCH_SIZE: Final = "quanttrap.batch_size"
    STATUS_CLASS: Final = "quanttrap.status_class"
    REQUEST_ID: Final = "quanttrap.request_id"
    PAIR_ID: Final = "quanttrap.pair_id"
    ATTEMPT_ID: Final = "quanttrap.attempt_id"
    API: Final = "quanttrap.api"
    """The API the client called (chat, text_completion, responses, messages, embeddings)."""
    ENERGY_METHOD: Final = "quanttrap.energy_method"
    ENERGY_J: Final = "quanttrap.energy_j"
    GPU_UUID: Final = "quanttrap.gpu.uuid"
    FAILOVER_FROM: Final = "quanttrap.failover.from"
    FAILOVER_TO: Final = "quanttrap.failover.to"
    SHADOW_OUTCOME: Final = "quanttrap.shadow.outcome"
    TELEMETRY_COMPONENT: Final = "quanttrap.telemetry.component"
    HOPS_ATOMIC: Final = "quanttrap.hops.atomic"
    HOPS_LOGICAL: Final = "quanttrap.hops.logical"
    HOPS_REFERENCE: Final = "quanttrap.hops.reference"
    HOPS_AGENT: Final = "quanttrap.hops.agent"
    AGENT_TURNS_BEFORE: Final = "quanttrap.agent.turns_before"
    AGENT_CHAIN_POSITION: Final = "quanttrap.agent.chain_position"


class Metric:
    """Instrument names (OpenTelemetry) with their Prometheus names."""

    # GenAI (v1.41.0)
    REQUEST_DURATION: Final = "gen_ai.server.request.duration"
    """``gen_ai_server_request_duration_seconds`` (histogram)"""
    TIME_TO_FIRST_TOKEN: Final = "gen_ai.server.time_to_first_token"
    """``gen_ai_server_time_to_first_token_seconds`` (histogram)"""
    TIME_PER_OUTPUT_TOKEN: Final = "gen_ai.server.time_per_output_token"
    """``gen_ai_server_time_per_output_token_seconds`` (histogram)"""
    TOKEN_USAGE: Final = "gen_ai.client.token.usage"
    """``gen_ai_client_token_usage`` (histogram; the ``{token}`` unit adds no suffix)"""
    # quanttrap, per request
    REQUESTS: Final = "quanttrap.requests"
    """``quanttrap_requests_total``"""
    IN_FLIGHT: Final = "quanttrap.requests.in_flight"
    """``quanttrap_requests_in_flight`` (gauge)"""
    FAILOVERS: Final = "quanttrap.failovers"
    """``quanttrap_failovers_total``"""
    SHADOW_COPIES: Final = "quanttrap.shadow.copies"
    """``quanttrap_shadow_copies_total``"""
    REQUEST_ENERGY: Final = "quanttrap.request.energy"
    """``quanttrap_request_energy_joules`` (histogram)"""
    HOPS_ATOMIC: Final = "quanttrap.hops.atomic"
    """``quanttrap_hops_atomic`` (histogram)"""
    HOPS_LOGICAL: Final = "quanttrap.hops.logical"
    """``quanttrap_hops_logical`` (histogram)"""
    HOPS_REFERENCE: Final = "quanttrap.hops.reference"
    """``quanttrap_hops_reference`` (histogram)"""
    HOPS_AGENT: Final = "quanttrap.hops.agent"
    """``quanttrap_hops_agent`` (histogram)"""
    AGENT_TOOL_CALLS: Final = "quanttrap.agent.tool_calls"
    """``quanttrap_agent_tool_calls`` (histogram, by agent-hop bucket)"""
    REASONING_TOKENS: Final = "quanttrap.reasoning.tokens"
    """``quanttrap_reasoning_tokens`` (histogram)"""
    TIME_TO_FIRST_CONTENT: Final = "quanttrap.time_to_first_content"
    """``quanttrap_time_to_first_content_seconds`` (histogram)"""
    # quanttrap, sampled
    ENERGY_ATTRIBUTED: Final = "quanttrap.energy.attributed"
    """``quanttrap_energy_attributed_joules_total``"""
    ENERGY_IDLE: Final = "quanttrap.energy.idle"
    """``quanttrap_energy_idle_joules_total``"""
    ENERGY_METHOD_INFO: Final = "quanttrap.energy.method_info"
    """``quanttrap_energy_method_info`` (gauge, 1 per variant and method in use)"""
    GPU_POWER: Final = "quanttrap.gpu.power"
    """``quanttrap_gpu_power_watts`` (gauge)"""
    GPU_MEMORY_USED: Final = "quanttrap.gpu.memory.used"
    """``quanttrap_gpu_memory_used_bytes`` (gauge)"""
    UPSTREAM_RUNNING: Final = "quanttrap.upstream.requests_running"
    """``quanttrap_upstream_requests_running`` (gauge)"""
    UPSTREAM_WAITING: Final = "quanttrap.upstream.requests_waiting"
    """``quanttrap_upstream_requests_waiting`` (gauge)"""
    UPSTREAM_KV_CACHE: Final = "quanttrap.upstream.kv_cache_usage"
    """``quanttrap_upstream_kv_cache_usage`` (gauge, 0..1)"""
    TELEMETRY_ERRORS: Final = "quanttrap.telemetry.errors"
    """``quanttrap_telemetry_errors_total``"""


# Explicit bucket boundaries. The four GenAI lists are the convention's (v1.41.0); the SDK's
# default boundaries (0 ... 10000) would put every sub-second latency in one bucket.
_DURATION_BUCKETS_S = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_TTFT_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
_TPOT_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
ENERGY_BUCKETS_J: Final = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
    5000.0, 10000.0,
)  # fmt: skip
"""Per-request energy: a few tokens on a small GPU (0.1 J) to a long generation on a
tensor-parallel 70B deployment (10 kJ); the paper's Mistral-7B figures are 185-503 J/query."""
ATOMIC_HOP_BUCKETS: Final = (
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
)  # fmt: skip
LOGICAL_HOP_BUCKETS: Final = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 32)
"""The paper stratifies GSM8K by 1-2, 3-4 and more steps: one bucket per step up to 8."""
AGENT_HOP_BUCKETS: Final = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)


@dataclass(frozen=True, slots=True)
class HistogramSpec:
    """One histogram instrument: name, UCUM unit, description and explicit boundaries."""

    name: str
    unit: str
    description: str
    boundaries: tuple[float, ...]


HISTOGRAMS: Final = {
    s.name: s
    for s in (
        HistogramSpec(
            Metric.REQUEST_DURATION,
            "s",
            "Generative AI server request duration such as time-to-last byte or last output token.",
            _DURATION_BUCKETS_S,
        ),
        HistogramSpec(
            Metric.TIME_TO_FIRST_TOKEN,
            "s",
            "Time to generate first token for successful responses.",
            _TTFT_BUCKETS_S,
        ),
        HistogramSpec(
            Metric.TIME_PER_OUTPUT_TOKEN,
            "s",
            "Time per output token generated after the first token for successful responses.",
            _TPOT_BUCKETS_S,
        ),
        HistogramSpec(
            Metric.TOKEN_USAGE,
            "{token}",
            "Number of input and output tokens used.",
            tuple(float(b) for b in _TOKEN_BUCKETS),
        ),
        HistogramSpec(
            Metric.REQUEST_ENERGY,
            "J",
            "GPU energy apportioned to one request (its share of each shared batch interval; "
            "idle power excluded).",
            ENERGY_BUCKETS_J,
        ),
        HistogramSpec(
            Metric.HOPS_ATOMIC,
            "{token}",
            "Atomic hops per request: generated tokens (one forward pass each).",
            tuple(float(b) for b in ATOMIC_HOP_BUCKETS),
        ),
        HistogramSpec(
            Metric.HOPS_LOGICAL,
            "{hop}",
            "Logical hops per request: reasoning steps found in the completion.",
            tuple(float(b) for b in LOGICAL_HOP_BUCKETS),
        ),
        HistogramSpec(
            Metric.HOPS_REFERENCE,
            "{hop}",
            "Reasoning depth of the reference answer of graded evaluation requests.",
            tuple(float(b) for b in LOGICAL_HOP_BUCKETS),
        ),
        HistogramSpec(
            Metric.HOPS_AGENT,
            "{hop}",
            "Agent hops: the request's position in an agent's chain of calls.",
            tuple(float(b) for b in AGENT_HOP_BUCKETS),
        ),
        HistogramSpec(
            Metric.AGENT_TOOL_CALLS,
            "{call}",
            "Tool calls in one answer, by the agent-hop position of the call that made them.",
            (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0),
        ),
        HistogramSpec(
            Metric.REASONING_TOKENS,
            "{token}",
            "Reasoning tokens per answer, as the upstream reported them in its usage.",
            tuple(float(b) for b in _TOKEN_BUCKETS),
        ),
        HistogramSpec(
            Metric.TIME_TO_FIRST_CONTENT,
            "s",
            "Time to the first answer token (after any reasoning) for successful responses; "
            "gen_ai.server.time_to_first_token counts the first generated token of any kind.",
            _TTFT_BUCKETS_S,
        ),
    )
}

_PROVIDERS: Final = {"openai": "openai", "vllm": "vllm", "engine": "quanttrap"}


def provider_for_backend_kind(kind: str) -> str:
    """``gen_ai.provider.name`` for a backend kind.

    An ``openai`` backend speaks the OpenAI API flavour (the convention's ``openai`` value,
    whatever server implements it: ``server.address`` tells which); a vLLM server quanttrap
    launches is ``vllm`` and the in-process engine ``quanttrap`` (custom values, allowed by
    the convention when no well-known value applies).
    """
    return _PROVIDERS.get(kind, kind)
