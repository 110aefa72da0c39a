"""What one bench run measures, as frozen records that the maths, the report and the plots read.

Units are in the field names or docstrings: seconds, tokens, joules, bytes, MHz, watts. A
``None`` means "not measured here" (no NVML on this machine, no accuracy without real weights)
and is reported as such, never as a zero.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AccuracyItem", "GpuState", "ReferenceRun", "Window"]


@dataclass(frozen=True, slots=True)
class GpuState:
    """The GPU's clocks, power limit, temperature and board power at one instant (NVML)."""

    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    power_limit_w: float | None
    """Enforced power limit."""
    default_power_limit_w: float | None
    temperature_c: int | None
    power_w: float | None


@dataclass(frozen=True, slots=True)
class Window:
    """One steady-state window of one cell (variant x batch size x repeat).

    ``batch_size`` requests were kept in flight through the engine for the whole window
    (a finished one is replaced at once); ``tokens`` is what the engine generated inside
    ``seconds`` (counted per decode step), ``energy_j`` the GPU's NVML energy-counter delta over
    the same interval (``energy_method`` says which NVML method; idle power included, as the
    board draws it), ``hli_j`` the paper's hardware-latency integration (rated power x window
    time) when asked. ``completed_tokens`` are the completion lengths of the requests that
    finished inside the window. ``peak_bytes`` is this variant's GPU memory at this batch
    size: its weights plus the allocator's peak increase during the cell (``memory_method``).
    """

    variant: str
    batch_size: int
    repeat: int
    seconds: float
    tokens: int
    completed_tokens: tuple[int, ...]
    mean_batch: float | None
    energy_j: float | None
    energy_method: str
    hli_j: float | None
    peak_bytes: int | None
    memory_method: str
    state_start: GpuState | None = None
    state_end: GpuState | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


@dataclass(frozen=True, slots=True)
class AccuracyItem:
    """One graded answer: its reasoning depth, whether it was right, its length in tokens."""

    variant: str
    depth: int | None
    correct: bool
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ReferenceRun:
    """One timed Hugging Face ``generate`` call (the reference decoding path).

    ``batch_size`` prompts, exactly ``new_tokens`` each (``min_new_tokens`` = ``max_new_tokens``),
    greedy; ``energy_j`` the NVML counter delta over the call, ``None`` without NVML.
    """

    variant: str
    batch_size: int
    repeat: int
    seconds: float
    new_tokens: int
    energy_j: float | None

    @property
    def tokens_per_s(self) -> float:
        return self.batch_size * self.new_tokens / self.seconds
