"""Which variant produced which Responses-API response: follow-ups go back to it.

A Responses request that names ``previous_response_id`` continues a conversation the upstream
stored; only the variant that produced that response has it. The proxy remembers, for the
most recent responses (bounded, least recently used forgotten first), the variant that served
each and its agent-hop position; a follow-up is pinned to that variant (no failover: no other
variant has the conversation), and an id the proxy does not know is a clear 400, not a silent
re-route to a variant that would answer "not found" or, worse, without the history.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from proxy.errors import APIError

__all__ = ["ChainEntry", "ResponseChain"]


@dataclass(frozen=True, slots=True)
class ChainEntry:
    model: str
    variant: str
    hop: int
    """The agent-hop position of the request that produced the response."""


class ResponseChain:
    """A bounded map from response id to the variant that produced it."""

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, ChainEntry] = OrderedDict()

    def remember(self, response_id: str, entry: ChainEntry) -> None:
        with self._lock:
            self._entries[response_id] = entry
            self._entries.move_to_end(response_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def lookup(self, model: str, response_id: str) -> ChainEntry:
        """The entry for ``response_id``; a 400 when unknown or of another model."""
        with self._lock:
            entry = self._entries.get(response_id)
            if entry is not None:
                self._entries.move_to_end(response_id)
        if entry is None or entry.model != model:
            raise APIError(
                400,
                f"Previous response with id '{response_id}' not found: this proxy does not "
                "know which variant produced it (it was not served here, or was forgotten). "
                "Start the conversation again without previous_response_id.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
