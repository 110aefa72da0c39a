"""Reading chat and text completions as they pass through; validating what the proxy reads.

The proxy forwards upstream bytes unchanged; :class:`Accumulator` only *looks* at them, to
fill the :class:`~core.records.RequestRecord` that telemetry and scoring need: the text,
the reasoning text (``reasoning_content``, or vLLM's newer ``reasoning``), the tool calls
(assembled from streamed ``tool_calls`` deltas by their ``index``, or read whole from a
body), usage (with ``completion_tokens_details.reasoning_tokens``), the finish reason, and
the times of the first generated token and of the first answer token. Only choice ``0`` is
read (``n`` > 1 answers are passed through, not scored). The Responses and Messages readers
in :mod:`proxy.formats` have the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.errors import APIError
from proxy.formats._reader import ReaderBase, as_int, load_object

__all__ = ["Accumulator", "parse_body", "validate_request"]


_SPECIAL_DELTA_KEYS = frozenset({"tool_calls", "reasoning_content", "reasoning", "function_call"})
"""Delta keys that need the full reading (anything but plain content)."""


def _reasoning_of(obj: dict[str, Any]) -> str | None:
    value = obj.get("reasoning_content") or obj.get("reasoning")
    return value if isinstance(value, str) else None


def _first_choice(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Choice 0 of a chunk or body (a chunk of an ``n`` > 1 stream may carry another index)."""
    choices = obj.get("choices")
    if not choices or not isinstance(choices, list):
        return None
    first = choices[0]  # the usual case, checked before any loop
    if isinstance(first, dict) and first.get("index", 0) == 0:
        return first
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


@dataclass(slots=True)
class Accumulator(ReaderBase):
    """Collects what a chat or text completion said, chunk by chunk or from a whole body."""

    def add_chunk(self, obj: dict[str, Any]) -> None:
        """One parsed ``chat.completion.chunk`` / ``text_completion`` stream event."""
        # The hot path, once per streamed token: one choice whose delta holds only content.
        choices = obj.get("choices")
        if self.response_id is not None and type(choices) is list and len(choices) == 1:
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            if (
                type(delta) is dict
                and not choice.get("finish_reason")
                and choice.get("index", 0) == 0
                and not obj.get("usage")
                and not _SPECIAL_DELTA_KEYS.intersection(delta)
            ):
                content = delta.get("content")
                if type(content) is str and content:
                    self._generated(content=True)
                    self.pieces.append(content)
                return
        self._add_chunk(obj)

    def _add_chunk(self, obj: dict[str, Any]) -> None:
        if self.response_id is None:
            self.response_id = obj.get("id")
            self.response_model = obj.get("model")
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        if "error" in obj and not obj.get("choices"):
            self._error_from(obj["error"])
            return
        choice = _first_choice(obj)
        if choice is None:
            return
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._read_delta(delta)
        else:
            text = choice.get("text")
            if isinstance(text, str) and text:
                self._generated(content=True)
                self.pieces.append(text)
        reason = choice.get("finish_reason")
        if reason:
            self.finish_reason = reason

    def _read_delta(self, delta: dict[str, Any]) -> None:
        content = delta.get("content")
        text = content if isinstance(content, str) else ""
        raw_calls = delta.get("tool_calls")
        calls = raw_calls if isinstance(raw_calls, list) else []
        reasoning = _reasoning_of(delta)
        if reasoning is None and not text and not calls:
            return
        self._generated(content=bool(text or calls))
        if reasoning is not None:
            self.reasoning_pieces.append(reasoning)
        if text:
            self.pieces.append(text)
        for position, call in enumerate(calls):
            if isinstance(call, dict):
                self._add_call_delta(call.get("index", position), call)

    def _add_call_delta(self, key: Any, call: dict[str, Any]) -> None:
        fn = call.get("function")
        if not isinstance(fn, dict):
            return
        self._name_call(key, fn.get("name"))
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            self._call(key).arguments.append(args)

    def add_body(self, obj: dict[str, Any]) -> None:
        """A whole ``chat.completion`` / ``text_completion`` body (or an error body)."""
        if "error" in obj:
            self._error_from(obj["error"])
            return
        self.response_id = obj.get("id")
        self.response_model = obj.get("model")
        self.usage = obj.get("usage") or None
        choice = _first_choice(obj)
        if choice is None:
            return
        message = choice.get("message")
        if isinstance(message, dict):
            text = message.get("content")
            reasoning = _reasoning_of(message)
            if reasoning is not None:
                self.reasoning_pieces.append(reasoning)
            for position, call in enumerate(message.get("tool_calls") or ()):
                if isinstance(call, dict):
                    self._add_call_delta(position, call)
        else:
            text = choice.get("text")
        if isinstance(text, str):
            self.pieces.append(text)
        self.finish_reason = choice.get("finish_reason")

    def tokens(self) -> tuple[int | None, int | None]:
        """(prompt tokens, completion tokens) from usage; ``None`` where not reported."""
        u = self.usage or {}
        return as_int(u.get("prompt_tokens")), as_int(u.get("completion_tokens"))

    @property
    def reasoning_tokens(self) -> int | None:
        """``usage.completion_tokens_details.reasoning_tokens``, where reported."""
        details = (self.usage or {}).get("completion_tokens_details")
        return as_int(details.get("reasoning_tokens")) if isinstance(details, dict) else None


def parse_body(acc: Accumulator, body: bytes) -> None:
    """Fill ``acc`` from a complete (non-streaming) response body; ignore what isn't JSON."""
    obj = load_object(body)
    if obj is not None:
        acc.add_body(obj)


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
