"""The records that travel from the proxy to telemetry and scoring.

One finished request (primary, shadow copy or canary probe) is described by one
:class:`RequestRecord`; a mirrored request and its primary are tied together by a
:class:`ShadowPair`. Both are plain frozen dataclasses so that ``scoring`` never sees a web
framework object and every consumer can be tested with hand-made records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AttemptOutcome", "Operation", "RequestRecord", "Role", "ShadowPair", "ToolCall"]

Role = Literal["primary", "shadow", "canary"]
Operation = Literal["chat", "text_completion", "responses", "messages", "embeddings"]
"""The API a request used: chat completions, (legacy) completions, the Responses API,
Anthropic's Messages API or embeddings."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model made: the tool's name and its arguments as the model wrote
    them (JSON text, not parsed: comparison parses and canonicalises it)."""

    name: str
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What is known about one finished request to one variant.

    Times are seconds (``started_at`` is Unix time, the rest are durations); token counts
    are the upstream's own usage figures where it reported them, else ``None``.
    ``text`` is the generated completion; it stays in process memory for grading and shadow
    comparison and is never exported as a metric label or logged unless content capture is
    switched on.
    """

    request_id: str
    model: str
    variant: str
    bits: int
    role: Role
    operation: Operation
    stream: bool
    status: int
    started_at: float
    duration_s: float
    time_to_first_token_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    """The tool calls of the answer (chat ``tool_calls``, Responses ``function_call`` items,
    Messages ``tool_use`` blocks), in order; in memory only, like ``text``."""
    reasoning_text: str = ""
    """Reasoning the model emitted apart from its answer (``reasoning_content``/``reasoning``);
    in memory only."""
    reasoning_tokens: int | None = None
    """Reasoning tokens from the usage figures, where the upstream reported them."""
    time_to_first_content_s: float | None = None
    """Time to the first answer (non-reasoning) token; ``time_to_first_token_s`` counts the
    first generated token of any kind."""
    error_type: str | None = None
    """``None`` on success, else the OpenAI error ``type`` the client was (or would be) sent."""
    batch_size: int | None = None
    """Number of requests the backend was decoding together while this one ran, if known."""
    pair_id: str | None = None
    failed_over_from: tuple[str, ...] = ()
    """Variants that were tried first and failed before this one answered."""
    agent_turns_before: int = 0
    """Prior assistant and tool turns in ``messages``: this call's position in an agent chain."""
    trace_id: str | None = None
    session_id: str | None = None
    expected_answer: str | None = None
    """Reference answer for evaluation traffic (client-tagged or canary), else ``None``."""
    dataset: str | None = None
    prompt: str = ""
    """The prompt of evaluation traffic (last user message, or a completion's prompt), so a
    graded answer can be traced to its question; empty for other traffic. In memory only: the
    evaluation log keeps its SHA-256, and the text itself only when content capture is on."""
    reference_depth: int | None = None
    energy_j: float | None = None
    """Energy apportioned to this request (J); ``None`` when no method could measure it."""
    energy_method: str = "none"
    """How ``energy_j`` was obtained: ``nvml_counter``, ``nvml_power``, ``hli`` or ``none``."""

    attempt_id: str = ""
    """This upstream attempt's own id: every failover attempt, shadow copy and canary probe
    gets a fresh one (energy is booked under it), while ``request_id`` is the client's."""
    agent_chain_position: int = 0
    """Calls seen before this one sharing its session id or client trace id (primaries only)."""
    response_id: str | None = None
    """The upstream's id of its answer (``chatcmpl-…``, ``resp_…``, ``msg_…``)."""

    @property
    def ok(self) -> bool:
        return self.error_type is None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What the proxy saw of one finished upstream attempt, handed to telemetry's observer.

    The pipeline builds it from the response it relayed (or failed to get); telemetry records
    metrics and spans from it and returns its own facts, and the :class:`RequestRecord` is
    then built once from the request context, this outcome and those facts.
    """

    status: int
    error_type: str | None
    duration_s: float
    stream: bool = False
    time_to_first_token_s: float | None = None
    time_to_first_content_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    finish_reason: str | None = None
    text: str = ""
    reasoning_text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    batch_size: int | None = None
    """Largest batch the backend decoded this request in, when the backend reports it."""
    response_id: str | None = None
    response_model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class ShadowPair:
    """A user's request (``primary``) and its mirrored copy to another variant (``shadow``).

    ``shadow`` is ``None`` when the copy could not be run (dropped by the concurrency cap);
    ``dropped_reason`` then says why.
    """

    pair_id: str
    primary: RequestRecord
    shadow: RequestRecord | None
    dropped_reason: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
