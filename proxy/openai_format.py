"""Reading OpenAI responses as they pass through: text, usage, finish reason, first-token time.

The proxy forwards upstream bytes unchanged; these helpers only *look* at them, to fill the
:class:`~core.records.RequestRecord` that telemetry and scoring need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Accumulator", "parse_body", "validate_request"]

from proxy.errors import APIError


@dataclass(slots=True)
class Accumulator:
    """Collects what a completion said, chunk by chunk (streams) or at once (bodies)."""

    started: float
    pieces: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    first_token_at: float | None = None
    chunks: int = 0
    """Chunks that carried generated content (text or tool-call deltas)."""
    error: dict[str, Any] | None = None
    response_id: str | None = None
    response_model: str | None = None

    def add_chunk(self, obj: dict[str, Any]) -> None:
        if self.response_id is None:
            self.response_id = obj.get("id")
            self.response_model = obj.get("model")
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        choices = obj.get("choices")
        if choices:
            c0 = choices[0]
            delta = c0.get("delta")
            text = delta.get("content") if delta is not None else c0.get("text")
            if text or (delta is not None and delta.get("tool_calls")):
                if self.first_token_at is None:
                    self.first_token_at = time.perf_counter()
                self.chunks += 1
                if text:
                    self.pieces.append(text)
            reason = c0.get("finish_reason")
            if reason:
                self.finish_reason = reason
        elif "error" in obj:
            self.error = obj["error"]

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def tokens(self) -> tuple[int | None, int | None]:
        u = self.usage or {}
        return u.get("prompt_tokens"), u.get("completion_tokens")


def parse_body(acc: Accumulator, body: bytes) -> None:
    """Fill ``acc`` from a complete (non-streaming) response body; ignore what isn't JSON."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(obj, dict):
        return
    if "error" in obj:
        acc.error = (
            obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
        )
        return
    acc.response_id = obj.get("id")
    acc.response_model = obj.get("model")
    acc.usage = obj.get("usage") or None
    choices = obj.get("choices") or []
    if choices and isinstance(choices[0], dict):
        c0 = choices[0]
        message = c0.get("message")
        text = message.get("content") if isinstance(message, dict) else c0.get("text")
        if isinstance(text, str):
            acc.pieces.append(text)
        acc.finish_reason = c0.get("finish_reason")


_NUMBER_FIELDS: tuple[tuple[str, float, float], ...] = (
    ("temperature", 0.0, 2.0),
    ("top_p", 0.0, 1.0),
    ("presence_penalty", -2.0, 2.0),
    ("frequency_penalty", -2.0, 2.0),
)


def validate_request(endpoint: str, body: Any) -> None:
    """Check what the proxy itself interprets; everything else passes through untouched.

    Raises :class:`APIError` (400) naming the offending parameter, as OpenAI does.
    """
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "you must provide a model parameter", param="model")
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise APIError(
                400, "'messages' must be a non-empty array of message objects.", param="messages"
            )
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
                raise APIError(
                    400,
                    f"messages[{i}] must be an object with a string 'role'.",
                    param=f"messages[{i}]",
                )
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str | list) or (isinstance(prompt, list) and not prompt):
            raise APIError(400, "'prompt' must be a string or a non-empty array.", param="prompt")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise APIError(400, f"{stream!r} is not of type 'boolean' - 'stream'", param="stream")
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise APIError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if not isinstance(options, dict):
            raise APIError(400, "'stream_options' must be an object.", param="stream_options")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise APIError(
                400, f"{value!r} is not a valid '{name}': expected an integer >= 1", param=name
            )
    for name, low, high in _NUMBER_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise APIError(
                400,
                f"{value!r} is not a valid '{name}': expected a number in [{low}, {high}]",
                param=name,
            )
