"""Buckets that telemetry labels and scoring compares by: batch size and agent-hop position.

The paper's effects depend on the batch size a request ran in, so every comparison of
variants is made within one batch bucket. Powers of two keep the label set small and fixed.
Agent-hop positions (assistant round trips before a call) are bucketed the same way, so that
shadow agreement can be stratified by hop position with a bounded label set.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BATCH_BUCKETS",
    "BUCKET_LOWER_SIZE",
    "HOP_POSITION_BUCKETS",
    "batch_bucket",
    "hop_position_bucket",
]

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


HOP_POSITION_BUCKETS: Final = ("0", "1", "2", "3-4", "5-8", "9-16", "17+")
"""Strata of an agent-hop position, in order: a fixed label set, safe as a metric label."""


def hop_position_bucket(position: int) -> str:
    """``0``, ``1``, ``2``, ``3-4``, ``5-8``, ``9-16`` or ``17+`` (negative counts as 0)."""
    if position <= 2:
        return str(max(position, 0))
    for high, label in ((4, "3-4"), (8, "5-8"), (16, "9-16")):
        if position <= high:
            return label
    return "17+"
