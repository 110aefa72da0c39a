"""The canary budget's pacing (pure, on a hand-driven clock)."""

from __future__ import annotations

import random

import pytest

from proxy.canary_budget import CanaryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_costly_round_pushes_the_next_one_back_to_fit_the_cpu_budget() -> None:
    clock = Clock()
    budget = CanaryBudget(0.02, 0.05, clock=clock)
    clock.now = 2.0
    budget.charge(0.0, cpu_s=1.5, busy_s=2.0, rate_gap_s=10.0)  # 1.5 CPU-s: 75 s at 2%
    assert budget.next_start(10.0) == 75.0
    status = budget.status()
    assert status.limited_by == "cpu" and status.rounds == 1
    assert status.deferred_s == 65.0
    assert status.cpu_used_cores == pytest.approx(1.5 / 2.0)  # over the 2 s since start


def test_long_probes_are_paced_by_the_busy_budget() -> None:
    clock = Clock()
    budget = CanaryBudget(1.0, 0.05, clock=clock)
    budget.charge(0.0, cpu_s=0.01, busy_s=3.0, rate_gap_s=10.0)  # 3 s busy: 60 s at 5%
    assert budget.next_start(10.0) == 60.0 and budget.status().limited_by == "busy"


def test_cheap_rounds_keep_the_configured_rate() -> None:
    clock = Clock()
    budget = CanaryBudget(0.02, 0.05, clock=clock)
    for i in range(100):
        start = 10.0 * i
        assert budget.next_start(start) == start
        clock.now = start + 0.1
        budget.charge(start, cpu_s=0.1, busy_s=0.1, rate_gap_s=10.0)  # 5 s gap < 10 s
    status = budget.status()
    assert status.limited_by == "rate" and status.deferred_s == 0
    assert status.cpu_used_cores == pytest.approx(0.01, rel=0.02)  # 0.1 CPU-s per 10 s


def test_one_budget_bounds_every_models_rounds_together() -> None:
    clock = Clock()
    budget = CanaryBudget(0.1, 1.0, clock=clock)
    budget.charge(0.0, cpu_s=1.0, busy_s=0.0, rate_gap_s=1.0)  # model a: 10 s
    budget.charge(0.0, cpu_s=1.0, busy_s=0.0, rate_gap_s=1.0)  # model b: 10 s more
    assert budget.next_start(1.0) == 20.0


def test_long_run_use_stays_within_the_budget() -> None:
    """Rounds of random cost, each started as soon as the budget allows: use <= budget."""
    rng = random.Random(1)
    clock = Clock()
    budget = CanaryBudget(0.03, 0.05, clock=clock, window_s=1e9)
    wanted = 0.0
    cpu_total = 0.0
    for _ in range(500):
        start = budget.next_start(wanted)
        cost = rng.uniform(0.05, 3.0)
        clock.now = start + 1.0
        budget.charge(start, cpu_s=cost, busy_s=0.01, rate_gap_s=10.0)
        cpu_total += cost
        wanted = start + 10.0
    end = budget.next_start(wanted)
    assert cpu_total / end <= 0.03 + 1e-9
    assert budget.status().cpu_used_cores <= 0.03 * 1.05


def test_budgets_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CanaryBudget(0.0, 0.05, clock=Clock())


def test_old_rounds_leave_the_window() -> None:
    clock = Clock()
    budget = CanaryBudget(1.0, 1.0, clock=clock, window_s=60.0)
    budget.charge(0.0, cpu_s=6.0, busy_s=0.0, rate_gap_s=10.0)
    clock.now = 30.0
    assert budget.status().cpu_used_cores == pytest.approx(0.2)
    clock.now = 120.0
    status = budget.status()
    assert status.cpu_used_cores == 0.0 and status.window_s == 60.0 and status.rounds == 1
