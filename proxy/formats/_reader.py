"""What every response reader collects, whatever the API: the shared half of the readers.

A reader only *looks* at the bytes the proxy forwards unchanged. It is fed one parsed stream
event at a time (``add_chunk``) or a whole non-streaming body (``add_body``) and keeps the
answer's text, its reasoning text, its tool calls (assembled from streamed fragments), the
usage figures, the finish reason, the response id and model, an upstream error, and two
``time.perf_counter()`` marks: the first generated token of any kind (reasoning, answer text
or tool-call arguments) and the first *answer* token (text or tool call, not reasoning).
``chunks`` counts the stream events that carried generated tokens, so a token hook can
follow generation as it happens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from core.records import ToolCall

__all__ = ["ReaderBase", "as_int", "load_object"]


def as_int(value: Any) -> int | None:
    """``value`` if it is a real integer (not a bool), else ``None``: usage figures only."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is not one (never raises)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


@dataclass(slots=True)
class _CallDraft:
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    final: str | None = None
    """The whole arguments when the API repeats them at the end (they win over the pieces)."""


@dataclass(slots=True)
class ReaderBase:
    """State and helpers shared by the chat, Responses and Messages readers."""

    started: float
    """``time.perf_counter()`` when the request started: the origin of the two first-token times."""
    pieces: list[str] = field(default_factory=list)
    reasoning_pieces: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    """The upstream's usage object as it sent it (shapes differ per API)."""
    finish_reason: str | None = None
    """In the API's own words: chat ``stop``/``length``/``tool_calls``; Responses ``completed``
    or the ``incomplete_details.reason`` (``max_output_tokens``…) or ``failed``; Messages
    ``end_turn``/``tool_use``/``max_tokens``…"""
    first_token_at: float | None = None
    first_content_at: float | None = None
    chunks: int = 0
    """Stream events that carried generated tokens (reasoning, text or tool-call arguments)."""
    error: dict[str, Any] | None = None
    """The upstream's error object (``message``, ``type``, …) when it reported one."""
    response_id: str | None = None
    response_model: str | None = None
    _calls: dict[Any, _CallDraft] = field(default_factory=dict)
    _EMPTY_ARGUMENTS: ClassVar[str] = ""
    """The arguments of a call that received none (the API's own convention)."""

    # -- what the readers call while reading --------------------------------------------------

    def _generated(self, *, content: bool) -> None:
        """Mark one event that carried generated tokens (``content``: an answer, not reasoning)."""
        self.chunks += 1
        if self.first_content_at is None and (content or self.first_token_at is None):
            now = time.perf_counter()  # read the clock only while a mark is still unset
            if self.first_token_at is None:
                self.first_token_at = now
            if content:
                self.first_content_at = now

    def _call(self, key: Any) -> _CallDraft:
        draft = self._calls.get(key)
        if draft is None:
            draft = self._calls[key] = _CallDraft()
        return draft

    def _name_call(self, key: Any, name: Any) -> None:
        if isinstance(name, str) and name:
            draft = self._call(key)
            if not draft.name:  # servers send the name whole, once; ignore any repeat
                draft.name = name

    def _error_from(self, err: Any) -> None:
        self.error = err if isinstance(err, dict) else {"message": str(err)}

    # -- what the pipeline reads at the end ---------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning_pieces)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The answer's tool calls in the order they began; calls with no name are dropped."""
        return tuple(
            ToolCall(
                d.name,
                d.final if d.final is not None else "".join(d.arguments) or self._EMPTY_ARGUMENTS,
            )
            for d in self._calls.values()
            if d.name
        )

    @property
    def ttft_s(self) -> float | None:
        """Seconds to the first generated token, reasoning included."""
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def ttfc_s(self) -> float | None:
        """Seconds to the first answer token (text or tool call), reasoning excluded."""
        return None if self.first_content_at is None else self.first_content_at - self.started
