"""A Responses API request (``POST /v1/responses``) read as chat messages for the chat template.

The engine has one prompt format, the tokenizer's chat template, so a Responses request is
translated to the messages and tools a chat request would carry:

- ``instructions`` → a leading ``system`` message;
- ``input`` as a string → one ``user`` message;
- ``input`` items: messages (``role`` ``user``/``assistant``/``system``; ``developer`` becomes
  ``system``, as chat templates know no such role) with string content or text parts
  (``input_text``, ``output_text``); ``function_call`` items → an assistant message's
  ``tool_calls`` (consecutive calls, and an assistant message right before them, form one
  assistant turn), arguments parsed to an object as Hugging Face templates expect;
  ``function_call_output`` → a ``tool`` message; ``reasoning`` items are dropped (a prompt
  carries no earlier reasoning, as chat clients send none);
- function ``tools`` (``{"type": "function", "name", "parameters"}``) → chat's
  ``{"type": "function", "function": {...}}``.

Refused with a 400 naming the parameter, rather than silently ignored: built-in tools
(``web_search``, ``file_search``, …), non-text input parts (images, files), other item
types (``item_reference`` …), ``previous_response_id`` and ``conversation`` (the engine
stores no responses: send the whole conversation in ``input``), ``background``, and a
``text.format`` other than ``text``. Tool calls are not parsed out of the answer (the engine
answers with text), as for chat. Accepted and without effect, as vLLM treats them: ``store``
(nothing is stored), ``include``, ``reasoning`` (the engine's models have no reasoning
setting), ``truncation``, ``tool_choice``, ``parallel_tool_calls``, ``max_tool_calls``,
``metadata`` (echoed), ``user``, ``service_tier``, ``prompt_cache_key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from backends.engine.invalid import InvalidRequest

__all__ = ["refuse_unsupported", "responses_messages", "responses_tools"]

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param)


def refuse_unsupported(body: Mapping[str, Any]) -> None:
    """400 for what the engine cannot do with a Responses request (see the module docstring)."""
    for key in ("previous_response_id", "conversation"):
        if body.get(key):
            raise _invalid(
                f"the in-process engine does not store responses, so '{key}' cannot be "
                "followed; send the whole conversation in 'input'",
                key,
            )
    if body.get("background"):
        raise _invalid(
            "the in-process engine does not run responses in the background", "background"
        )
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if fmt is not None and (not isinstance(fmt, Mapping) or fmt.get("type") != "text"):
        raise _invalid("the in-process engine supports only text.format type 'text'", "text.format")
    responses_tools(body)


def responses_tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The function tools in chat's shape; a built-in tool is refused."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _invalid("'tools' must be a list", "tools")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, Mapping) else type(tool).__name__
            raise _invalid(
                f"tools[{index}]: the in-process engine supports only function tools, not {kind!r}",
                f"tools[{index}]",
            )
        function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
        out.append({"type": "function", "function": function})
    return out


def _text(content: Any, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") not in _TEXT_PARTS:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise _invalid(
                    f"{param}[{i}]: the in-process engine accepts only text parts, not {kind!r}",
                    param,
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise _invalid(f"{param} must be a string or a list of text parts", param)


def _arguments(text: Any) -> Any:
    """Arguments as an object when they are JSON (what templates expect), else the text."""
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def responses_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chat messages of a Responses request (rules in the module docstring)."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _invalid("'instructions' must be a string", "instructions")
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _invalid("'input' must be a string or a non-empty list of items", "input")
    for index, item in enumerate(items):
        param = f"input[{index}]"
        if not isinstance(item, Mapping):
            raise _invalid(f"{param} must be an object", param)
        kind = item.get("type", "message")
        if kind == "message":
            role = _ROLES.get(str(item.get("role")))
            if role is None:
                raise _invalid(f"{param}.role must be user, assistant, system or developer", param)
            messages.append(
                {"role": role, "content": _text(item.get("content"), param + ".content")}
            )
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id", "")),
                "type": "function",
                "function": {
                    "name": str(item.get("name", "")),
                    "arguments": _arguments(item.get("arguments")),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = _text(item.get("output"), param + ".output")
            messages.append(
                {"role": "tool", "tool_call_id": str(item.get("call_id", "")), "content": output}
            )
        elif kind != "reasoning":
            raise _invalid(f"{param}: the in-process engine does not accept {kind!r} items", param)
    if not any(m["role"] != "system" for m in messages):
        raise _invalid("'input' holds no message for the model to answer", "input")
    return messages
