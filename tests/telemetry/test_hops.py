"""Agent hops: prior turns in ``messages`` and the bounded trace/session tracker."""

from __future__ import annotations

import pytest

from telemetry.hops import (
    HOP_POSITION_BUCKETS,
    TOOL_CALL_BUCKETS,
    AgentChainTracker,
    agent_hop_position,
    count_prior_turns,
    hop_position_bucket,
    prior_tool_calls_per_hop,
    tool_calls_bucket,
)


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


# -- round trips --------------------------------------------------------------------------


def _chat_call(i: int) -> dict[str, object]:
    return {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}


CHAT_TWO_ROUND_TRIPS = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": "u"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [_chat_call(1), _chat_call(2), _chat_call(3)],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "r1"},
    {"role": "tool", "tool_call_id": "c2", "content": "r2"},
    {"role": "tool", "tool_call_id": "c3", "content": "r3"},
    {"role": "assistant", "content": None, "tool_calls": [_chat_call(4)]},
    {"role": "tool", "tool_call_id": "c4", "content": "r4"},
]


def test_chat_parallel_tool_calls_are_one_hop_and_results_add_none() -> None:
    assert agent_hop_position("chat", {"messages": CHAT_TWO_ROUND_TRIPS[:6]}) == 1
    assert agent_hop_position("chat", {"messages": CHAT_TWO_ROUND_TRIPS}) == 2
    assert count_prior_turns(CHAT_TWO_ROUND_TRIPS[:6]) == 4  # the older count, for contrast
    assert prior_tool_calls_per_hop("chat", {"messages": CHAT_TWO_ROUND_TRIPS}) == (3, 1)
    first = {"messages": CHAT_TWO_ROUND_TRIPS[:2]}
    assert agent_hop_position("chat", first) == 0 and prior_tool_calls_per_hop("chat", first) == ()


def test_chat_consecutive_assistant_messages_are_one_turn() -> None:
    split = [
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": None, "tool_calls": [_chat_call(1)]},
        {"role": "assistant", "content": None, "tool_calls": [_chat_call(2)]},
        {"role": "tool", "content": "r1"},
        {"role": "tool", "content": "r2"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "and now?"},
    ]
    assert agent_hop_position("chat", {"messages": split}) == 2
    assert prior_tool_calls_per_hop("chat", {"messages": split}) == (2, 0)


def test_responses_items_grouped_per_turn() -> None:
    items = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "a", "name": "w", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "sunny"},
        {"type": "function_call_output", "call_id": "b", "output": "rain"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok"}],
        },
        {"role": "user", "content": "thanks"},
    ]
    body = {"model": "m", "input": items}
    assert agent_hop_position("responses", body) == 2
    assert prior_tool_calls_per_hop("responses", body) == (2, 0)
    assert agent_hop_position("responses", {"input": items[:4]}) == 1
    assert agent_hop_position("responses", {"input": "just a string"}) == 0


def test_responses_chain_continues_the_previous_response() -> None:
    follow_up = {
        "previous_response_id": "resp_1",
        "input": [{"type": "function_call_output", "call_id": "a", "output": "sunny"}],
    }
    assert agent_hop_position("responses", follow_up, previous_hop=3) == 4
    assert agent_hop_position("responses", follow_up) == 1  # unknown chain: one deep at least


def test_anthropic_messages_tool_results_add_none() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "w", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "rain"},
            ],
        },
    ]
    assert agent_hop_position("messages", {"messages": messages}) == 1
    assert prior_tool_calls_per_hop("messages", {"messages": messages}) == (2,)


@pytest.mark.parametrize(
    "body",
    [None, {}, {"messages": "x"}, {"messages": [1, None, "a"]}, {"input": {"role": "user"}}],
)
def test_round_trips_tolerate_malformed_bodies(body: object) -> None:
    for operation in ("chat", "responses", "messages", "text_completion", "embeddings"):
        assert agent_hop_position(operation, body) == 0  # type: ignore[arg-type]
        assert prior_tool_calls_per_hop(operation, body) == ()  # type: ignore[arg-type]


def test_buckets_are_bounded() -> None:
    positions = {hop_position_bucket(n) for n in range(-1, 200)}
    assert positions == set(HOP_POSITION_BUCKETS)
    assert [hop_position_bucket(n) for n in (0, 1, 2, 3, 4, 5, 8, 9, 16, 17)] == [
        "0",
        "1",
        "2",
        "3-4",
        "3-4",
        "5-8",
        "5-8",
        "9-16",
        "9-16",
        "17+",
    ]
    assert {tool_calls_bucket(n) for n in range(-1, 50)} == set(TOOL_CALL_BUCKETS)
    assert [tool_calls_bucket(n) for n in (0, 1, 2, 3, 4, 5, 40)] == [
        "0",
        "1",
        "2",
        "3-4",
        "3-4",
        "5+",
        "5+",
    ]
