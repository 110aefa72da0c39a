"""Evaluation traffic: the tags a client puts on a request, taken off before it is forwarded.

A request is graded when it carries its expected answer (header ``X-Quanttrap-Expected`` or
``metadata.expected_answer``), optionally a dataset name and the reference's reasoning depth.
The tags are moved into the :class:`~proxy.context.RequestContext` and removed from the body: the
model must never see the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.context import RequestContext

__all__ = [
    "EVAL_KEYS",
    "MAX_REFERENCE_DEPTH",
    "parse_reference_depth",
    "prompt_text",
    "take_evaluation_tags",
]

EVAL_KEYS = frozenset({"expected_answer", "dataset", "reference_depth"})

MAX_REFERENCE_DEPTH = 64
"""Deepest reasoning depth a client may tag (deeper, or not an integer: ignored)."""


def parse_reference_depth(value: object) -> int | None:
    """A client's depth tag as an int in [0, :data:`MAX_REFERENCE_DEPTH`], else ``None``.

    Accepts an integer or a string of digits (a header, or a metadata value: OpenAI's
    ``metadata`` holds strings); anything else is ignored rather than refused, as the tag
    only stratifies accuracy and must never fail the user's request.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        depth = value
    elif isinstance(value, str | bytes):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 4:
            return None
        depth = int(text)
    else:
        return None
    return depth if 0 <= depth <= MAX_REFERENCE_DEPTH else None


def take_evaluation_tags(
    body: dict[str, Any], metadata: dict[str, Any], meta: RequestContext
) -> dict[str, Any]:
    """Move evaluation tags out of ``metadata``: the model must never see the answer."""
    expected = metadata.get("expected_answer")
    if expected is not None:
        meta.expected_answer = str(expected)
    dataset = metadata.get("dataset")
    if dataset is not None:
        meta.dataset = str(dataset)
    depth = parse_reference_depth(metadata.get("reference_depth"))
    if depth is not None:
        meta.reference_depth = depth
    rest = {k: v for k, v in metadata.items() if k not in EVAL_KEYS}
    if rest:
        return {**body, "metadata": rest}
    return {k: v for k, v in body.items() if k != "metadata"}


def prompt_text(body: Mapping[str, Any]) -> str:
    """The question of an evaluation request: the last user message (chat, Messages, the
    Responses API's ``input``), or the prompt."""
    for key in ("messages", "input"):
        items = body.get(key)
        if isinstance(items, str):
            return items
        if isinstance(items, list):
            for item in reversed(items):
                if isinstance(item, dict) and item.get("role") == "user":
                    return _content_text(item.get("content"))
            return ""
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()


def _content_text(content: Any) -> str:
    """A message's text: the string, or the text parts of a content list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(t, str) for t in texts) and texts:
            return "\n".join(t for t in texts if isinstance(t, str))
    return orjson.dumps(content).decode()
