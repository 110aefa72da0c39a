"""Shadow answer agreement: did the shadow variant give the primary's final answer?

No labels are needed. Each completion's final answer is extracted with the grader's own
extraction for the request's dataset (GSM8K-style — ``#### n``, else the last number — when
no dataset is named; the option letter for MathQA). Two answers that both read as numbers are
compared as numbers (``18.00`` = ``18``); anything else is compared as normalised text
(case-folded, white space collapsed, trailing punctuation dropped). When neither completion
holds an extractable answer, the whole completions are compared as normalised text, so chat
traffic without numbers still gets a (strict) verdict.

When the primary was tagged with an expected answer, both halves are also graded against it,
which gives the paired verdicts McNemar's test needs.

**Tool calls.** When the primary answered with tool calls (an agent hop), the shadow's answer
is compared as tool calls: the same tools as a multiset, each with the same arguments, agree.
Arguments are parsed as JSON and canonicalised (key order is irrelevant, numbers compare as
numbers so ``1`` equals ``1.0``, ``true`` is not ``1``, strings compare exactly); arguments
that are not JSON compare as their stripped text. Otherwise :attr:`PairComparison.reason`
says what differs, checked in this order:

- ``text_instead_of_call``: the shadow answered text (``missing_call`` if it gave nothing);
- ``wrong_arguments``: the same tools, as a multiset, but some arguments differ;
- ``missing_call`` / ``extra_call``: the shadow called only a subset / a superset of the
  primary's tools (by name, as a multiset);
- ``wrong_tool``: some tools differ both ways.

When the primary answered text and the shadow called a tool, the reason is
``call_instead_of_text``. Text answers keep the comparison above, with reason ``same`` or
``different_answer``, and ``no_answer`` when a side has no text at all (``agree`` is then
``None``). Every reason is one of :data:`AGREEMENT_REASONS`, a fixed set safe as a metric
label. Tool-call answers are not graded against an expected answer (that is for text).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from core.records import RequestRecord, ShadowPair, ToolCall
from scoring.datasets.gsm8k import extract_flexible, extract_strict, parse_number
from scoring.datasets.mathqa import extract_choice
from scoring.evaluation import DEFAULT_DATASET, grade_answer, prompt_sha256

__all__ = [
    "AGREEMENT_REASONS",
    "VERDICT_LABELS",
    "PairComparison",
    "answers_agree",
    "canonical_arguments",
    "compare_pair",
    "final_answer",
    "normalise_text",
    "tool_calls_agree",
    "verdict_label",
]

AGREEMENT_REASONS: Final = (
    "same",
    "different_answer",
    "no_answer",
    "wrong_tool",
    "wrong_arguments",
    "missing_call",
    "extra_call",
    "text_instead_of_call",
    "call_instead_of_text",
)
"""Every value :attr:`PairComparison.reason` takes (see the module docstring)."""

VERDICT_LABELS: Final = (
    "agree",
    "text_disagree",
    "unknown",
    "wrong_tool",
    "wrong_arguments",
    "missing_call",
    "extra_call",
    "text_instead_of_call",
    "call_instead_of_text",
)
"""The comparison outcome as a bounded metric label (:func:`verdict_label`)."""

_LABEL_OF_REASON: Final = {"same": "agree", "different_answer": "text_disagree"}

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class PairComparison:
    """The primary's and the shadow's final answers on one mirrored request.

    ``agree`` is ``None`` only when one side has no answer at all (no text, no tool call).
    ``primary_correct`` and ``shadow_correct`` are set when the primary carried an expected
    answer. ``reason`` is one of :data:`AGREEMENT_REASONS`; ``agent_hop`` is the primary's
    position in its agent task (assistant turns before it), for per-hop statistics. For tool
    calls, ``primary_answer``/``shadow_answer`` name the tools called (``get_weather()``), with
    their arguments only when content capture is on.
    """

    at: float
    pair_id: str
    model: str
    primary_variant: str
    shadow_variant: str
    dataset: str | None
    primary_answer: str | None
    shadow_answer: str | None
    agree: bool | None
    primary_correct: bool | None = None
    shadow_correct: bool | None = None
    prompt_sha256: str | None = None
    prompt: str | None = None
    reason: str | None = None
    agent_hop: int = 0


def normalise_text(text: str) -> str:
    return _SPACES.sub(" ", text.casefold()).strip().rstrip(".!?;:, ")


def final_answer(text: str, dataset: str | None = None) -> str | None:
    """The completion's final answer by the dataset's extraction, or ``None``."""
    if (dataset or DEFAULT_DATASET) == "mathqa":
        return extract_choice(text)
    return extract_strict(text) or extract_flexible(text)


def answers_agree(first: str | None, second: str | None) -> bool | None:
    """Numbers as numbers, else normalised text; ``None`` if either answer is missing."""
    if first is None or second is None:
        return None
    a, b = parse_number(first), parse_number(second)
    if a is not None and b is not None:
        return a == b
    return normalise_text(first) == normalise_text(second)


_Canonical = object
"""A hashable canonical form of a JSON value (tuples tagged by kind)."""


def _canonical(value: object) -> _Canonical:
    if isinstance(value, bool):  # before numbers: True == 1 in Python, not in JSON
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)  # 1 == 1.0 and hash(1) == hash(1.0): numbers as numbers
    if isinstance(value, dict):
        return ("obj", tuple(sorted((str(k), _canonical(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("arr", tuple(_canonical(v) for v in value))
    return ("str", value) if isinstance(value, str) else ("null", None)


def canonical_arguments(arguments: str) -> _Canonical:
    """Tool-call arguments in a canonical, hashable form: parsed JSON (key order ignored,
    numbers as numbers), or the stripped text when they are not JSON. Empty means ``{}``."""
    text = arguments.strip() or "{}"
    try:
        return _canonical(orjson.loads(text))
    except orjson.JSONDecodeError:
        return ("raw", text)


def tool_calls_agree(
    primary: Sequence[ToolCall], shadow: Sequence[ToolCall], shadow_text: str = ""
) -> tuple[bool, str]:
    """(agree, reason) for a primary that answered with ``primary`` calls (non-empty)."""
    if not shadow:
        return False, "text_instead_of_call" if shadow_text.strip() else "missing_call"
    want = Counter((c.name, canonical_arguments(c.arguments)) for c in primary)
    got = Counter((c.name, canonical_arguments(c.arguments)) for c in shadow)
    if want == got:
        return True, "same"
    names_want, names_got = Counter(c.name for c in primary), Counter(c.name for c in shadow)
    if names_want == names_got:
        return False, "wrong_arguments"
    missing, extra = names_want - names_got, names_got - names_want
    if missing and not extra:
        return False, "missing_call"
    if extra and not missing:
        return False, "extra_call"
    return False, "wrong_tool"


def verdict_label(reason: str | None, agree: bool | None) -> str:
    """One of :data:`VERDICT_LABELS`: ``agree`` for any agreement (text or tool calls),
    ``text_disagree`` for different text answers, ``unknown`` when not comparable, else the
    tool-call reason. A comparison logged before reasons existed (``reason`` ``None``) is
    labelled from ``agree`` alone (its disagreement was a text one)."""
    if agree is None:
        return "unknown"
    if agree:
        return "agree"
    label = _LABEL_OF_REASON.get(reason or "different_answer", reason or "")
    return label if label in VERDICT_LABELS else "text_disagree"


def _calls_label(calls: Sequence[ToolCall], capture_content: bool) -> str:
    return ", ".join(f"{c.name}({c.arguments if capture_content else ''})" for c in calls)


def _text_verdict(
    primary: RequestRecord, shadow: RequestRecord
) -> tuple[str | None, str | None, bool | None, str]:
    dataset = primary.dataset
    p_answer = final_answer(primary.text, dataset)
    s_answer = final_answer(shadow.text, dataset)
    if p_answer is None and s_answer is None:
        agree = answers_agree(primary.text or None, shadow.text or None)
    else:
        agree = answers_agree(p_answer, s_answer)
    reason = "no_answer" if agree is None else "same" if agree else "different_answer"
    return p_answer, s_answer, agree, reason


def compare_pair(pair: ShadowPair, *, capture_content: bool = False) -> PairComparison | None:
    """Compare a pair whose two halves both succeeded; ``None`` otherwise."""
    primary, shadow = pair.primary, pair.shadow
    if shadow is None or not primary.ok or not shadow.ok:
        return None
    dataset = primary.dataset
    p_answer: str | None
    s_answer: str | None
    agree: bool | None
    if primary.tool_calls:
        agree, reason = tool_calls_agree(primary.tool_calls, shadow.tool_calls, shadow.text)
        p_answer = _calls_label(primary.tool_calls, capture_content)
        s_answer = _calls_label(shadow.tool_calls, capture_content) or None
    elif shadow.tool_calls and primary.text.strip():
        agree, reason = False, "call_instead_of_text"
        p_answer = final_answer(primary.text, dataset)
        s_answer = _calls_label(shadow.tool_calls, capture_content)
    else:
        p_answer, s_answer, agree, reason = _text_verdict(primary, shadow)
    p_correct = s_correct = None
    if primary.expected_answer is not None and not primary.tool_calls:
        try:
            p_correct = grade_answer(primary.text, primary.expected_answer, dataset).correct
            s_correct = grade_answer(shadow.text, primary.expected_answer, dataset).correct
        except ValueError:
            p_correct = s_correct = None  # an unreadable reference is not a verdict
    return PairComparison(
        at=max(primary.started_at + primary.duration_s, shadow.started_at + shadow.duration_s),
        pair_id=pair.pair_id,
        model=primary.model,
        primary_variant=primary.variant,
        shadow_variant=shadow.variant,
        dataset=dataset or (DEFAULT_DATASET if primary.expected_answer is not None else None),
        primary_answer=p_answer,
        shadow_answer=s_answer,
        agree=agree,
        primary_correct=p_correct,
        shadow_correct=s_correct,
        prompt_sha256=prompt_sha256(primary.prompt),
        prompt=primary.prompt if capture_content and primary.prompt else None,
        reason=reason,
        agent_hop=primary.agent_turns_before,
    )
