"""Graders: is a completion's final answer the reference's?

One grader per evaluation set, all with the same two methods so canaries, client-tagged
evaluation traffic and the ``quanttrap grade`` command treat them alike:

- ``grade(completion, reference) -> GradeResult`` — the verdict, what was extracted, what
  was expected and which extraction rule produced the answer;
- ``depth(reference) -> int | None`` — reasoning steps the reference needs (``None`` when the
  reference does not say).

``gsm8k`` and ``multihop`` share lm-evaluation-harness's GSM8K extraction: ``strict-match``
(``#### n``) when the completion has it, else ``flexible-extract`` (the last number), and
compare numbers as numbers (:mod:`scoring.datasets.gsm8k`). ``mathqa`` reads an option
letter (:mod:`scoring.datasets.mathqa`). Get one by name with :func:`get_grader`.
A reference that cannot be read raises ValueError: that is bad input, not a wrong answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, Protocol

from scoring.datasets.gsm8k import (
    extract_flexible,
    extract_strict,
    gold_answer,
    parse_number,
    reference_depth,
)
from scoring.datasets.mathqa import CHOICES, extract_choice
from scoring.hops import logical_hops

__all__ = [
    "GRADERS",
    "GradeResult",
    "Grader",
    "Gsm8kGrader",
    "MathQAGrader",
    "Method",
    "MultiHopGrader",
    "get_grader",
]

Method = Literal["strict-match", "flexible-extract", "choice", "none"]


@dataclass(frozen=True, slots=True)
class GradeResult:
    """One verdict. ``extracted`` is the completion's answer as found (``None`` if nothing
    was found); ``expected`` the reference's answer in canonical form."""

    correct: bool
    extracted: str | None
    expected: str
    method: Method


class Grader(Protocol):
    name: str

    def grade(self, completion: str, reference: str) -> GradeResult: ...

    def depth(self, reference: str) -> int | None: ...


class Gsm8kGrader:
    """GSM8K: the reference is the dataset's answer text, ending ``#### <number>``."""

    name = "gsm8k"

    def grade(self, completion: str, reference: str) -> GradeResult:
        return _grade_number(completion, gold_answer(reference))

    def depth(self, reference: str) -> int | None:
        return reference_depth(reference) or None


class MultiHopGrader:
    """The synthetic multi-hop set: the reference is the integer answer.

    A full reference completion (one step per line, then ``#### n``) is accepted too, and
    then also gives the depth (one logical hop per stated step).
    """

    name = "multihop"

    def grade(self, completion: str, reference: str) -> GradeResult:
        expected = parse_number(reference)
        if expected is None or expected != expected.to_integral_value():
            raise ValueError(f"a multi-hop reference must be an integer, got {reference!r}")
        return _grade_number(completion, expected)

    def depth(self, reference: str) -> int | None:
        return logical_hops(reference) or None


class MathQAGrader:
    """MathQA: the reference is the correct option letter (``c``, ``(c)``, ``c )``)."""

    name = "mathqa"

    def grade(self, completion: str, reference: str) -> GradeResult:
        expected = extract_choice(reference.strip())
        if expected is None or expected not in CHOICES:
            raise ValueError(f"a MathQA reference must be an option letter a-e, got {reference!r}")
        chosen = extract_choice(completion)
        method: Method = "choice" if chosen is not None else "none"
        return GradeResult(chosen == expected, chosen, expected, method)

    def depth(self, reference: str) -> int | None:
        return None  # a bare letter carries no depth; MathQAItem.depth has the formula's


GRADERS: Mapping[str, Grader] = MappingProxyType(
    {g.name: g for g in (Gsm8kGrader(), MathQAGrader(), MultiHopGrader())}
)
"""The stateless graders by name (read-only)."""


def get_grader(name: str) -> Grader:
    """The grader called ``name``; ValueError listing the known names otherwise."""
    try:
        return GRADERS[name]
    except KeyError:
        known = ", ".join(sorted(GRADERS))
        raise ValueError(f"unknown dataset {name!r}; known: {known}") from None


def _grade_number(completion: str, expected: Decimal) -> GradeResult:
    method: Method = "strict-match"
    extracted = extract_strict(completion)
    if extracted is None:
        method = "flexible-extract"
        extracted = extract_flexible(completion)
    if extracted is None:
        return GradeResult(False, None, _canonical(expected), "none")
    value = parse_number(extracted)
    return GradeResult(
        value is not None and value == expected, extracted, _canonical(expected), method
    )


def _canonical(value: Decimal) -> str:
    """``Decimal('18.00')`` → ``'18'``, ``Decimal('0.50')`` → ``'0.5'``; no exponent form."""
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text
