"""Shadow answer agreement: final answers compared as numbers or normalised text."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.records import RequestRecord, ShadowPair, ToolCall
from scoring.comparison import (
    AGREEMENT_REASONS,
    answers_agree,
    canonical_arguments,
    compare_pair,
    final_answer,
    normalise_text,
    tool_calls_agree,
)

PRIMARY = RequestRecord(
    request_id="p1",
    model="m",
    variant="bf16",
    bits=16,
    role="primary",
    operation="chat",
    stream=False,
    status=200,
    started_at=100.0,
    duration_s=1.0,
    text="3 + 4 = 7, times 2 is 14.\n#### 14",
    pair_id="p1",
)
SHADOW = replace(PRIMARY, variant="nf4", bits=4, role="shadow", duration_s=1.5)


def test_numbers_compare_as_numbers() -> None:
    assert answers_agree("18.00", "18") is True
    assert answers_agree("$1,000", "1000") is True
    assert answers_agree("18", "19") is False
    assert answers_agree(None, "18") is None


def test_text_compares_normalised() -> None:
    assert normalise_text("  The  Answer is PARIS. ") == "the answer is paris"
    assert answers_agree("Paris.", "paris") is True
    assert answers_agree("Paris", "Lyon") is False


def test_final_answer_uses_the_graders_extraction() -> None:
    assert final_answer("first 3, then #### 12 and later 99") == "12"  # strict match first
    assert final_answer("it is 41 or maybe 42") == "42"  # else the last number
    assert final_answer("The answer is (c).", "mathqa") == "c"
    assert final_answer("no digits here") is None


def test_unlabelled_pair_agreement() -> None:
    agree = compare_pair(ShadowPair("p1", PRIMARY, replace(SHADOW, text="it is 14")))
    assert agree is not None and agree.agree is True
    assert (agree.primary_answer, agree.shadow_answer) == ("14", "14")
    assert agree.primary_correct is None and agree.dataset is None
    assert agree.at == 101.5  # when the later half finished
    differ = compare_pair(ShadowPair("p1", PRIMARY, replace(SHADOW, text="#### 15")))
    assert differ is not None and differ.agree is False


def test_chat_without_answers_compares_whole_texts() -> None:
    p = replace(PRIMARY, text="Hello there, friend!")
    same = compare_pair(ShadowPair("p1", p, replace(SHADOW, text="hello  there, FRIEND")))
    other = compare_pair(ShadowPair("p1", p, replace(SHADOW, text="Good morning")))
    assert same is not None and same.agree is True
    assert other is not None and other.agree is False


def test_labelled_pair_is_graded_on_both_sides() -> None:
    labelled = replace(PRIMARY, expected_answer="14", prompt="double 3 + 4")
    cmp = compare_pair(ShadowPair("p1", labelled, replace(SHADOW, text="#### 15")))
    assert cmp is not None
    assert (cmp.primary_correct, cmp.shadow_correct, cmp.dataset) == (True, False, "gsm8k")
    assert cmp.prompt is None and cmp.prompt_sha256 is not None
    captured = compare_pair(ShadowPair("p1", labelled, SHADOW), capture_content=True)
    assert captured is not None and captured.prompt == "double 3 + 4"


def test_failed_or_dropped_halves_are_not_compared() -> None:
    assert compare_pair(ShadowPair("p1", PRIMARY, None, dropped_reason="cap")) is None
    broken = replace(SHADOW, status=502, error_type="upstream_error")
    assert compare_pair(ShadowPair("p1", PRIMARY, broken)) is None


# -- tool calls ---------------------------------------------------------------------------


def _calls(*specs: str) -> tuple[ToolCall, ...]:
    """``name:{json}`` specs as tool calls."""
    return tuple(ToolCall(*spec.split(":", 1)) for spec in specs)


@pytest.mark.parametrize(
    ("primary", "shadow", "expected"),
    [
        # the same calls, however written
        (['w:{"city": "Paris"}'], ['w:{"city":"Paris"}'], (True, "same")),
        (['w:{"a": 1, "b": 2}'], ['w:{"b": 2, "a": 1}'], (True, "same")),
        (['w:{"n": 1}'], ['w:{"n": 1.0}'], (True, "same")),
        (['w:{"n": 10}'], ['w:{"n": 1e1}'], (True, "same")),
        (
            ['w:{"x": {"b": [1, {"d": 2, "c": 3}]}}'],
            ['w:{"x": {"b": [1.0, {"c": 3, "d": 2}]}}'],
            (True, "same"),
        ),
        (["w:"], ["w:{}"], (True, "same")),  # no arguments = an empty object
        (['a:{"x":1}', 'b:{"y":2}'], ['b:{"y":2}', 'a:{"x":1}'], (True, "same")),  # order
        (['a:{"x":1}', 'a:{"x":2}'], ['a:{"x":2}', 'a:{"x":1}'], (True, "same")),
        (["w:not json"], ["w:  not json "], (True, "same")),
        # the same tools, other arguments
        (['w:{"city": "Paris"}'], ['w:{"city": "Lyon"}'], (False, "wrong_arguments")),
        (['w:{"city": "Paris"}'], ['w:{"city": "paris"}'], (False, "wrong_arguments")),
        (['w:{"flag": true}'], ['w:{"flag": 1}'], (False, "wrong_arguments")),  # bool != 1
        (['w:{"n": "1"}'], ['w:{"n": 1}'], (False, "wrong_arguments")),  # string != number
        (['w:{"a": [1, 2]}'], ['w:{"a": [2, 1]}'], (False, "wrong_arguments")),  # list order
        (['w:{"a": 1}'], ['w:{"a": 1, "b": null}'], (False, "wrong_arguments")),
        (['a:{"x":1}', 'a:{"x":2}'], ['a:{"x":1}', 'a:{"x":1}'], (False, "wrong_arguments")),
        # other tools
        (["w:{}"], ["t:{}"], (False, "wrong_tool")),
        (["a:{}", "b:{}"], ["a:{}", "c:{}"], (False, "wrong_tool")),
        (["a:{}", "b:{}"], ["a:{}"], (False, "missing_call")),
        (["a:{}", "a:{}"], ["a:{}"], (False, "missing_call")),  # multiset, not set
        (["a:{}"], ["a:{}", "b:{}"], (False, "extra_call")),
        (["a:{}"], ["a:{}", 'a:{"x":1}'], (False, "extra_call")),
        # no call at all
        (["a:{}"], [], (False, "missing_call")),
    ],
)
def test_tool_calls_agree(
    primary: list[str], shadow: list[str], expected: tuple[bool, str]
) -> None:
    assert tool_calls_agree(_calls(*primary), _calls(*shadow)) == expected
    assert expected[1] in AGREEMENT_REASONS


def test_text_instead_of_a_call() -> None:
    assert tool_calls_agree(_calls("a:{}"), (), "It is sunny.") == (False, "text_instead_of_call")
    assert tool_calls_agree(_calls("a:{}"), (), "  ") == (False, "missing_call")


def test_canonical_arguments_ignore_key_order_and_number_spelling() -> None:
    assert canonical_arguments('{"a": 1, "b": [1.0, true]}') == canonical_arguments(
        '{"b": [1, true], "a": 1.0}'
    )
    assert canonical_arguments("[true]") != canonical_arguments("[1]")
    assert hash(canonical_arguments('{"x": 2}')) == hash(canonical_arguments('{"x": 2.0}'))


AGENT = replace(
    PRIMARY, text="", tool_calls=_calls('get_weather:{"city": "Paris"}'), agent_turns_before=3
)


def test_pair_of_tool_call_answers() -> None:
    same = compare_pair(
        ShadowPair(
            "p1", AGENT, replace(SHADOW, text="", tool_calls=_calls('get_weather:{"city":"Paris"}'))
        )
    )
    assert same is not None and (same.agree, same.reason, same.agent_hop) == (True, "same", 3)
    assert (same.primary_answer, same.shadow_answer) == ("get_weather()", "get_weather()")
    wrong = compare_pair(
        ShadowPair(
            "p1", AGENT, replace(SHADOW, text="", tool_calls=_calls('get_weather:{"city":"Rome"}'))
        ),
        capture_content=True,
    )
    assert wrong is not None and (wrong.agree, wrong.reason) == (False, "wrong_arguments")
    assert wrong.shadow_answer == 'get_weather({"city":"Rome"})'  # arguments only with capture
    text = compare_pair(ShadowPair("p1", AGENT, replace(SHADOW, text="Sunny in Paris.")))
    assert text is not None and (text.agree, text.reason, text.shadow_answer) == (
        False,
        "text_instead_of_call",
        None,
    )


def test_tool_call_pairs_are_not_graded_against_an_expected_answer() -> None:
    tagged = replace(AGENT, expected_answer="14")
    cmp = compare_pair(ShadowPair("p1", tagged, replace(SHADOW, text="#### 14")))
    assert cmp is not None and cmp.primary_correct is None and cmp.shadow_correct is None
    assert cmp.reason == "text_instead_of_call"


def test_call_instead_of_text_and_text_reasons() -> None:
    called = compare_pair(ShadowPair("p1", PRIMARY, replace(SHADOW, tool_calls=_calls("a:{}"))))
    assert called is not None and (called.agree, called.reason) == (False, "call_instead_of_text")
    assert called.primary_answer == "14" and called.shadow_answer == "a()"
    same = compare_pair(ShadowPair("p1", PRIMARY, replace(SHADOW, text="#### 14")))
    differ = compare_pair(ShadowPair("p1", PRIMARY, replace(SHADOW, text="#### 15")))
    empty = compare_pair(ShadowPair("p1", PRIMARY, replace(SHADOW, text="")))
    assert same is not None and same.reason == "same" and same.agent_hop == 0
    assert differ is not None and differ.reason == "different_answer"
    assert empty is not None and (empty.agree, empty.reason) == (None, "no_answer")
