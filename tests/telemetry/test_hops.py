"""Agent hops: prior turns in ``messages`` and the bounded trace/session tracker."""

from __future__ import annotations

import pytest

from telemetry.hops import AgentChainTracker, count_prior_turns


def test_count_prior_turns_counts_assistant_and_tool_messages() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "r"},
        {"role": "assistant", "content": "a"},
        {"role": "function", "name": "f", "content": "legacy"},
        {"role": "user", "content": "u2"},
    ]
    assert count_prior_turns(messages) == 4


@pytest.mark.parametrize("bad", [None, [], "not a list", [1, "x", None], [{"no": "role"}]])
def test_count_prior_turns_tolerates_malformed_bodies(bad: object) -> None:
    assert count_prior_turns(bad) == 0  # type: ignore[arg-type]


def test_chain_positions_count_calls_sharing_a_key() -> None:
    t = AgentChainTracker(ttl_s=60, max_entries=10)
    assert [t.position("trace-a", now) for now in (0, 1, 2)] == [0, 1, 2]
    assert t.position("trace-b", 3) == 0


def test_chain_forgets_a_key_after_its_ttl() -> None:
    t = AgentChainTracker(ttl_s=10, max_entries=10)
    t.position("s", 0)
    t.position("s", 5)
    assert t.position("s", 14) == 2  # 9 s after the last call: still the same chain
    assert t.position("s", 30) == 0  # 16 s of silence: a new chain


def test_chain_memory_is_bounded_lru() -> None:
    t = AgentChainTracker(ttl_s=1000, max_entries=3)
    for i, key in enumerate("abc"):
        t.position(key, i)
    t.position("a", 3)  # a is now the most recent
    t.position("d", 4)  # evicts b, the least recently seen
    assert len(t) == 3
    assert t.position("b", 5) == 0
    assert t.position("a", 6) == 2


def test_tracker_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        AgentChainTracker(ttl_s=0)
