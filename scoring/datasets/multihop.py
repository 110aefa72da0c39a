"""Synthetic multi-hop arithmetic: the probe model's task and the default canary set.

A problem defines one variable by a number and then a chain of variables, each computed from
the one before it and either a constant or an earlier variable::

    k = 7. m = k + 5. q = m * k. What is q?

Its *depth* is the number of operations on the chain, so a correct answer needs exactly
``depth`` reasoning steps, each of which depends on the result of the one before (an error
anywhere propagates to the answer). The reference chain of thought states one logical hop per
line, substituting values, and ends with GSM8K's final-answer marker so one grader serves
both sets::

    m = 7 + 5 = 12
    q = 12 * 7 = 84
    #### 84

Every value, intermediate results included, stays in 0..99, so a tiny model can learn the
arithmetic with digits as single tokens.

Train/evaluation separation: each question belongs to exactly one split, decided by a stable
hash of its text (:func:`split_of`; about 10% of questions are ``"eval"``). The probe model
trains only on ``"train"`` questions, so an ``"eval"`` set never contains a training question
whatever seeds were used. (The *arithmetic* of an evaluation step, e.g. ``7 + 5``, is seen in
training with other variable names: the held-out unit is the question, not the sum.)

Determinism: the same ``n``, ``seed``, ``depths`` and ``split`` always give the same items
(``random.Random`` with an integer seed and SHA-256 are stable across Python versions).
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EVAL_FRACTION",
    "MAX_VALUE",
    "MultiHopItem",
    "Split",
    "as_chat_messages",
    "generate",
    "reference_completion",
    "split_of",
]

Split = Literal["train", "eval"]

MAX_VALUE = 99
"""Largest value any variable takes; every value is in ``0..MAX_VALUE``."""

EVAL_FRACTION = 0.1
"""Share of all possible questions that belong to the ``"eval"`` split (by hash)."""

_FINAL_MARKER = "####"
_NAMES = string.ascii_lowercase
_MAX_DEPTH = len(_NAMES) - 1  # one distinct letter per variable
_VARIABLE_OPERAND_PROBABILITY = 0.25
_MAX_MULTIPLIER = 9
_HASH_BUCKETS = 1000


@dataclass(frozen=True)
class MultiHopItem:
    """One problem.

    ``question`` is the user prompt, ``answer`` the value of the asked variable, ``depth`` the
    number of reasoning steps (operations) needed, and ``steps`` the reference chain of thought,
    one line per step (``len(steps) == depth``), without the final-answer line.
    """

    question: str
    answer: int
    depth: int
    steps: tuple[str, ...]


def split_of(question: str) -> Split:
    """The split a question belongs to, fixed by a SHA-256 hash of its text."""
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % _HASH_BUCKETS
    return "eval" if bucket < EVAL_FRACTION * _HASH_BUCKETS else "train"


def generate(
    n: int,
    *,
    seed: int,
    depths: Iterable[int] = range(1, 9),
    split: Split = "eval",
) -> list[MultiHopItem]:
    """``n`` distinct problems of the given ``split``; item ``i`` has depth ``depths[i % k]``.

    Depths are dealt round-robin so any prefix of ``k * m`` items holds ``m`` problems of each
    depth. Candidates from the other split, and repeats, are drawn again.
    """
    depth_cycle = tuple(depths)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not depth_cycle:
        raise ValueError("depths must not be empty")
    for depth in depth_cycle:
        if not 1 <= depth <= _MAX_DEPTH:
            raise ValueError(f"depth must be in 1..{_MAX_DEPTH}, got {depth}")
    rng = random.Random(seed)
    seen: set[str] = set()
    items: list[MultiHopItem] = []
    while len(items) < n:
        depth = depth_cycle[len(items) % len(depth_cycle)]
        item = _draw(rng, depth)
        if item.question in seen or split_of(item.question) != split:
            continue
        seen.add(item.question)
        items.append(item)
    return items


def reference_completion(item: MultiHopItem) -> str:
    """The target assistant answer: one step per line, then ``#### <answer>``."""
    return "\n".join((*item.steps, f"{_FINAL_MARKER} {item.answer}"))


def as_chat_messages(item: MultiHopItem) -> list[dict[str, str]]:
    """The OpenAI ``messages`` that ask the question (a single user turn, no system prompt)."""
    return [{"role": "user", "content": item.question}]


def _draw(rng: random.Random, depth: int) -> MultiHopItem:
    names = rng.sample(_NAMES, depth + 1)
    values = [rng.randint(0, MAX_VALUE)]
    definitions = [f"{names[0]} = {values[0]}."]
    steps: list[str] = []
    for hop in range(1, depth + 1):
        left = values[-1]
        operand_name, right = _pick_operand(rng, names[: hop - 1], values)
        op, right = _pick_operation(rng, left, right, operand_name is not None)
        if op is None:  # the earlier variable fits no operation: fall back to a constant
            operand_name = None
            op, right = _pick_operation(rng, left, None, False)
        assert op is not None  # a constant always fits some operation
        result = _apply(op, left, right)
        shown = operand_name if operand_name is not None else str(right)
        definitions.append(f"{names[hop]} = {names[hop - 1]} {op} {shown}.")
        steps.append(f"{names[hop]} = {left} {op} {right} = {result}")
        values.append(result)
    question = " ".join((*definitions, f"What is {names[depth]}?"))
    return MultiHopItem(question=question, answer=values[-1], depth=depth, steps=tuple(steps))


def _pick_operand(
    rng: random.Random, earlier: Sequence[str], values: Sequence[int]
) -> tuple[str | None, int | None]:
    """An earlier variable (a second lookup in the context) or ``None`` for a constant.

    The variable just computed is excluded so that no step collapses (``m - m`` would make the
    answer independent of the chain before it).
    """
    if earlier and rng.random() < _VARIABLE_OPERAND_PROBABILITY:
        index = rng.randrange(len(earlier))
        return earlier[index], values[index]
    return None, None


def _pick_operation(
    rng: random.Random, left: int, right: int | None, fixed_right: bool
) -> tuple[str | None, int]:
    """An operation whose result stays in ``0..MAX_VALUE``, and its right operand.

    With ``fixed_right`` the right operand is an earlier variable's value and only operations
    that keep the result in range qualify; otherwise a fitting constant is drawn.
    """
    if fixed_right:
        assert right is not None
        fitting = [op for op in ("+", "-", "*") if _fits(op, left, right)]
        return (rng.choice(fitting), right) if fitting else (None, right)
    choices: list[tuple[str, int, int]] = []  # operation, smallest and largest constant
    if left < MAX_VALUE:
        choices.append(("+", 1, MAX_VALUE - left))
    if left > 0:
        choices.append(("-", 1, left))
    if 2 <= left <= MAX_VALUE // 2:
        choices.append(("*", 2, min(_MAX_MULTIPLIER, MAX_VALUE // left)))
    op, low, high = rng.choice(choices)
    return op, rng.randint(low, high)


def _fits(op: str, left: int, right: int) -> bool:
    if op == "*" and not 2 <= right <= _MAX_MULTIPLIER:
        return False
    return 0 <= _apply(op, left, right) <= MAX_VALUE


def _apply(op: str, left: int, right: int) -> int:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    return left * right
