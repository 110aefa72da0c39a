"""The Responses API's shapes for the engine's answers, built with ``openai.types.responses``.

A whole answer is one ``Response`` object. A streamed answer is the event sequence OpenAI
sends, one SSE ``data`` payload per event, each a JSON object whose ``type`` is the event name
(the proxy writes the matching ``event:`` line; Responses streams end without ``[DONE]``):

    response.created, response.in_progress,
    response.output_item.added (an assistant message), response.content_part.added,
    response.output_text.delta …,
    response.output_text.done, response.content_part.done, response.output_item.done,
    response.completed — or response.incomplete (``incomplete_details.reason``
    ``max_output_tokens``) when the token budget ran out.

``sequence_number`` counts the events from 0. The engine answers with text only (no tool
calls are parsed out, no reasoning items), so the output is one message. Every object is a
model of the official SDK, dumped with ``model_dump(mode="json", exclude_none=True)``: the
shapes are the SDK's by construction, not a second copy of the spec.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from openai.types.responses import (
    FunctionTool,
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import BaseModel

__all__ = ["ResponsesWriter"]

_Status = Literal["completed", "incomplete", "in_progress"]


def _dump(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump(mode="json", exclude_none=True))


def _tools(body: Mapping[str, Any]) -> list[FunctionTool]:
    """The request's function tools, echoed as the API does (others were refused before)."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        FunctionTool.model_validate({"strict": None, "parameters": None, **t})
        for t in tools
        if isinstance(t, Mapping) and t.get("type") == "function"
    ]


class ResponsesWriter:
    """Builds one response's body or its stream events; holds its ids and the text so far."""

    def __init__(
        self, body: Mapping[str, Any], *, model: str, temperature: float, top_p: float
    ) -> None:
        self._body = body
        self._model = model
        self._temperature = temperature
        self._top_p = top_p
        self.id = "resp_" + secrets.token_hex(24)
        self._message_id = "msg_" + secrets.token_hex(24)
        self._created = time.time()
        self._seq = 0
        self._parts: list[str] = []

    def _next(self) -> int:
        seq, self._seq = self._seq, self._seq + 1
        return seq

    def _message(self, status: _Status) -> ResponseOutputMessage:
        text = "".join(self._parts)
        content: list[Any] = [] if status == "in_progress" else [self._text_part(text)]
        return ResponseOutputMessage(
            id=self._message_id, type="message", role="assistant", status=status, content=content
        )

    @staticmethod
    def _text_part(text: str) -> ResponseOutputText:
        return ResponseOutputText(type="output_text", text=text, annotations=[])

    def _response(self, status: _Status, usage: tuple[int, int] | None) -> Response:
        body = self._body
        choice = body.get("tool_choice")
        message = [] if status == "in_progress" else [self._message(status)]
        incomplete = None
        if status == "incomplete":
            incomplete = IncompleteDetails(reason="max_output_tokens")
        return Response(
            id=self.id,
            object="response",
            created_at=self._created,
            completed_at=None if status == "in_progress" else time.time(),
            model=self._model,
            status=status,
            output=message,  # type: ignore[arg-type]
            instructions=body.get("instructions"),
            max_output_tokens=body.get("max_output_tokens"),
            temperature=self._temperature,
            top_p=self._top_p,
            tools=_tools(body),  # type: ignore[arg-type]
            tool_choice=choice if choice in ("none", "auto", "required") else "auto",
            parallel_tool_calls=bool(body.get("parallel_tool_calls", True)),
            metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
            incomplete_details=incomplete,
            usage=None if usage is None else _usage(*usage),
        )

    @staticmethod
    def _status(finish_reason: str) -> _Status:
        return "incomplete" if finish_reason == "length" else "completed"

    # -- a whole response -------------------------------------------------------------------

    def body(self, text: str, finish_reason: str, input_tokens: int, output_tokens: int) -> bytes:
        """The ``Response`` object of a non-streaming request."""
        self._parts = [text]
        status = self._status(finish_reason)
        return _dump(self._response(status, (input_tokens, output_tokens)))

    # -- a stream ---------------------------------------------------------------------------

    def opening(self) -> list[bytes]:
        """The events before the first token."""
        started = self._response("in_progress", None)
        empty = self._text_part("")
        return [
            _dump(
                ResponseCreatedEvent(
                    type="response.created", response=started, sequence_number=self._next()
                )
            ),
            _dump(
                ResponseInProgressEvent(
                    type="response.in_progress", response=started, sequence_number=self._next()
                )
            ),
            _dump(
                ResponseOutputItemAddedEvent(
                    type="response.output_item.added",
                    output_index=0,
                    item=self._message("in_progress"),
                    sequence_number=self._next(),
                )
            ),
            _dump(
                ResponseContentPartAddedEvent(
                    type="response.content_part.added",
                    item_id=self._message_id,
                    output_index=0,
                    content_index=0,
                    part=empty,
                    sequence_number=self._next(),
                )
            ),
        ]

    def delta(self, text: str) -> bytes:
        """One ``response.output_text.delta``."""
        self._parts.append(text)
        return _dump(
            ResponseTextDeltaEvent(
                type="response.output_text.delta",
                item_id=self._message_id,
                output_index=0,
                content_index=0,
                delta=text,
                logprobs=[],
                sequence_number=self._next(),
            )
        )

    def closing(self, finish_reason: str, input_tokens: int, output_tokens: int) -> list[bytes]:
        """The events after the last token, ending with the final response and its usage."""
        text = "".join(self._parts)
        status = self._status(finish_reason)
        final = self._response(status, (input_tokens, output_tokens))
        last: BaseModel
        if status == "incomplete":
            last = ResponseIncompleteEvent(
                type="response.incomplete", response=final, sequence_number=0
            )
        else:
            last = ResponseCompletedEvent(
                type="response.completed", response=final, sequence_number=0
            )
        events = [
            _dump(
                ResponseTextDoneEvent(
                    type="response.output_text.done",
                    item_id=self._message_id,
                    output_index=0,
                    content_index=0,
                    text=text,
                    logprobs=[],
                    sequence_number=self._next(),
                )
            ),
            _dump(
                ResponseContentPartDoneEvent(
                    type="response.content_part.done",
                    item_id=self._message_id,
                    output_index=0,
                    content_index=0,
                    part=self._text_part(text),
                    sequence_number=self._next(),
                )
            ),
            _dump(
                ResponseOutputItemDoneEvent(
                    type="response.output_item.done",
                    output_index=0,
                    item=self._message(status),
                    sequence_number=self._next(),
                )
            ),
        ]
        last.sequence_number = self._next()  # type: ignore[attr-defined]
        return [*events, _dump(last)]


def _usage(input_tokens: int, output_tokens: int) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=input_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens=output_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        total_tokens=input_tokens + output_tokens,
    )
