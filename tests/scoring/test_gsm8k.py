"""The shipped GSM8K set and lm-evaluation-harness-compatible answer extraction."""

from __future__ import annotations

import collections
from decimal import Decimal

import pytest

from scoring.datasets.gsm8k import (
    extract_flexible,
    extract_strict,
    gold_answer,
    iter_gsm8k,
    parse_number,
    reference_depth,
)
from scoring.hops import calculator_steps, depth_bucket


@pytest.fixture(scope="module")
def items() -> list:  # type: ignore[type-arg]
    return list(iter_gsm8k())


def test_the_full_test_split_ships(items: list) -> None:  # type: ignore[type-arg]
    assert len(items) == 1319
    first = items[0]
    assert first.question.startswith("Janet’s ducks lay 16 eggs per day.")
    assert first.gold == Decimal(18) and first.depth == 2
    assert [i.index for i in items[:3]] == [0, 1, 2]
    assert all(i.depth >= 1 for i in items)


def test_depth_strata_match_the_papers_table_2(items: list) -> None:  # type: ignore[type-arg]
    # Paper Table 2: 427 / 663 / 199 / 30 problems at 1-2 / 3-4 / 5-6 / 7+ steps.
    counts = collections.Counter(depth_bucket(i.depth) for i in items)
    assert counts["3-4"] == 663 and counts["7+"] == 30
    assert abs(counts["1-2"] - 427) <= 3 and abs(counts["5-6"] - 199) <= 3
    assert sum(counts.values()) == 1319


def test_unannotated_rationales_fall_back_to_stated_results(items: list) -> None:  # type: ignore[type-arg]
    plain = [i for i in items if calculator_steps(i.answer) == 0]
    assert len(plain) == 18
    book = next(i for i in plain if "Dividing both sides by .75" in i.answer)
    assert book.depth == 3  # "X - X*25% = $19.50", ".75X = $19.50", "X = $26."


def test_every_gold_answer_is_an_integer(items: list) -> None:  # type: ignore[type-arg]
    assert all(i.gold == i.gold.to_integral_value() for i in items)
    with_commas = next(i for i in items if "#### 1,450,000" in i.answer)
    assert with_commas.gold == Decimal(1450000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so 5 + 1 = 6\n#### 6", "6"),
        ("#### 5 and later #### 6", "5"),  # the harness takes the first match
        ("#### -3.5", "-3.5"),
        ("#### 1,000", "1,000"),
        ("####5", None),  # the harness's pattern wants one space
        ("#### $5", None),  # ... and a digit right after it
        ("the answer is 6", None),
    ],
)
def test_strict_match(text: str, expected: str | None) -> None:
    assert extract_strict(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 5. Actually 6.", "6."),
        ("She pays $1,000 in total", "$1,000"),
        ("x 7 y", "7"),  # a single digit comes from the second group
        ("-3 degrees", "-3"),
        ("12 eggs and 3 hens", "3"),  # the last one
        ("the total is 18...", "18..."),
        ("the total is 18. And so on ...", "..."),  # the pattern catches an ellipsis too
        ("no digits at all", None),
    ],
)
def test_flexible_extract(text: str, expected: str | None) -> None:
    assert extract_flexible(text) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("18.00", Decimal(18)),
        ("1,000", Decimal(1000)),
        ("$5", Decimal(5)),
        ("6.", Decimal(6)),
        ("18...", Decimal(18)),
        ("-0.5", Decimal("-0.5")),
        (".5", Decimal("0.5")),
        ("answer\n#### 72", Decimal(72)),
        ("...", None),
        ("1.5.3", None),
        ("", None),
        ("abc", None),
    ],
)
def test_parse_number(text: str, value: Decimal | None) -> None:
    assert parse_number(text) == value


def test_gold_answer_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="must end with"):
        gold_answer("no marker here 5")
    with pytest.raises(ValueError, match="not a number"):
        gold_answer("steps\n#### five")


def test_reference_depth_counts_annotations() -> None:
    assert reference_depth("a <<1+1=2>>2\nb <<2*3=6>>6\n#### 6") == 2
    assert reference_depth("#### 6") == 0
