"""MathQA option-letter extraction, options parsing and formula depth."""

from __future__ import annotations

import pytest

from scoring.datasets.mathqa import extract_choice, formula_depth, iter_mathqa, parse_options


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("so the answer is (c).", "c"),
        ("Answer: C", "c"),
        ("the answer is c ) 30", "c"),
        ("Hence the answer is option D.", "d"),
        ("#### e", "e"),
        ("8 * 5 = 40 , so b )", "b"),
        ("either (a) or (d): it is (d)", "d"),  # the last marker wins
        ("The answer is: b\nbecause 3 + 4 = 7", "b"),
        ("c", "c"),
        ("C.", "c"),
        ("(e)", "e"),
        ("the answer is a number we cannot know", None),  # "a" is an article here
        ("I don't know", None),
        ("", None),
    ],
)
def test_extract_choice(text: str, letter: str | None) -> None:
    assert extract_choice(text) == letter


def test_answer_statement_beats_an_earlier_marker() -> None:
    assert extract_choice("option (a) is 38, wrong. The answer is e") == "e"


def test_parse_options_in_mathqa_format() -> None:
    options = parse_options("a ) 38 , b ) 27.675 , c ) 30 , d ) 28 , e ) none of these")
    assert options == {"a": "38", "b": "27.675", "c": "30", "d": "28", "e": "none of these"}
    assert parse_options("a ) rs . 1 , 200 , b ) rs . 1 , 500")["a"] == "rs . 1 , 200"


def test_formula_depth_counts_operations() -> None:
    assert formula_depth("multiply(n0,n1)|divide(#0,const_100)|") == 2
    assert formula_depth("add(n0,n1)") == 1
    assert formula_depth("") == 0


def test_iter_mathqa_reads_records_and_rejects_bad_ones() -> None:
    record = {
        "Problem": "what is 4 times 10 ?",
        "options": "a ) 14 , b ) 40 , c ) 6 , d ) 0.4 , e ) 400",
        "correct": "b",
        "linear_formula": "multiply(n0,n1)|",
        "category": "general",
    }
    (item,) = iter_mathqa([record])
    assert item.correct == "b" and item.options["b"] == "40"
    assert item.depth == 1 and item.category == "general"
    with pytest.raises(ValueError, match="record 0"):
        list(iter_mathqa([{**record, "correct": "f"}]))
