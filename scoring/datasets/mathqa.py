"""MathQA: five-option (a–e) multiple choice, the chosen letter, and reasoning depth.

MathQA (Amini et al., 2019, Apache-2.0) is not shipped; its records are read from whatever
the caller loaded (the original JSON has ``Problem``, ``Rationale``, ``options``,
``correct``, ``annotated_formula``, ``linear_formula``, ``category``). Options come as one
string, ``"a ) 38 , b ) 27.675 , c ) 30 , d ) 28 , e ) none of these"``.

:func:`extract_choice` finds the letter a completion chose. In order of preference, the last
occurrence of:

1. an answer statement — ``answer is (c)``, ``answer: C``, ``answer is c )``, ``#### c``;
2. an option marker — ``(c)``, ``c )`` or ``c)``;
3. the whole completion being one letter (``"c"``, ``"C."``).

A letter after "answer is" must stand alone (followed by ``)``, punctuation, a line end or
the end of the text), so "the answer is a number" is not read as option a. The *depth* of a
problem is the number of operations in its ``linear_formula``
(``multiply(n0,n1)|divide(#0,const_100)|`` → 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHOICES",
    "MathQAItem",
    "extract_choice",
    "formula_depth",
    "iter_mathqa",
    "parse_options",
]

CHOICES = "abcde"

_STANDALONE = r"(?=\s*(?:[).,;:!?]|$))"
_STATEMENT = re.compile(
    r"(?:answer\s*(?:is|:)?|####)\s*(?:option\s*)?[:\-]?\s*\(?([a-e])\)?" + _STANDALONE,
    re.IGNORECASE | re.MULTILINE,
)
_MARKER = re.compile(r"\(([a-e])\)|(?<![a-z])([a-e])\s?\)", re.IGNORECASE)
_ALONE = re.compile(r"\s*\(?([a-e])\)?[.)]?\s*", re.IGNORECASE)
_OPTION = re.compile(r"(?:^|,)\s*([a-e])\s*\)\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MathQAItem:
    """One MathQA problem; ``options`` maps letters to option texts, ``correct`` a letter."""

    problem: str
    options: Mapping[str, str]
    correct: str
    depth: int | None
    category: str | None = None


def extract_choice(text: str) -> str | None:
    """The option letter (lower case) a completion chose, else ``None``."""
    for pattern in (_STATEMENT, _MARKER):
        found = pattern.findall(text)
        if found:
            last = found[-1]
            return str(last if isinstance(last, str) else last[0] or last[1]).lower()
    alone = _ALONE.fullmatch(text)
    return alone.group(1).lower() if alone else None


def parse_options(options: str) -> dict[str, str]:
    """``"a ) 38 , b ) 27.675 , ..."`` → ``{"a": "38", "b": "27.675", ...}``."""
    marks = list(_OPTION.finditer(options))
    out: dict[str, str] = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(options)
        out[mark.group(1).lower()] = options[mark.end() : end].strip().rstrip(",").strip()
    return out


def formula_depth(linear_formula: str) -> int:
    """Number of operations in a MathQA ``linear_formula`` (``|``-separated)."""
    return sum(1 for op in linear_formula.split("|") if op.strip())


def iter_mathqa(records: Iterable[Mapping[str, Any]]) -> Iterator[MathQAItem]:
    """Turn MathQA's JSON records into items; raises ValueError naming a bad record."""
    for i, rec in enumerate(records):
        correct = str(rec.get("correct", "")).strip().lower()
        if correct not in CHOICES or not correct:
            raise ValueError(f"record {i}: 'correct' must be one of a-e, got {correct!r}")
        formula = rec.get("linear_formula")
        yield MathQAItem(
            problem=str(rec.get("Problem", "")),
            options=parse_options(str(rec.get("options", ""))),
            correct=correct,
            depth=formula_depth(formula) if isinstance(formula, str) and formula else None,
            category=rec.get("category"),
        )
