"""Logical hops: how many reasoning steps a piece of text states.

An *atomic* hop is one generated token (counted from usage); a *logical* hop is one reasoning
step. GSM8K marks each calculator step as ``<<48/2=24>>``; free-text completions have no
markers, so :func:`logical_hops` counts the statements of an intermediate result instead.

The rule, applied to each segment of the text (a line, further split into sentences at
``.``/``!``/``?`` followed by white space, so decimals like ``0.75`` do not split):

- a segment with ``k`` calculator markers ``<<…>>`` counts ``k`` (so a GSM8K reference
  counts exactly its annotated steps);
- otherwise it counts 1 if it contains ``=`` followed (after optional spaces and a currency
  sign) by a number, e.g. ``3 * 4 = 12`` or ``x = $26``, and 0 otherwise.

Restating an answer (``The answer is 12.``, ``#### 12``) is not a step. Reasoning text
(``reasoning_content``, a Responses reasoning item, a thinking block) counts too: pass it as
``reasoning_text``; a segment of the answer that repeats a reasoning segment word for word
(white space and case aside) is the same step and counts once. It is a heuristic: a
chain written without ``=`` ("three times four is twelve") counts 0, and one line holding
two results separated only by a comma counts 1. Telemetry uses it as a depth proxy for
traffic without references.
"""

from __future__ import annotations

import re

__all__ = ["DEPTH_BUCKETS", "calculator_steps", "depth_bucket", "logical_hops"]

DEPTH_BUCKETS = ("0", "1-2", "3-4", "5-6", "7+", "unknown")
"""Depth strata of the paper's per-hop table (Table 2), plus ``0`` and ``unknown``: a fixed
label set, safe as a metric label."""

_MARKER = re.compile(r"<<[^<>]*>>")
_RESULT = re.compile(r"=\s*[$€£]?\s*-?\.?\d")
_SEGMENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n")


def calculator_steps(text: str) -> int:
    """Number of GSM8K calculator annotations ``<<…>>`` in ``text``."""
    return len(_MARKER.findall(text))


def _steps(text: str) -> list[tuple[str, int]]:
    """(normalised segment, steps it states) for each segment of ``text`` stating any."""
    steps = []
    for segment in _SEGMENT_SPLIT.split(text):
        markers = len(_MARKER.findall(segment))
        count = markers or (1 if _RESULT.search(segment) else 0)
        if count:
            steps.append((" ".join(segment.casefold().split()), count))
    return steps


def logical_hops(text: str, reasoning_text: str = "") -> int:
    """Heuristic count of reasoning steps stated in ``text`` and in ``reasoning_text``
    (rule in the module docstring)."""
    reasoning = _steps(reasoning_text) if reasoning_text else []
    seen = {segment for segment, _ in reasoning}
    answer = sum(count for segment, count in _steps(text) if segment not in seen)
    return sum(count for _, count in reasoning) + answer


def depth_bucket(depth: int | None) -> str:
    """The stratum of a reasoning depth: ``1-2``, ``3-4``, ``5-6``, ``7+``, ``0`` or ``unknown``."""
    if depth is None:
        return "unknown"
    if depth < 1:
        return "0"
    if depth >= 7:
        return "7+"
    low = 2 * ((depth - 1) // 2) + 1  # 1, 2 -> 1; 3, 4 -> 3; 5, 6 -> 5
    return f"{low}-{low + 1}"
