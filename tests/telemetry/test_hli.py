"""HLI: rated power x latency / batch, or x integral of dt / in-flight."""

from __future__ import annotations

import pytest

from telemetry.hli import HliEstimator


def test_reported_batch_size_uses_the_papers_formula() -> None:
    hli = HliEstimator({"v": 400.0}, clock=lambda: 0.0)
    hli.request_started("r", "v")
    assert hli.request_finished("r", duration_s=3.0, batch_size=6) == pytest.approx(200.0)


def test_without_batch_size_the_power_is_shared_among_requests_in_flight() -> None:
    now = [0.0]
    hli = HliEstimator({"v": 100.0}, clock=lambda: now[0])
    hli.request_started("a", "v")  # alone for 1 s
    now[0] = 1.0
    hli.request_started("b", "v")  # together for 2 s
    now[0] = 3.0
    a = hli.request_finished("a", duration_s=3.0)
    now[0] = 4.0  # b alone for 1 s
    b = hli.request_finished("b", duration_s=3.0)
    assert a is not None and b is not None
    assert a == pytest.approx(100.0 * (1.0 + 2.0 / 2))
    assert b == pytest.approx(100.0 * (2.0 / 2 + 1.0))
    assert a + b == pytest.approx(100.0 * 4.0)  # busy time x power, no idle


def test_unknown_variant_or_request_has_no_estimate() -> None:
    hli = HliEstimator({"v": 100.0, "zero": 0.0})
    assert not hli.has_group("zero")
    hli.request_started("x", "other")
    assert hli.request_finished("x", duration_s=1.0) is None
