"""Shadow answer agreement: final answers compared as numbers or normalised text."""

from __future__ import annotations

from dataclasses import replace

from core.records import RequestRecord, ShadowPair
from scoring.comparison import answers_agree, compare_pair, final_answer, normalise_text

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
