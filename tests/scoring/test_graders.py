"""Graders: registry, verdicts, methods, and bad references."""

from __future__ import annotations

import pytest

from scoring.datasets.gsm8k import iter_gsm8k
from scoring.datasets.multihop import generate, reference_completion
from scoring.graders import GRADERS, get_grader

REFERENCE = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer’s market.\n#### 18"
)


def test_registry_names() -> None:
    assert sorted(GRADERS) == ["gsm8k", "mathqa", "multihop"]
    assert get_grader("gsm8k").name == "gsm8k"
    with pytest.raises(ValueError, match="known: gsm8k, mathqa, multihop"):
        get_grader("mmlu")


@pytest.mark.parametrize(
    ("completion", "correct", "extracted", "method"),
    [
        ("9 * 2 = 18\n#### 18", True, "18", "strict-match"),
        ("#### 18.00", True, "18.00", "strict-match"),
        ("She makes $18.", True, "$18.", "flexible-extract"),
        ("#### 17\nno wait, 18", False, "17", "strict-match"),  # strict wins when present
        ("She makes 18 dollars from 9 eggs", False, "9", "flexible-extract"),  # last number
        ("I cannot tell", False, None, "none"),
    ],
)
def test_gsm8k_verdicts(completion: str, correct: bool, extracted: str | None, method: str) -> None:
    result = get_grader("gsm8k").grade(completion, REFERENCE)
    assert (result.correct, result.extracted, result.method) == (correct, extracted, method)
    assert result.expected == "18"


def test_gsm8k_grader_accepts_every_shipped_reference_as_its_own_answer() -> None:
    grader = get_grader("gsm8k")
    for item in iter_gsm8k():
        result = grader.grade(item.answer, item.answer)
        assert result.correct and result.method == "strict-match", item.index
        assert grader.depth(item.answer) == item.depth


def test_gsm8k_bad_reference_is_an_error_not_a_wrong_answer() -> None:
    with pytest.raises(ValueError):
        get_grader("gsm8k").grade("#### 5", "5")


def test_multihop_integer_reference_and_full_reference() -> None:
    grader = get_grader("multihop")
    completion = "m = 7 + 5 = 12\nq = 12 * 7 = 84\n#### 84"
    assert grader.grade(completion, "84").correct
    assert grader.grade(completion, completion).correct
    assert not grader.grade("m = 7 + 5 = 12\n#### 12", "84").correct
    assert grader.depth(completion) == 2
    assert grader.depth("84") is None
    with pytest.raises(ValueError, match="integer"):
        grader.grade(completion, "8.5")
    with pytest.raises(ValueError, match="integer"):
        grader.grade(completion, "eighty-four")


def test_mathqa_letters() -> None:
    grader = get_grader("mathqa")
    right = grader.grade("10 * 4 = 40, so the answer is b )", "b")
    assert right.correct and right.extracted == "b" and right.method == "choice"
    assert grader.grade("Answer: B", "(b)").correct
    wrong = grader.grade("the answer is (c)", "b")
    assert not wrong.correct and wrong.expected == "b"
    nothing = grader.grade("no idea", "b")
    assert not nothing.correct and nothing.method == "none"
    with pytest.raises(ValueError, match="option letter"):
        grader.grade("b", "40")


def test_multihop_grader_reads_the_generators_reference_format() -> None:
    grader = get_grader("multihop")
    for item in generate(40, seed=3):
        reference = reference_completion(item)
        assert grader.grade(reference, str(item.answer)).correct
        assert grader.depth(reference) == item.depth
        wrong = reference.rsplit("#", 1)[0] + f"# {item.answer + 1}"
        assert not grader.grade(wrong, str(item.answer)).correct
