"""Logical-hop heuristic and depth buckets."""

from __future__ import annotations

import pytest

from scoring.hops import DEPTH_BUCKETS, calculator_steps, depth_bucket, logical_hops

GSM8K_REFERENCE = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer’s market.\n#### 18"
)


def test_calculator_markers_are_counted_one_each() -> None:
    assert calculator_steps(GSM8K_REFERENCE) == 2
    assert logical_hops(GSM8K_REFERENCE) == 2  # final "#### 18" is not a step
    two_on_one_line = "It costs <<2*3=6>>6 and <<6+1=7>>7 in all."
    assert logical_hops(two_on_one_line) == 2


@pytest.mark.parametrize(
    ("text", "hops"),
    [
        ("First, 3 * 4 = 12. Then 12 + 5 = 17.\nThe answer is 17.", 2),
        ("m = 7 + 5 = 12\nq = 12 * 7 = 84\n#### 84", 2),  # the multi-hop set's format
        ("The price is 0.75 = 3/4. So x = $26.", 2),  # a decimal point does not split
        ("So the total is = -3 degrees.", 1),
        ("x = y + z, so nothing is computed.", 0),
        ("#### 17", 0),
        ("The answer is 17.", 0),
        ("", 0),
        ("Step one: 2 + 2 = 4! Step two: 4 * 2 = 8? Done = 8", 3),
    ],
)
def test_free_text_hops(text: str, hops: int) -> None:
    assert logical_hops(text) == hops


@pytest.mark.parametrize(
    ("depth", "bucket"),
    [
        (None, "unknown"),
        (0, "0"),
        (1, "1-2"),
        (2, "1-2"),
        (3, "3-4"),
        (4, "3-4"),
        (5, "5-6"),
        (6, "5-6"),
        (7, "7+"),
        (12, "7+"),
    ],
)
def test_depth_buckets(depth: int | None, bucket: str) -> None:
    assert depth_bucket(depth) == bucket
    assert bucket in DEPTH_BUCKETS


def test_reasoning_text_counts_and_a_restated_step_counts_once() -> None:
    reasoning = "First 3 * 4 = 12.\nThen 12 + 5 = 17."
    answer = "Then 12 + 5 = 17.\n#### 17"
    assert logical_hops(answer) == 1
    assert logical_hops("", reasoning) == 2
    assert logical_hops(answer, reasoning) == 2  # the answer restates the second step
    assert logical_hops("  THEN 12 +  5 = 17.", reasoning) == 2  # case and spaces aside
    assert logical_hops("Also 17 * 2 = 34.", reasoning) == 3
    assert logical_hops(GSM8K_REFERENCE, "") == logical_hops(GSM8K_REFERENCE) == 2
