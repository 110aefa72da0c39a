"""OpenAI's response shapes, serialized with orjson: whole bodies, stream chunks, errors.

Chat streams open with a ``{"role": "assistant", "content": ""}`` delta, carry one content
delta per piece of text, close with an empty delta and the ``finish_reason``, then (when usage
was asked for) a chunk with ``"choices": []`` and the ``usage``, then ``[DONE]``. Completion
streams carry ``text`` instead of a delta. Every chunk of one response shares its id.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from backends.base import Endpoint

__all__ = ["DONE", "ChunkWriter", "completion_body", "error_body", "usage"]

DONE = b"[DONE]"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_body(
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )


def _new_id(endpoint: Endpoint) -> str:
    return ("chatcmpl-" if endpoint == "chat" else "cmpl-") + secrets.token_hex(12)


def completion_body(
    endpoint: Endpoint,
    *,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> bytes:
    """A whole ``chat.completion`` or ``text_completion`` object."""
    choice: dict[str, Any]
    if endpoint == "chat":
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return orjson.dumps(
        {
            "id": _new_id(endpoint),
            "object": "chat.completion" if endpoint == "chat" else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage(prompt_tokens, completion_tokens),
        }
    )


@dataclass(slots=True)
class ChunkWriter:
    """The SSE ``data`` payloads of one streamed response."""

    endpoint: Endpoint
    model: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            self.id = _new_id(self.endpoint)

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion.chunk" if self.endpoint == "chat" else "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                **extra,
            }
        )

    def _choice(self, text: str | None, finish_reason: str | None, role: bool) -> dict[str, Any]:
        if self.endpoint == "completions":
            return {
                "index": 0,
                "text": text or "",
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def opening(self) -> bytes | None:
        """The chat stream's role chunk; completion streams have none."""
        if self.endpoint != "chat":
            return None
        return self._chunk([self._choice("", None, role=True)])

    def content(self, text: str) -> bytes:
        return self._chunk([self._choice(text, None, role=False)])

    def finish(self, finish_reason: str) -> bytes:
        return self._chunk([self._choice(None, finish_reason, role=False)])

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return self._chunk([], usage=usage(prompt_tokens, completion_tokens))
