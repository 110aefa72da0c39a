"""Reading Anthropic's Messages API (``POST /v1/messages``) as it passes through.

Stream events (each SSE ``data`` payload, a JSON object whose ``type`` is the event name):

- ``message_start``: the message's id and model, and ``usage.input_tokens``;
- ``content_block_start``: a block begins at an ``index``; a ``tool_use`` block names its tool
  (its ``input`` is ``{}`` here and arrives as ``input_json_delta`` fragments);
- ``content_block_delta``: ``text_delta`` (answer text), ``input_json_delta`` (a tool call's
  arguments, an answer token too), ``thinking_delta`` (reasoning); ``signature_delta`` and
  ``citations_delta`` carry no generated tokens;
- ``message_delta``: ``stop_reason`` and the cumulative ``usage.output_tokens`` (some servers
  repeat ``input_tokens`` here; the later figure wins);
- ``message_stop``; ``ping``; ``error`` (``{"type": "error", "error": {"type", "message"}}``).

A whole body is a ``Message`` (content blocks ``text``, ``thinking``, ``tool_use`` whose
``input`` is an object: its arguments are that object as compact JSON), or Anthropic's error
body. Reasoning tokens are ``usage.output_tokens_details.thinking_tokens`` where reported;
Anthropic's usage has no such figure otherwise, so it is ``None`` (unknown), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from proxy.formats._reader import ReaderBase, as_int, load_object

__all__ = ["MessagesReader", "parse_body"]


@dataclass(slots=True)
class MessagesReader(ReaderBase):
    """Collects what a Messages API answer said, event by event or from a whole body."""

    _EMPTY_ARGUMENTS: ClassVar[str] = "{}"
    """A streamed ``tool_use`` block that received no ``input_json_delta`` had input ``{}``."""

    def add_chunk(self, obj: dict[str, Any]) -> None:
        """One parsed stream event."""
        kind = obj.get("type")
        if kind == "content_block_delta":
            self._read_delta(obj.get("index"), obj.get("delta"))
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                self._name_call(obj.get("index"), block.get("name"))
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self.response_id = message.get("id")
                self.response_model = message.get("model")
                self._merge_usage(message.get("usage"))
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self.finish_reason = str(delta["stop_reason"])
            self._merge_usage(obj.get("usage"))
        elif kind == "error":
            self._error_from(obj.get("error"))

    def _read_delta(self, index: Any, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            self._generated(content=True)
            self.pieces.append(str(delta.get("text", "")))
        elif kind == "input_json_delta":
            self._generated(content=True)
            self._call(index).arguments.append(str(delta.get("partial_json", "")))
        elif kind == "thinking_delta":
            self._generated(content=False)
            self.reasoning_pieces.append(str(delta.get("thinking", "")))

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            merged = dict(self.usage or {})
            merged.update({k: v for k, v in usage.items() if v is not None})
            self.usage = merged

    def add_body(self, obj: dict[str, Any]) -> None:
        """A whole ``Message`` (or Anthropic's error body)."""
        if obj.get("type") == "error" or ("error" in obj and "content" not in obj):
            self._error_from(obj.get("error"))
            return
        self.response_id = obj.get("id")
        self.response_model = obj.get("model")
        self._merge_usage(obj.get("usage"))
        reason = obj.get("stop_reason")
        self.finish_reason = str(reason) if reason else None
        for index, block in enumerate(obj.get("content") or ()):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                self.pieces.append(str(block.get("text", "")))
            elif kind == "thinking":
                self.reasoning_pieces.append(str(block.get("thinking", "")))
            elif kind == "tool_use":
                self._name_call(index, block.get("name"))
                self._call(index).final = orjson.dumps(block.get("input", {})).decode()

    def tokens(self) -> tuple[int | None, int | None]:
        """(input tokens, output tokens) from usage; ``None`` where not reported."""
        u = self.usage or {}
        return as_int(u.get("input_tokens")), as_int(u.get("output_tokens"))

    @property
    def reasoning_tokens(self) -> int | None:
        """``usage.output_tokens_details.thinking_tokens``, where reported."""
        details = (self.usage or {}).get("output_tokens_details")
        return as_int(details.get("thinking_tokens")) if isinstance(details, dict) else None


def parse_body(reader: MessagesReader, body: bytes) -> None:
    """Fill ``reader`` from a complete (non-streaming) body; ignore what isn't JSON."""
    obj = load_object(body)
    if obj is not None:
        reader.add_body(obj)
