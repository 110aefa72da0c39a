"""TEST DOUBLE: errors in each API's own shape, as a whole body and as a stream event.

OpenAI's APIs (chat, completions, Responses, embeddings) answer ``{"error": {"message",
"type", "param", "code"}}``; Anthropic's Messages API ``{"type": "error", "error": {"type",
"message"}}``. In a stream, chat sends the error object as a ``data:`` chunk, the Responses
API an ``error`` event (``code``, ``message``, ``param``, ``sequence_number``), Messages an
``error`` event with its error body.
"""

from __future__ import annotations

from typing import Any

from anthropic.types import ErrorResponse
from openai.types.responses import ResponseErrorEvent

__all__ = ["error_body", "stream_error"]


def error_body(api: str, message: str) -> dict[str, Any]:
    if api == "messages":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return ErrorResponse.model_validate(body).model_dump(mode="json", exclude_none=True)
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def stream_error(api: str, message: str, sequence_number: int) -> tuple[dict[str, Any], str | None]:
    """(event payload, ``event:`` name or ``None``) of an error in the middle of a stream."""
    if api == "responses":
        event = ResponseErrorEvent(
            type="error",
            code="server_error",
            message=message,
            param=None,
            sequence_number=sequence_number,
        )
        return event.model_dump(mode="json"), "error"
    if api == "messages":
        body = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return body, "error"
    return error_body(api, message), None
