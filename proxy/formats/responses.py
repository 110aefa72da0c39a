"""Reading the Responses API (``POST /v1/responses``) as it passes through.

Stream events (each SSE ``data`` payload, a JSON object whose ``type`` is the event name):

- ``response.created`` / ``response.in_progress``: the response id and model;
- ``response.output_text.delta`` (and ``response.refusal.delta``, which is an answer too but
  not its text): answer tokens;
- ``response.reasoning_text.delta`` and ``response.reasoning_summary_text.delta``: reasoning;
- ``response.output_item.added`` with a ``function_call`` item: a tool call's name, then its
  ``response.function_call_arguments.delta``\\ s (answer tokens) and ``.done`` (the whole
  arguments, which win); ``response.output_item.done`` repeats the whole item;
- ``response.completed`` / ``response.incomplete`` / ``response.failed``: the final response,
  with ``usage`` (``input_tokens``, ``output_tokens``,
  ``output_tokens_details.reasoning_tokens``) and, for a failure, its ``error``;
- ``error``: an error in the middle of a stream (``code``, ``message``, ``param``).

A whole body is a ``Response`` object (its ``output`` items: messages with ``output_text``
parts, ``reasoning`` items with ``reasoning_text`` content or a summary, ``function_call``
items), or an OpenAI error body. Unknown events and items are ignored, so built-in tools or
newer event types never break reading. Tool calls are keyed by ``output_index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.formats._reader import ReaderBase, as_int, load_object

__all__ = ["ResponsesReader", "parse_body"]

_ANSWER_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_REASONING_DELTAS = frozenset(
    {"response.reasoning_text.delta", "response.reasoning_summary_text.delta"}
)
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass(slots=True)
class ResponsesReader(ReaderBase):
    """Collects what a Responses API answer said, event by event or from a whole body."""

    def add_chunk(self, obj: dict[str, Any]) -> None:
        """One parsed stream event."""
        kind = obj.get("type")
        if kind in _ANSWER_DELTAS:
            self._generated(content=True)
            delta = obj.get("delta")
            if kind == "response.output_text.delta" and isinstance(delta, str):
                self.pieces.append(delta)
        elif kind in _REASONING_DELTAS:
            self._generated(content=False)
            delta = obj.get("delta")
            if isinstance(delta, str):
                self.reasoning_pieces.append(delta)
        elif kind == "response.function_call_arguments.delta":
            self._generated(content=True)
            delta = obj.get("delta")
            if isinstance(delta, str):
                self._call(obj.get("output_index")).arguments.append(delta)
        elif kind == "response.function_call_arguments.done":
            arguments = obj.get("arguments")
            if isinstance(arguments, str):
                self._call(obj.get("output_index")).final = arguments
            self._name_call(obj.get("output_index"), obj.get("name"))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._read_call_item(obj.get("output_index"), obj.get("item"))
        elif kind in ("response.created", "response.in_progress") or kind in _FINAL:
            self._read_response(obj.get("response"), final=kind in _FINAL)
        elif kind == "error":
            self.error = {
                "message": obj.get("message"),
                "type": "server_error" if obj.get("code") is None else str(obj.get("code")),
                "code": obj.get("code"),
                "param": obj.get("param"),
            }

    def _read_call_item(self, key: Any, item: Any) -> None:
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return
        self._name_call(key, item.get("name"))
        arguments = item.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._call(key).final = arguments

    def _read_response(self, response: Any, *, final: bool) -> None:
        if not isinstance(response, dict):
            return
        self.response_id = response.get("id") or self.response_id
        self.response_model = response.get("model") or self.response_model
        if not final:
            return
        if not self.pieces and not self._calls and not self.reasoning_pieces:
            self._read_output(response)  # a stream that sent no deltas: the final output says it
        if response.get("usage"):
            self.usage = response["usage"]
        self.finish_reason = _finish_reason(response)
        if response.get("error"):
            err = response["error"]
            if isinstance(err, dict):
                self.error = {"type": str(err.get("code") or "server_error"), **err}
            else:
                self._error_from(err)

    def add_body(self, obj: dict[str, Any]) -> None:
        """A whole ``Response`` object (or an OpenAI error body)."""
        if "error" in obj and obj.get("object") != "response":
            self._error_from(obj["error"])
            return
        self._read_response(obj, final=True)

    def _read_output(self, response: dict[str, Any]) -> None:
        for index, item in enumerate(response.get("output") or ()):
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "message":
                for part in item.get("content") or ():
                    if isinstance(part, dict) and part.get("type") == "output_text":
                        self.pieces.append(str(part.get("text", "")))
            elif kind == "reasoning":
                self.reasoning_pieces.extend(_reasoning_texts(item))
            elif kind == "function_call":
                self._read_call_item(index, item)

    def tokens(self) -> tuple[int | None, int | None]:
        """(input tokens, output tokens) from usage; ``None`` where not reported."""
        u = self.usage or {}
        return as_int(u.get("input_tokens")), as_int(u.get("output_tokens"))

    @property
    def reasoning_tokens(self) -> int | None:
        """``usage.output_tokens_details.reasoning_tokens``, where reported."""
        details = (self.usage or {}).get("output_tokens_details")
        return as_int(details.get("reasoning_tokens")) if isinstance(details, dict) else None


def _finish_reason(response: dict[str, Any]) -> str | None:
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return str(reason) if reason else "incomplete"
    return str(status) if status else None


def _reasoning_texts(item: dict[str, Any]) -> list[str]:
    """A reasoning item's text: its ``reasoning_text`` content, else its summary."""
    content = [p.get("text") for p in item.get("content") or () if isinstance(p, dict)]
    texts = [t for t in content if isinstance(t, str)]
    if texts:
        return texts
    summary = [p.get("text") for p in item.get("summary") or () if isinstance(p, dict)]
    return [t for t in summary if isinstance(t, str)]


def parse_body(reader: ResponsesReader, body: bytes) -> None:
    """Fill ``reader`` from a complete (non-streaming) body; ignore what isn't JSON."""
    obj = load_object(body)
    if obj is not None:
        reader.add_body(obj)
