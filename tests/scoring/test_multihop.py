"""The synthetic multi-hop generator: deterministic, right answers, real chains, clean splits."""

from __future__ import annotations

import re

import pytest

from scoring.datasets.multihop import (
    EVAL_FRACTION,
    MAX_VALUE,
    MultiHopItem,
    as_chat_messages,
    generate,
    reference_completion,
    split_of,
)

_LITERAL = re.compile(r"^([a-z]) = (\d+)$")
_DEFINITION = re.compile(r"^([a-z]) = ([a-z]) ([-+*]) ([a-z]|\d+)$")
_STEP = re.compile(r"^([a-z]) = (\d+) ([-+*]) (\d+) = (\d+)$")
_OPS = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__}


def _solve(question: str) -> tuple[dict[str, int], list[tuple[str, str, str, str]], str]:
    """An independent reading of the question: every value, the definitions, the target."""
    *statements, ask = question.split(". ")
    target = re.fullmatch(r"What is ([a-z])\?", ask)
    assert target is not None, ask
    literal = _LITERAL.match(statements[0])
    assert literal is not None, statements[0]
    values = {literal[1]: int(literal[2])}
    definitions = []
    for statement in statements[1:]:
        match = _DEFINITION.match(statement.removesuffix("."))
        assert match is not None, statement
        name, left, op, right = match.groups()
        assert name not in values, f"{name} defined twice"
        right_value = values[right] if right.isalpha() else int(right)
        values[name] = _OPS[op](values[left], right_value)
        definitions.append((name, left, op, right))
    return values, definitions, target[1]


@pytest.fixture(scope="module")
def items() -> list[MultiHopItem]:
    return generate(400, seed=11)


def test_same_seed_same_items_other_seed_other_items() -> None:
    assert generate(50, seed=3) == generate(50, seed=3)
    assert generate(50, seed=3, split="train") == generate(50, seed=3, split="train")
    assert generate(50, seed=3) != generate(50, seed=4)
    # A longer set extends a shorter one: the n-th item does not depend on n.
    assert generate(80, seed=3)[:50] == generate(50, seed=3)


def test_depths_are_dealt_round_robin() -> None:
    chosen = generate(12, seed=5, depths=(2, 7, 4))
    assert [item.depth for item in chosen] == [2, 7, 4] * 4
    assert {item.depth for item in generate(16, seed=5)} == set(range(1, 9))


def test_answers_and_steps_recomputed_independently(items: list[MultiHopItem]) -> None:
    for item in items:
        values, definitions, target = _solve(item.question)
        assert item.answer == values[target]
        assert len(item.steps) == item.depth == len(definitions)
        for step, (name, left, op, right) in zip(item.steps, definitions, strict=True):
            match = _STEP.match(step)
            assert match is not None, step
            right_value = values[right] if right.isalpha() else int(right)
            assert match.groups() == (
                name,
                str(values[left]),
                op,
                str(right_value),
                str(values[name]),
            )


def test_every_step_needs_the_one_before(items: list[MultiHopItem]) -> None:
    """A chain, not a list of independent sums: step k reads step k-1's result, and the
    question asks for the last variable, so dropping any step loses the answer."""
    for item in items:
        values, definitions, target = _solve(item.question)
        names = [name for name, *_ in definitions]
        assert target == names[-1]
        previous = next(iter(values))  # the literal
        for name, left, _, right in definitions:
            assert left == previous
            assert right != previous, f"{name} = {left} ... {right} collapses the chain"
            previous = name
    # Some steps fetch an earlier variable from further back: a second lookup in the context.
    assert any(re.search(r"[-+*] [a-z]\.", item.question) for item in items)


def test_values_stay_small(items: list[MultiHopItem]) -> None:
    for item in items:
        values, _, _ = _solve(item.question)
        assert all(0 <= value <= MAX_VALUE for value in values.values())
        multipliers = re.findall(r"\* (\d+) =", "\n".join(item.steps))
        assert all(2 <= int(m) <= 9 for m in multipliers)


def test_no_question_is_in_both_splits() -> None:
    train = generate(6000, seed=1, split="train")
    held_out = generate(300, seed=1, split="eval")  # the same seed on purpose
    assert {i.question for i in train}.isdisjoint(i.question for i in held_out)
    assert all(split_of(i.question) == "train" for i in train)
    assert all(split_of(i.question) == "eval" for i in held_out)
    assert len({i.question for i in held_out}) == len(held_out)


def test_split_shares_follow_the_hash() -> None:
    # Undrawn candidates: every question the generator proposes, before the split filter.
    shares = [split_of(f"a = {n}. b = a + 1. What is b?") == "eval" for n in range(2000)]
    assert abs(sum(shares) / len(shares) - EVAL_FRACTION) < 0.03


def test_reference_completion_and_messages(items: list[MultiHopItem]) -> None:
    item = items[0]
    lines = reference_completion(item).split("\n")
    assert lines[:-1] == list(item.steps)
    assert lines[-1] == f"#### {item.answer}"
    assert as_chat_messages(item) == [{"role": "user", "content": item.question}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1, "depths": (1,)}, "n must be"),
        ({"n": 1, "depths": ()}, "must not be empty"),
        ({"n": 1, "depths": (0,)}, "depth must be"),
        ({"n": 1, "depths": (26,)}, "depth must be"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(seed=0, **kwargs)  # type: ignore[arg-type]
