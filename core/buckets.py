"""Batch-size buckets: the one stratification that telemetry labels and scoring compares by.

The paper's effects depend on the batch size a request ran in, so every comparison of
variants is made within one bucket. Powers of two keep the label set small and fixed.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BATCH_BUCKETS", "BUCKET_LOWER_SIZE", "batch_bucket"]

BATCH_BUCKETS: Final = ("1", "2-3", "4-7", "8-15", "16-31", "32+", "unknown")
"""Every bucket, in order (the values of the ``quanttrap.batch_size_bucket`` label)."""

BUCKET_LOWER_SIZE: Final = {"1": 1, "2-3": 2, "4-7": 4, "8-15": 8, "16-31": 16, "32+": 32}
"""The smallest batch size of each numeric bucket (B* is located on these sizes)."""


def batch_bucket(batch_size: int | None) -> str:
    """``"1"``, ``"2-3"``, ``"4-7"``, ``"8-15"``, ``"16-31"``, ``"32+"`` or ``"unknown"``."""
    if batch_size is None or batch_size < 1:
        return "unknown"
    if batch_size >= 32:
        return "32+"
    low = 1 << (batch_size.bit_length() - 1)
    return "1" if low == 1 else f"{low}-{2 * low - 1}"
