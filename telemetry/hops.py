"""Agent hops: where a call sits in an agent's chain of LLM calls.

Two views, both kept: the round trips the client already holds in its history (an agent loop
resends it, so the assistant turns in it are the calls before this one), and the calls the
proxy itself has seen sharing a W3C trace id or a session header, remembered for a bounded
time in a bounded table. Atomic hops are generated tokens (from usage) and logical hops come
from :func:`scoring.hops.logical_hops`; neither needs state here.

**Round trips** (:func:`agent_hop_position`): one assistant turn is one hop however many
tool calls it made in parallel, and the tool results fed back add none. Consecutive
assistant items with nothing between them are one turn (some clients split a turn's parallel
calls over several assistant messages). Per API:

- chat ``messages`` and Anthropic ``messages``: ``assistant`` messages (a ``tool`` /
  ``function`` message, or a user message carrying ``tool_result`` blocks, adds none);
- Responses ``input`` items: a turn is a run of the model's own items (assistant
  ``message``, ``function_call``, ``reasoning`` and other ``*_call`` items); a
  ``function_call_output`` adds none. A request that continues a stored response
  (``previous_response_id``) sits after that response: pass the hop position the proxy
  recorded for it; when unknown, the chain counts as one hop deep at least.

:func:`count_prior_turns` is the older count (assistant *and* tool messages); it is kept for
the callers that still use it and overcounts round trips.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Final

from core.buckets import HOP_POSITION_BUCKETS, hop_position_bucket
from core.records import Operation

__all__ = [
    "HOP_POSITION_BUCKETS",
    "TOOL_CALL_BUCKETS",
    "AgentChainTracker",
    "agent_hop_position",
    "count_prior_turns",
    "hop_position_bucket",
    "prior_tool_calls_per_hop",
    "tool_calls_bucket",
]

_AGENT_ROLES: Final = frozenset({"assistant", "tool", "function"})
"""``function`` is the legacy name of ``tool`` results in the OpenAI API."""


def count_prior_turns(messages: Iterable[Any] | None) -> int:
    """Assistant and tool messages already in chat ``messages`` (the older count).

    Each assistant message counts, and so does each tool (or legacy ``function``) result: a
    turn with N parallel tool calls counts N + 1. :func:`agent_hop_position` counts round
    trips instead. Anything that is not a message mapping is skipped, so a malformed body
    never raises here (validation is the proxy's job).
    """
    if not messages or isinstance(messages, str | bytes):
        return 0
    n = 0
    for m in messages:
        if isinstance(m, Mapping) and m.get("role") in _AGENT_ROLES:
            n += 1
    return n


_RESPONSES_MODEL_ITEMS: Final = frozenset(
    {
        "function_call",
        "reasoning",
        "custom_tool_call",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
        "web_search_call",
        "file_search_call",
        "mcp_call",
        "code_interpreter_call",
        "image_generation_call",
    }
)
"""Responses input items the model produced (its turn), besides assistant messages."""


def _turns(history: Any, is_model_item: Any, tool_calls_of: Any) -> list[int]:
    """The tool calls of each model turn in ``history`` (one entry per turn)."""
    if not isinstance(history, list):
        return []
    turns: list[int] = []
    in_turn = False
    for item in history:
        if not isinstance(item, Mapping):
            continue
        if is_model_item(item):
            if not in_turn:
                turns.append(0)
                in_turn = True
            turns[-1] += tool_calls_of(item)
        else:
            in_turn = False
    return turns


def _chat_calls(m: Mapping[str, Any]) -> int:
    calls = m.get("tool_calls")
    return len(calls) if isinstance(calls, list) else 0


def _anthropic_calls(m: Mapping[str, Any]) -> int:
    content = m.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for b in content if isinstance(b, Mapping) and b.get("type") == "tool_use")


def _is_responses_model_item(item: Mapping[str, Any]) -> bool:
    kind = item.get("type")
    if kind in _RESPONSES_MODEL_ITEMS:
        return True
    return item.get("role") == "assistant" and kind in (None, "message")


def _responses_calls(item: Mapping[str, Any]) -> int:
    return 0 if item.get("type") in (None, "message", "reasoning") else 1


def _history_turns(operation: Operation, body: Mapping[str, Any]) -> list[int]:
    if operation in ("chat", "messages"):
        calls = _chat_calls if operation == "chat" else _anthropic_calls
        return _turns(body.get("messages"), lambda m: m.get("role") == "assistant", calls)
    if operation == "responses":
        return _turns(body.get("input"), _is_responses_model_item, _responses_calls)
    return []


def agent_hop_position(
    operation: Operation, body: Mapping[str, Any] | None, *, previous_hop: int | None = None
) -> int:
    """This call's 0-based position in its agent task: the round trips before it.

    ``previous_hop`` is the position the proxy recorded for the response a Responses request
    names in ``previous_response_id`` (``None`` when unknown or not looked up). Malformed
    bodies count 0 (validation is the proxy's job). Rule in the module docstring.
    """
    if not isinstance(body, Mapping):
        return 0
    hops = len(_history_turns(operation, body))
    if operation == "responses" and body.get("previous_response_id"):
        hops += 1 if previous_hop is None else previous_hop + 1
    return hops


def prior_tool_calls_per_hop(
    operation: Operation, body: Mapping[str, Any] | None
) -> tuple[int, ...]:
    """The number of tool calls each earlier round trip in the history made (oldest first):
    ``(3, 1)`` for a turn with three parallel calls, then one with one call."""
    return tuple(_history_turns(operation, body)) if isinstance(body, Mapping) else ()


TOOL_CALL_BUCKETS: Final = ("0", "1", "2", "3-4", "5+")
"""Strata of the tool calls one hop made: a fixed label set."""


def tool_calls_bucket(calls: int) -> str:
    """``0``, ``1``, ``2``, ``3-4`` or ``5+`` (negative counts as 0)."""
    if calls <= 2:
        return str(max(calls, 0))
    return "3-4" if calls <= 4 else "5+"


class AgentChainTracker:
    """Counts calls sharing a key (trace id or session id) within a time-to-live.

    Memory is bounded by ``max_entries`` (least recently seen keys are forgotten first);
    a key not seen for ``ttl_s`` seconds starts again at position 0. Thread-safe; each call
    is O(1).
    """

    def __init__(self, ttl_s: float = 600.0, max_entries: int = 10_000) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError(f"ttl_s must be > 0 and max_entries >= 1 (got {ttl_s}, {max_entries})")
        self._ttl = ttl_s
        self._max = max_entries
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (calls, last)

    def position(self, key: str, now: float) -> int:
        """This call's 0-based position among the calls seen with ``key``; records the call.

        ``now`` is a monotonic time in seconds (the caller's clock, so tests control it).
        """
        with self._lock:
            entry = self._seen.pop(key, None)
            calls = 0 if entry is None or now - entry[1] > self._ttl else entry[0]
            self._seen[key] = (calls + 1, now)
            if len(self._seen) > self._max:
                self._seen.popitem(last=False)
            return calls

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
