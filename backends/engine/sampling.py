"""Choose the next token of every sequence in a batch from its logits.

Greedy (temperature 0, the default) is one ``argmax`` over the batch; sampled rows then draw
with their own ``torch.Generator`` so a seeded request gets the same tokens whatever else runs
beside it (given the same logits). Nucleus (top-p) filtering keeps the smallest set of tokens
whose probability reaches ``top_p``, always at least the most likely one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["RowSampling", "sample_tokens"]


@dataclass(frozen=True, slots=True)
class RowSampling:
    """How one row picks its token: ``temperature`` 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    generator: torch.Generator | None = None


def _sample_row(logits: torch.Tensor, how: RowSampling) -> int:
    probs = torch.softmax(logits / how.temperature, dim=-1)
    if how.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop = before >= how.top_p
        drop[0] = False  # top_p = 0 still leaves the most likely token
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    choice = torch.multinomial(probs, num_samples=1, generator=how.generator)
    return int(choice.item())


def sample_tokens(logits: torch.Tensor, rows: Sequence[RowSampling]) -> list[int]:
    """One token id per row of ``logits`` (shape ``[batch, vocab]``, float32 preferred)."""
    if logits.shape[0] != len(rows):
        raise ValueError(f"{logits.shape[0]} rows of logits for {len(rows)} samplers")
    tokens: list[int] = logits.argmax(dim=-1).tolist()
    for index, how in enumerate(rows):
        if how.temperature > 0.0:
            tokens[index] = _sample_row(logits[index], how)
    return tokens
