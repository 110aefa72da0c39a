"""What the proxy checks in a request body before anything goes upstream. Pure.

Only what the proxy itself interprets (the model name, whether it streams, the fields it
reads for the record) and what no upstream can survive (out-of-range numbers, wrong types:
:func:`proxy.request_limits.check_request`) is checked; everything else passes through
untouched, so new API fields work the day the upstream supports them. Every refusal is a 400
:class:`~proxy.errors.APIError` naming the parameter.
"""

from __future__ import annotations

from typing import Any

from core.records import Operation
from proxy.errors import APIError
from proxy.openai_format import validate_request
from proxy.request_limits import check_request

__all__ = ["validate_body"]


def validate_body(operation: Operation, body: dict[str, Any]) -> None:
    """Raise a 400 :class:`APIError` for a body the proxy cannot pass on."""
    if operation == "chat":
        validate_request("chat", body)
    elif operation == "text_completion":
        validate_request("completions", body)
    else:
        _require_model(body)
        _check_stream(body)
        if operation == "responses":
            _responses(body)
        elif operation == "messages":
            _messages(body)
        else:
            _embeddings(body)
    error = check_request(operation, body)
    if error is not None:
        raise error


def _require_model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "you must provide a model parameter", param="model")


def _check_stream(body: dict[str, Any]) -> None:
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise APIError(400, f"{stream!r} is not of type 'boolean' - 'stream'", param="stream")


def _responses(body: dict[str, Any]) -> None:
    given = body.get("input")
    if given is None and not body.get("previous_response_id"):
        raise APIError(400, "Missing required parameter: 'input'.", param="input",
                       code="missing_required_parameter")  # fmt: skip
    if given is not None and not isinstance(given, str | list):
        raise APIError(400, "'input' must be a string or an array of input items.",
                       param="input")  # fmt: skip
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or len(previous) > 256):
        raise APIError(400, "'previous_response_id' must be a response id string.",
                       param="previous_response_id")  # fmt: skip


def _messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages: Field required (a non-empty array of messages)",
                       param="messages")  # fmt: skip
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise APIError(400, f"messages.{i}: an object with role 'user' or 'assistant'",
                           param=f"messages.{i}")  # fmt: skip
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise APIError(400, "max_tokens: Field required (an integer >= 1)", param="max_tokens")


_MAX_DIMENSIONS = 16_384
"""Far above any embedding model's width (OpenAI's largest has 3,072): a bigger ``dimensions``
only asks the upstream for an answer large enough to exhaust memory."""


def _embeddings(body: dict[str, Any]) -> None:
    given = body.get("input")
    if not isinstance(given, str | list) or (isinstance(given, list) and not given):
        raise APIError(400, "'input' must be a string or a non-empty array.", param="input")
    if isinstance(given, list) and not _embedding_input(given):
        raise APIError(
            400,
            "'input' must be a string, an array of strings, an array of token ids, or an "
            "array of arrays of token ids.",
            param="input",
            code="invalid_type",
        )
    dimensions = body.get("dimensions")
    if isinstance(dimensions, int) and _is_token(dimensions) and dimensions > _MAX_DIMENSIONS:
        raise APIError(400, f"'dimensions' must be at most {_MAX_DIMENSIONS}, got "
                       f"{dimensions}.", param="dimensions",
                       code="integer_above_max_value")  # fmt: skip


def _is_token(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _embedding_input(items: list[Any]) -> bool:
    """OpenAI's accepted shapes: strings, token ids, or arrays of token ids."""
    if all(isinstance(x, str) for x in items) or all(_is_token(x) for x in items):
        return True
    return all(isinstance(x, list) and x and all(_is_token(t) for t in x) for x in items)
