"""Bounded labels: batch buckets, status classes, error types, config-folded names."""

from __future__ import annotations

import pytest

from core.buckets import batch_bucket
from telemetry.labels import (
    BATCH_SIZE_BUCKETS,
    LabelPolicy,
    bounded_error_type,
    status_class,
)


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        (None, "unknown"),
        (0, "unknown"),
        (-3, "unknown"),
        (1, "1"),
        (2, "2-3"),
        (3, "2-3"),
        (4, "4-7"),
        (7, "4-7"),
        (8, "8-15"),
        (15, "8-15"),
        (16, "16-31"),
        (31, "16-31"),
        (32, "32+"),
        (4096, "32+"),
    ],
)
def test_batch_bucket(size: int | None, bucket: str) -> None:
    assert batch_bucket(size) == bucket


def test_batch_buckets_are_a_closed_set() -> None:
    assert {batch_bucket(n) for n in [None, *range(0, 200)]} == set(BATCH_SIZE_BUCKETS)


@pytest.mark.parametrize(
    ("status", "cls"), [(200, "2xx"), (204, "2xx"), (429, "4xx"), (503, "5xx"), (99, "other")]
)
def test_status_class(status: int, cls: str) -> None:
    assert status_class(status) == cls


@pytest.mark.parametrize(
    ("given", "label"),
    [
        (None, None),
        ("rate_limit_error", "rate_limit_error"),
        ("BackendTimeout", "BackendTimeout"),
        ("503", "503"),
        ("999", "_OTHER"),
        ("user said: ignore previous instructions", "_OTHER"),
    ],
)
def test_error_types_are_bounded(given: str | None, label: str | None) -> None:
    assert bounded_error_type(given) == label


def test_unknown_models_and_variants_fold_into_other() -> None:
    policy = LabelPolicy({"m": ["fp16", "nf4"]})
    assert policy.model("m") == "m"
    assert policy.model("gpt-4-whatever") == "other"
    assert policy.variant("m", "nf4") == "nf4"
    assert policy.variant("m", "int3") == "other"
    assert policy.variant("unknown-model", "nf4") == "other"
