"""Read an OpenAI request body into what the engine generates, or a 400 naming the bad param.

What the engine honours: ``messages`` (through the tokenizer's chat template, with
``add_generation_prompt``), a Responses request's ``input`` and ``instructions`` (translated to
messages by :mod:`.responses_input`) or ``prompt``; ``max_tokens`` / ``max_completion_tokens``
/ ``max_output_tokens`` (bounded by the variant's ``max_new_tokens`` and the model's context);
``stop``; ``temperature`` (0 or absent is greedy); ``top_p``; ``seed``;
``stream_options.include_usage``. Tool definitions reach the chat template but tool calls are
not parsed out of the answer. Parameters that would change the
output in ways the engine does not implement (``n`` > 1, ``logprobs``, penalties, ``logit_bias``,
``echo``, ``suffix``, ``best_of`` > 1, a non-text ``response_format``) are refused with 400
rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backends.base import Endpoint
from backends.engine.invalid import InvalidRequest
from backends.engine.responses_input import (
    refuse_unsupported as _refuse_unsupported_responses,
)
from backends.engine.responses_input import responses_messages, responses_tools

__all__ = [
    "InvalidRequest",
    "SamplingRequest",
    "build_prompt_ids",
    "read_sampling",
]


@dataclass(frozen=True, slots=True)
class SamplingRequest:
    """The generation settings of one request (before the prompt is tokenized)."""

    model: str
    max_tokens: int | None
    """What the client asked for; ``None`` means the variant's default."""
    stop: tuple[str, ...]
    temperature: float
    top_p: float
    seed: int | None
    include_usage: bool


def _number(body: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"'{key}' must be a number between {low} and {high}", key)
    return float(value)


def _optional_int(body: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequest(f"'{key}' must be an integer >= {minimum}", key)
    return value


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest("'stop' must be a string or a list of strings", "stop")
    return tuple(s for s in value if s)


def _refuse_unsupported(endpoint: Endpoint, body: Mapping[str, Any]) -> None:
    if endpoint == "responses":
        _refuse_unsupported_responses(body)
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("the engine backend supports only n=1", "n")
    if body.get("logprobs") not in (None, False, 0) or body.get("top_logprobs"):
        raise InvalidRequest("the engine backend does not return logprobs", "logprobs")
    for key in ("presence_penalty", "frequency_penalty"):
        if body.get(key) not in (None, 0, 0.0):
            raise InvalidRequest(f"the engine backend does not implement '{key}'", key)
    if body.get("logit_bias"):
        raise InvalidRequest("the engine backend does not implement 'logit_bias'", "logit_bias")
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, Mapping) or response_format.get("type") != "text"
    ):
        raise InvalidRequest(
            "the engine backend supports only response_format type 'text'", "response_format"
        )
    if endpoint == "completions":
        if body.get("echo"):
            raise InvalidRequest("the engine backend does not implement 'echo'", "echo")
        if body.get("suffix") is not None:
            raise InvalidRequest("the engine backend does not implement 'suffix'", "suffix")
        if body.get("best_of") not in (None, 1):
            raise InvalidRequest("the engine backend supports only best_of=1", "best_of")


def read_sampling(endpoint: Endpoint, body: Mapping[str, Any]) -> SamplingRequest:
    """Validate everything but the prompt (cheap: runs on the event loop)."""
    _refuse_unsupported(endpoint, body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string", "model")
    max_tokens = _optional_int(body, "max_tokens", 1)
    if endpoint == "responses":
        max_tokens = _optional_int(body, "max_output_tokens", 1)
    elif endpoint == "chat":
        max_tokens = _optional_int(body, "max_completion_tokens", 1) or max_tokens
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidRequest("'seed' must be an integer", "seed")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise InvalidRequest("'stream_options' must be an object", "stream_options")
    return SamplingRequest(
        model=model,
        max_tokens=max_tokens,
        stop=_stop(body),
        temperature=_number(body, "temperature", 0.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        seed=seed,
        include_usage=bool(options and options.get("include_usage")),
    )


def _message_text(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise InvalidRequest(
                    f"messages[{index}]: the engine backend accepts only text content parts",
                    "messages",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise InvalidRequest(f"messages[{index}].content must be a string or a list", "messages")


def _chat_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", "messages")
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{index}] must be an object with a 'role'", "messages")
        copy = dict(message)
        copy["content"] = _message_text(message.get("content"), index)
        out.append(copy)
    return out


def _prompt_ids(body: Mapping[str, Any], tokenizer: Any) -> list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        ids: list[int] = tokenizer.encode(prompt, add_special_tokens=True)
        return ids
    if (
        isinstance(prompt, list)
        and prompt
        and all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(tokenizer)
            for t in prompt
        )
    ):
        return list(prompt)
    raise InvalidRequest(
        "'prompt' must be one string or one list of token ids (several prompts are not "
        "supported by the engine backend)",
        "prompt",
    )


def build_prompt_ids(
    endpoint: Endpoint, body: Mapping[str, Any], tokenizer: Any, context_tokens: int | None
) -> list[int]:
    """Token ids of the prompt (blocking: tokenizer and Jinja; run it off the event loop)."""
    param = {"chat": "messages", "responses": "input"}.get(endpoint, "prompt")
    if endpoint in ("chat", "responses"):
        kwargs: dict[str, Any] = {}
        if endpoint == "responses":
            messages = responses_messages(body)
            tools: list[Any] = responses_tools(body)
        else:
            messages = _chat_messages(body)
            raw = body.get("tools")
            tools = list(raw) if isinstance(raw, Sequence) and raw else []
        if tools:
            kwargs["tools"] = tools
        try:
            text = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False, **kwargs
            )
        except Exception as exc:  # Jinja raises its own types, templates raise anything
            message = f"the chat template rejected the {param}: {exc}"
            raise InvalidRequest(message, param) from exc
        # The template already wrote the special tokens (BOS ...): do not add them twice.
        ids: list[int] = tokenizer.encode(text, add_special_tokens=False)
    else:
        ids = _prompt_ids(body, tokenizer)
    if not ids:
        raise InvalidRequest("the prompt is empty", param)
    if context_tokens is not None and len(ids) >= context_tokens:
        raise InvalidRequest(
            f"the prompt has {len(ids)} tokens; this model's context is {context_tokens} tokens",
            param,
            "context_length_exceeded",
        )
    return ids
