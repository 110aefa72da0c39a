"""GSM8K: the shipped test set, its gold answers and depths, and answer extraction.

The test split (1,319 problems, MIT licence, ``data/LICENSE-gsm8k``) ships as package data
and is read with :mod:`importlib.resources`, so it works from a wheel as well as a checkout.

Answer extraction follows lm-evaluation-harness's ``gsm8k`` task (version 3.0):

- ``strict-match``: the first match of ``#### (\\-?[0-9\\.\\,]+)``;
- ``flexible-extract``: the *last* match of ``(-?[$0-9.,]{2,})|(-?[0-9]+)``, taking the
  first non-empty group.

The harness then compares strings, case-insensitively, after deleting ``,``, ``$``, any text
up to ``#### `` and one trailing ``.``. quanttrap deletes the same characters and then
compares the results as *numbers* (:func:`parse_number`), so ``18.00`` equals ``18``, and
strips every trailing ``.`` (``18...`` reads as 18) — the two places where it is more lenient
than the harness, whose string match would count both wrong. A match that is not a number
after that clean-up (e.g. an ellipsis ``...`` caught by the flexible pattern) is reported as
extracted but never correct, as in the harness.

The *depth* of a reference is its number of ``<<…>>`` calculator annotations. Eighteen test
rationales carry none (they were written as algebra); for those the depth falls back to
:func:`scoring.hops.logical_hops` over the rationale, so every item has a depth ≥ 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

from scoring.hops import calculator_steps, logical_hops

__all__ = [
    "FLEXIBLE_PATTERN",
    "STRICT_PATTERN",
    "Gsm8kItem",
    "extract_flexible",
    "extract_strict",
    "gold_answer",
    "iter_gsm8k",
    "parse_number",
    "rationale",
    "reference_depth",
]

STRICT_PATTERN = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")

_DATA_PACKAGE = "scoring.datasets.data"
_TEST_FILE = "gsm8k_test.jsonl"
_FINAL_MARKER = "####"


@dataclass(frozen=True, slots=True)
class Gsm8kItem:
    """One GSM8K test problem: ``answer`` is the full reference (rationale + ``#### n``)."""

    index: int
    question: str
    answer: str
    gold: Decimal
    depth: int


def extract_strict(text: str) -> str | None:
    """The harness's ``strict-match`` answer: first ``#### <number>``, else ``None``."""
    match = STRICT_PATTERN.search(text)
    return match.group(1).strip() if match else None


def extract_flexible(text: str) -> str | None:
    """The harness's ``flexible-extract`` answer: the last number-like run, else ``None``."""
    found = FLEXIBLE_PATTERN.findall(text)
    if not found:
        return None
    number_like, integer = found[-1]
    return str(number_like or integer).strip()


def parse_number(text: str) -> Decimal | None:
    """Read an extracted answer as a number: ``$`` and ``,`` dropped, trailing ``.`` too.

    Also accepts a whole reference (text up to the last ``#### `` is dropped). ``None`` if
    what is left is not a plain decimal number.
    """
    if _FINAL_MARKER in text:
        text = text.rsplit(_FINAL_MARKER, 1)[1]
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    if not cleaned or not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", cleaned):
        return None
    return Decimal(cleaned)


def gold_answer(reference: str) -> Decimal:
    """The number after the last ``####`` of a GSM8K reference answer."""
    if _FINAL_MARKER not in reference:
        raise ValueError("a GSM8K reference must end with '#### <number>'")
    value = parse_number(reference)
    if value is None:
        tail = reference.rsplit(_FINAL_MARKER, 1)[1].strip()
        raise ValueError(f"the GSM8K reference's final answer is not a number: {tail!r}")
    return value


def rationale(reference: str) -> str:
    """The reasoning part of a reference, without the final ``#### n`` line."""
    return reference.rsplit(_FINAL_MARKER, 1)[0]


def reference_depth(reference: str) -> int:
    """Reasoning steps of a reference: calculator annotations, else stated results."""
    return calculator_steps(reference) or logical_hops(rationale(reference))


def iter_gsm8k() -> Iterator[Gsm8kItem]:
    """The shipped GSM8K test set, in file order."""
    source = resources.files(_DATA_PACKAGE).joinpath(_TEST_FILE)
    with source.open("r", encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            row = json.loads(line)
            answer = row["answer"]
            yield Gsm8kItem(
                index=index,
                question=row["question"],
                answer=answer,
                gold=gold_answer(answer),
                depth=reference_depth(answer),
            )
