"""Agent hops: where a call sits in an agent's chain of LLM calls.

Two views, both kept: the turns the client already holds in ``messages`` (an agent loop
resends its history, so prior assistant and tool turns count the calls before this one), and
the calls the proxy itself has seen sharing a W3C trace id or a session header, remembered
for a bounded time in a bounded table. Atomic hops are generated tokens (from usage) and
logical hops come from :func:`scoring.hops.logical_hops`; neither needs state here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["AgentChainTracker", "count_prior_turns"]

_AGENT_ROLES: Final = frozenset({"assistant", "tool", "function"})
"""``function`` is the legacy name of ``tool`` results in the OpenAI API."""


def count_prior_turns(messages: Iterable[Any] | None) -> int:
    """Assistant and tool turns already in ``messages``: calls that came before this one.

    Each assistant message is one earlier LLM call; each tool (or legacy ``function``)
    message is one tool result fed back. Anything that is not a message mapping is skipped,
    so a malformed body never raises here (validation is the proxy's job).
    """
    if not messages or isinstance(messages, str | bytes):
        return 0
    n = 0
    for m in messages:
        if isinstance(m, Mapping) and m.get("role") in _AGENT_ROLES:
            n += 1
    return n


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
