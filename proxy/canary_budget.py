"""The canary budget: how much CPU and variant time the proxy's own evaluation traffic may use.

Canary rounds cost real work: on the embedded default (the engine in-process, on the CPU) a
round of three variants used 1-3 CPU-seconds, and at 6 rounds a minute the idle proxy used
27% of a core. The budget paces rounds so that, on average, canaries use at most

- ``cpu_budget`` cores of this process's CPU (``scoring.canary.cpu_budget``), measured as the
  process CPU time (every thread: the engine's too) spent while a round runs, and
- ``busy_budget`` of each variant's time (``scoring.canary.busy_budget``): the GPU or upstream
  time a round occupies, measured as its longest probe's wall time.

Method: pacing, like a leaky bucket. After a round that started at ``t`` and cost ``c``
CPU-seconds and ``b`` busy seconds, no round may start before
``max(free_at, t) + max(c / cpu_budget, b / busy_budget)``; the configured rate is an upper
bound on top. One budget serves every model's loop, so the total is what is bounded.

Caveats: CPU time is the whole process's while a round runs, so user traffic at the same time
is charged to the canaries (canaries then slow down, which is what low priority wants; at idle
the figure is the canaries' own, plus the few milliseconds of background work of the same
seconds). Pure: the clock is passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["CanaryBudget", "CanaryBudgetStatus", "Limiter"]

Limiter = Literal["rate", "cpu", "busy"]


@dataclass(frozen=True, slots=True)
class CanaryBudgetStatus:
    """The canary budget and its use, for the status page. Cores: CPU-seconds per second."""

    cpu_budget_cores: float
    """Configured: process CPU canaries may use on average (``scoring.canary.cpu_budget``)."""
    cpu_used_cores: float
    """Measured: CPU time of the rounds in the last ``window_s`` (or since start) per second."""
    busy_budget: float
    """Configured: share of a variant's time canaries may occupy it."""
    busy_used: float
    """Measured: the rounds' longest probe time in the last ``window_s`` per second."""
    window_s: float
    """The span the used figures cover (shorter than configured right after start)."""
    rounds: int
    """Rounds charged since start."""
    deferred_s: float
    """Time rounds were held back by the budget beyond the configured rate, since start."""
    limited_by: Limiter
    """What set the gap after the last round: the configured ``rate``, ``cpu`` or ``busy``."""


class CanaryBudget:
    """Paces canary rounds to a CPU and a busy-time budget (see the module docstring)."""

    def __init__(
        self,
        cpu_budget: float,
        busy_budget: float,
        *,
        clock: Callable[[], float],
        window_s: float = 600.0,
    ) -> None:
        if cpu_budget <= 0 or busy_budget <= 0:
            raise ValueError("canary budgets must be positive")
        self.cpu_budget = cpu_budget
        self.busy_budget = busy_budget
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        self._free_at = self._started
        self._charges: deque[tuple[float, float, float]] = deque()  # (at, cpu_s, busy_s)
        self._rounds = 0
        self._deferred_s = 0.0
        self._limited_by: Limiter = "rate"

    def next_start(self, wanted: float) -> float:
        """When a round the rate schedules at ``wanted`` may start (clock time); the wait
        beyond ``wanted`` is counted as deferred."""
        if self._free_at > wanted:
            self._deferred_s += self._free_at - wanted
            return self._free_at
        return wanted

    def charge(self, started: float, cpu_s: float, busy_s: float, rate_gap_s: float) -> None:
        """Book a finished round that started at ``started`` (clock time)."""
        cpu_gap = max(0.0, cpu_s) / self.cpu_budget
        busy_gap = max(0.0, busy_s) / self.busy_budget
        gap = max(cpu_gap, busy_gap)
        self._free_at = max(self._free_at, started) + gap
        if gap <= rate_gap_s:
            self._limited_by = "rate"
        else:
            self._limited_by = "cpu" if cpu_gap >= busy_gap else "busy"
        self._rounds += 1
        self._charges.append((started, max(0.0, cpu_s), max(0.0, busy_s)))
        self._expire(self._clock())

    def status(self) -> CanaryBudgetStatus:
        now = self._clock()
        self._expire(now)
        span = max(1e-9, min(self.window_s, now - self._started))
        cpu = sum(c for _, c, _ in self._charges)
        busy = sum(b for _, _, b in self._charges)
        return CanaryBudgetStatus(
            cpu_budget_cores=self.cpu_budget,
            cpu_used_cores=cpu / span,
            busy_budget=self.busy_budget,
            busy_used=busy / span,
            window_s=span,
            rounds=self._rounds,
            deferred_s=self._deferred_s,
            limited_by=self._limited_by,
        )

    def _expire(self, now: float) -> None:
        while self._charges and self._charges[0][0] < now - self.window_s:
            self._charges.popleft()
