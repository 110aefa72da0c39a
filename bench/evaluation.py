"""Prompts and graded accuracy: the evaluation set, run through the engine and graded.

The sets are ``scoring``'s: the synthetic multi-hop set (held-out ``split="eval"`` problems,
``per_depth`` of each depth, deterministic for a seed) or the shipped GSM8K test set (the first
``per_depth`` problems of each depth, depth = the reference's calculator steps). Answers are
greedy, through the same engine and batch as the proxy serves, and graded by
:mod:`scoring.graders`. The questions also serve as the prompts of the throughput windows
(for random weights too, where their answers are noise and are not graded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backends.engine import EngineBackend
from bench.cells import run_wave
from bench.records import AccuracyItem
from scoring.datasets.gsm8k import iter_gsm8k
from scoring.datasets.multihop import as_chat_messages, generate
from scoring.graders import get_grader

__all__ = ["DATASETS", "EvalItem", "eval_items", "evaluate"]

DATASETS = ("multihop", "gsm8k")


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One problem: the chat messages, the grader's reference and the reasoning depth."""

    messages: tuple[dict[str, str], ...]
    reference: str
    depth: int | None


def eval_items(dataset: str, per_depth: int, depths: Sequence[int], seed: int) -> list[EvalItem]:
    """``per_depth`` problems of each depth in ``depths`` from ``dataset``."""
    if dataset == "multihop":
        problems = generate(per_depth * len(depths), seed=seed, depths=depths, split="eval")
        return [EvalItem(tuple(as_chat_messages(p)), str(p.answer), p.depth) for p in problems]
    if dataset == "gsm8k":
        taken: dict[int, int] = {}
        items = []
        for row in iter_gsm8k():
            if row.depth in depths and taken.get(row.depth, 0) < per_depth:
                taken[row.depth] = taken.get(row.depth, 0) + 1
                items.append(
                    EvalItem(({"role": "user", "content": row.question},), row.answer, row.depth)
                )
        return items
    raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")


async def evaluate(
    backend: EngineBackend,
    variant: str,
    dataset: str,
    items: Sequence[EvalItem],
    *,
    concurrency: int,
    max_tokens: int,
) -> list[AccuracyItem]:
    """Answer every item (``concurrency`` at a time, greedy) and grade it."""
    grader = get_grader(dataset)
    out: list[AccuracyItem] = []
    for start in range(0, len(items), concurrency):
        chunk = items[start : start + concurrency]
        answers = await run_wave(
            backend, [list(i.messages) for i in chunk], max_tokens, f"eval-{variant}-{start}"
        )
        for item, body in zip(chunk, answers, strict=True):
            text = body["choices"][0]["message"]["content"] or ""
            result = grader.grade(text, item.reference)
            out.append(
                AccuracyItem(
                    variant=variant,
                    depth=item.depth,
                    correct=result.correct,
                    completion_tokens=int(body["usage"]["completion_tokens"]),
                )
            )
    return out
