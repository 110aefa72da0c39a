"""TEST DOUBLE: what the fake upstream answers, decided once for every API it speaks.

Each API's request is first read into a :class:`Turn` (the last user text, the tool result
when the last turn is one, the function tools offered, the token cap); :func:`plan_reply`
turns it into a :class:`Plan` (reasoning pieces, answer pieces, tool calls), which each wire
format (chat, completions, Responses, Messages) then writes in its own shapes.

Tool calls, in order of precedence, for a turn that offers tools and is not a tool result:

- the double's config ``tool_calls``: ``[{"name": ..., "arguments": {...} or "json"}]``
  (several entries = parallel calls; ``[]`` = answer with text although tools are offered),
  so one variant can be made to call another tool than its twin;
- a marker in the last user message: ``[[tool_calls: [{"name": ..., "arguments": {...}}]]]``;
- else a call to the first tool offered with ``{"city": "Paris"}`` (the historical default).

A turn whose last item is a tool result is answered ``The tool said: <result>``. Config
``reasoning_words: N`` adds N reasoning pieces before the answer (chat
``reasoning_content`` deltas — or the field named by ``reasoning_field`` —, Responses reasoning
items, Messages thinking blocks).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "Plan",
    "PlannedCall",
    "Turn",
    "chat_turn",
    "completion_turn",
    "messages_turn",
    "plan_reply",
    "responses_turn",
]


@dataclass(frozen=True, slots=True)
class PlannedCall:
    call_id: str
    name: str
    arguments: str
    """JSON text, as a model writes it."""


@dataclass(frozen=True, slots=True)
class Turn:
    """What the double reads from a request, whatever its API."""

    user_text: str
    tool_result: str | None = None
    tool_names: tuple[str, ...] = ()
    max_tokens: int | None = None


@dataclass(slots=True)
class Plan:
    reasoning: list[str] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    calls: list[PlannedCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces).rstrip()

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning).rstrip()

    @staticmethod
    def exact(pieces: list[str]) -> list[str]:
        """The pieces with the last one's trailing space dropped, so that the deltas add up
        to the whole text exactly (the Responses and Messages streams repeat the whole)."""
        return [*pieces[:-1], pieces[-1].rstrip()] if pieces else []

    @property
    def output_tokens(self) -> int:
        """Generated tokens as usage reports them: one per piece, 5 for a tool-call answer."""
        return len(self.reasoning) + (len(self.pieces) if self.pieces else 5)

    @staticmethod
    def input_tokens(turn: Turn) -> int:
        """Prompt tokens as usage reports them: the words of the last user text."""
        return len(turn.user_text.split()) or 1


def _text_of(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and "text" in p]
        return "".join(texts) if texts else orjson.dumps(content).decode()
    return "" if content is None else str(content)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def chat_turn(body: dict[str, Any]) -> Turn:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    last = messages[-1] if messages else {}
    tools = tuple(
        t["function"]["name"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    )
    return Turn(
        user_text=_text_of(user.get("content")) if user else "",
        tool_result=_text_of(last.get("content")) if last.get("role") == "tool" else None,
        tool_names=tools,
        max_tokens=_int(body.get("max_tokens")) or _int(body.get("max_completion_tokens")),
    )


def completion_turn(body: dict[str, Any]) -> Turn:
    prompt = body.get("prompt", "")
    text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    return Turn(user_text=text, max_tokens=_int(body.get("max_tokens")))


def responses_turn(body: dict[str, Any]) -> Turn:
    items = body.get("input")
    tools = tuple(
        t["name"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function" and "name" in t
    )
    if isinstance(items, str):
        return Turn(items, None, tools, _int(body.get("max_output_tokens")))
    items = [i for i in items or [] if isinstance(i, dict)]
    user = next((i for i in reversed(items) if i.get("role") == "user"), None)
    last = items[-1] if items else {}
    result = _text_of(last.get("output")) if last.get("type") == "function_call_output" else None
    return Turn(
        user_text=_text_of(user.get("content")) if user else "",
        tool_result=result,
        tool_names=tools,
        max_tokens=_int(body.get("max_output_tokens")),
    )


def messages_turn(body: dict[str, Any]) -> Turn:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    tools = tuple(t["name"] for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t)
    result = None
    user_text = ""
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results and m is messages[-1]:
            result = _text_of(results[-1].get("content"))
            continue
        user_text = _text_of(content)
        break
    return Turn(user_text, result, tools, _int(body.get("max_tokens")))


_MARKER = re.compile(r"\[\[tool_calls:\s*(\[.*?\])\s*\]\]", re.S)


def _calls(specs: Any) -> list[PlannedCall]:
    calls = []
    for spec in specs:
        args = spec.get("arguments", {})
        text = args if isinstance(args, str) else orjson.dumps(args).decode()
        calls.append(PlannedCall("call_" + uuid.uuid4().hex[:12], str(spec["name"]), text))
    return calls


def _planned_calls(config: dict[str, Any], turn: Turn) -> list[PlannedCall]:
    if turn.tool_result is not None or not turn.tool_names:
        return []
    if "tool_calls" in config:
        return _calls(config["tool_calls"])
    marker = _MARKER.search(turn.user_text)
    if marker:
        return _calls(orjson.loads(marker.group(1)))
    return _calls([{"name": turn.tool_names[0], "arguments": {"city": "Paris"}}])


def _words(n: int, name: str) -> list[str]:
    base = f"Hello from {name}.".split()
    filler = [f"w{i}" for i in range(max(0, n - len(base)))]
    return (base + filler)[: max(n, 1)]


def plan_reply(config: dict[str, Any], name: str, turn: Turn) -> Plan:
    """The double's answer to ``turn`` under ``config`` (see the module docstring)."""
    reasoning = [f"Thinking {i}. " for i in range(int(config.get("reasoning_words", 0)))]
    if turn.tool_result is not None:
        return Plan(reasoning, [f"The tool said: {turn.tool_result}"])
    calls = _planned_calls(config, turn)
    if calls:
        return Plan(reasoning, [], calls)
    solved = _solved(config, turn.user_text)
    if solved is not None:
        return Plan(reasoning, solved)
    for key, answer in config.get("answers", {}).items():
        if key in turn.user_text:
            return Plan(reasoning, [piece + " " for piece in str(answer).split(" ")])
    words = _words(int(config.get("reply_words", 8)), name)
    if turn.max_tokens is not None:
        words = words[: turn.max_tokens]
    return Plan(reasoning, [w + " " for w in words])


# -- solve mode: multi-hop and GSM8K questions answered right for a share of them ----------

_DEFINITION = re.compile(r"([a-z]) = ([a-z]|\d+)(?: ([+\-*]) ([a-z]|\d+))?\.")
_TARGET = re.compile(r"What is ([a-z])\?")
_GSM8K: dict[str, int] = {}


def _multihop_answer(question: str) -> int | None:
    target = _TARGET.search(question)
    if target is None:
        return None
    values: dict[str, int] = {}

    def value(token: str) -> int:
        return int(token) if token.isdigit() else values[token]

    try:
        for name, left, op, right in _DEFINITION.findall(question):
            x = value(left)
            if op:
                y = value(right)
                x = x + y if op == "+" else x - y if op == "-" else x * y
            values[name] = x
        return values[target.group(1)]
    except KeyError:
        return None


def _gsm8k_answer(question: str) -> int | None:
    if not _GSM8K:
        from scoring.datasets.gsm8k import iter_gsm8k

        for item in iter_gsm8k():
            if item.gold == item.gold.to_integral_value():
                _GSM8K[item.question] = int(item.gold)
    return _GSM8K.get(question)


def _solved(config: dict[str, Any], question: str) -> list[str] | None:
    """The reply pieces of ``solve`` mode, or ``None`` for a question it cannot read."""
    solve = config.get("solve")
    if not solve:
        return None
    answer = _multihop_answer(question)
    if answer is None:
        answer = _gsm8k_answer(question)
    if answer is None:
        return None
    digest = hashlib.sha256(f"{solve.get('seed', 0)}|{question}".encode()).digest()
    right = int.from_bytes(digest[:8], "big") / 2**64 < float(solve.get("accuracy", 1.0))
    given = answer if right else answer + 7
    n = max(3, int(config.get("reply_words", 8)))
    filler = ["Working", "through", "it", "step", "by", "step.", *(f"w{i}" for i in range(n))]
    words = [*filler[: n - 2], "####", str(given)]
    return [w + " " for w in words]
