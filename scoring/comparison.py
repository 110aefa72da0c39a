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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.records import ShadowPair
from scoring.datasets.gsm8k import extract_flexible, extract_strict, parse_number
from scoring.datasets.mathqa import extract_choice
from scoring.evaluation import DEFAULT_DATASET, grade_answer, prompt_sha256

__all__ = [
    "PairComparison",
    "answers_agree",
    "compare_pair",
    "final_answer",
    "normalise_text",
]

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class PairComparison:
    """The primary's and the shadow's final answers on one mirrored request.

    ``agree`` is ``None`` only when one side has no text at all. ``primary_correct`` and
    ``shadow_correct`` are set when the primary carried an expected answer.
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


def compare_pair(pair: ShadowPair, *, capture_content: bool = False) -> PairComparison | None:
    """Compare a pair whose two halves both succeeded; ``None`` otherwise."""
    primary, shadow = pair.primary, pair.shadow
    if shadow is None or not primary.ok or not shadow.ok:
        return None
    dataset = primary.dataset
    p_answer = final_answer(primary.text, dataset)
    s_answer = final_answer(shadow.text, dataset)
    if p_answer is None and s_answer is None:
        agree = answers_agree(primary.text or None, shadow.text or None)
    else:
        agree = answers_agree(p_answer, s_answer)
    p_correct = s_correct = None
    if primary.expected_answer is not None:
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
    )
