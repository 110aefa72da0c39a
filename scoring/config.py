"""Live scoring settings (the ``scoring:`` section of the main config file).

Validated once at start-up like the rest of :mod:`proxy.config`; every field can be overridden
from the environment (``QUANTTRAP_SCORING__WINDOW_S=600``,
``QUANTTRAP_SCORING__CANARY__ENABLED=true``). What each knob means for the statistics is
explained in ``docs/scoring.md`` ("Live windows").
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CanaryConfig",
    "CanaryDataset",
    "ScoringConfig",
    "StoreConfig",
    "TrapConfig",
]

CanaryDataset = Literal["multihop", "gsm8k"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanaryConfig(_Strict):
    """Evaluation prompts the proxy sends itself, to every variant, at low priority."""

    enabled: bool = False
    """Off unless switched on (the embedded default switches it on)."""
    rate_per_minute: float = Field(default=6.0, gt=0.0, le=6000.0)
    """Canary prompts per minute sent to *each* variant (the same prompt to all of them, so
    that their verdicts are paired)."""
    dataset: CanaryDataset = "multihop"
    """``multihop``: the synthetic generator's held-out split; ``gsm8k``: the shipped test set."""
    seed: int = 0
    """Seed of the multi-hop generator (the prompt sequence is reproducible)."""
    max_tokens: int = Field(default=256, ge=1, le=32768)
    max_in_flight: int = Field(default=1, ge=1, le=64)
    """Canaries in flight at once per variant; a tick that would exceed it skips the variant."""
    busy_in_flight: int = Field(default=8, ge=1)
    """Skip a variant while it already serves this many user requests (canaries yield)."""
    stream: bool = True
    """Stream canary answers, so their time to first token and decode rate are measured like
    streamed user traffic."""
    cpu_budget: float = Field(default=0.02, gt=0.0, le=64.0)
    """Process CPU, in cores, canary rounds may use on average (0.02 = 2% of one core): after
    each round the next one waits until the round's CPU time fits (``proxy/canary_budget.py``).
    The default keeps the idle embedded default under 5% of a core."""
    busy_budget: float = Field(default=0.05, gt=0.0, le=1.0)
    """Share of each variant's time (GPU or upstream) canaries may occupy, on average."""


class StoreConfig(_Strict):
    """The local SQLite log of graded evaluations and shadow comparisons."""

    enabled: bool = True
    path: str = Field(default="./quanttrap-data/quanttrap.sqlite3", min_length=1)
    max_rows: int = Field(default=200_000, ge=100)
    """Rows kept per table; the oldest are deleted beyond it."""
    max_age_s: float = Field(default=7 * 24 * 3600.0, gt=0.0)
    """Rows older than this are deleted."""
    flush_interval_s: float = Field(default=1.0, gt=0.0, le=60.0)
    """The writer thread commits what it has at least this often."""
    queue_size: int = Field(default=10_000, ge=10)
    """Rows waiting for the writer thread; beyond it new rows are dropped and counted."""


class TrapConfig(_Strict):
    """When a difference counts as a trap, and how the flag resists noise.

    The three tolerances are *practical-significance margins*: a verdict needs the whole
    anytime-valid confidence sequence beyond the margin (:mod:`scoring.verdicts`), so a
    difference that is significant but inside the margin is not a trap.
    """

    accuracy_tolerance: float = Field(default=0.01, ge=0.0, lt=1.0)
    """δ, absolute accuracy fraction: "less accurate" means worse than the anchor by more."""
    speed_tolerance: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Relative margin: "slower" means TPS below ``TPS_anchor × (1 − speed_tolerance)``."""
    energy_tolerance: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Relative margin: "more energy" means above ``E_anchor × (1 + energy_tolerance)`` per
    query."""
    epoch_s: float = Field(default=86400.0, ge=0.0)
    """Verdicts accumulate the evidence of one epoch; a new epoch starts at process start
    (deployment, config change) and every ``epoch_s`` seconds (0: only at start), so that a
    change in behaviour is not diluted by days of older evidence. A flag raised in one epoch
    is held through the next until the new epoch confirms or excludes it."""
    tune_samples: float = Field(default=300.0, gt=0.0)
    """Samples per side at which the confidence sequences are tightest (their ``ρ``)."""
    min_graded: int = Field(default=20, ge=1)
    """Graded evaluations each side needs before accuracy is compared at all."""
    min_requests: int = Field(default=10, ge=2)
    """Measured requests each side needs before speed or energy is compared."""
    on_after: int = Field(default=2, ge=1)
    """Consecutive evaluations that must support a trap before the flag turns on."""
    off_after: int = Field(default=3, ge=1)
    """Consecutive evaluations that must no longer support it before the flag turns off (K)."""


class ScoringConfig(_Strict):
    enabled: bool = True
    window_s: float = Field(default=900.0, ge=10.0, le=7 * 24 * 3600.0)
    """Length of the sliding windows the live estimates are computed over."""
    slot_s: float = Field(default=15.0, gt=0.0)
    """Time resolution of the windows: evidence expires one slot at a time."""
    recompute_interval_s: float = Field(default=5.0, ge=0.05, le=600.0)
    """How often records are graded, windows updated and the live SI recomputed."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    """Two-sided confidence of every interval and the significance level of every test."""
    trust_weight: float = Field(default=1.0, ge=0.0)
    economic_weight: float = Field(default=1.0, ge=0.0)
    energy_weight: float = Field(default=1.0, ge=0.0)
    economic_lambda: float = Field(default=0.5, ge=0.0, le=1.0)
    policy: Literal["linear", "geometric"] = "linear"
    trap: TrapConfig = TrapConfig()
    memory_basis: Literal["weights", "peak"] = "weights"
    """What residency the economic pillar compares for in-process engine variants:
    ``weights`` (the variant's own weight storage) or ``peak`` (the engine's peak, which is
    device- or process-wide and shared by every variant on it)."""
    memory_gb: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Declared peak memory (GB) per model and variant, for upstreams whose memory the proxy
    cannot read (HTTP servers): ``{model: {variant: 14.5}}``. Unknown otherwise."""
    history_interval_s: float = Field(default=10.0, gt=0.0)
    history_points: int = Field(default=360, ge=2, le=10_000)
    """Points of SI / energy history kept per variant for the status page (bounded)."""
    pending_records: int = Field(default=50_000, ge=100)
    """Finished requests waiting to be graded; beyond it the oldest are dropped and counted."""
    canary: CanaryConfig = CanaryConfig()
    store: StoreConfig = StoreConfig()

    @model_validator(mode="after")
    def _check(self) -> ScoringConfig:
        if self.trust_weight + self.economic_weight + self.energy_weight <= 0:
            raise ValueError("at least one of the SI weights must be positive")
        if self.slot_s > self.window_s:
            raise ValueError(f"slot_s ({self.slot_s}) must not exceed window_s ({self.window_s})")
        if self.window_s / self.slot_s > 10_000:
            raise ValueError("window_s / slot_s must be at most 10000 slots")
        for model, variants in self.memory_gb.items():
            for variant, gb in variants.items():
                if not gb > 0:
                    raise ValueError(f"memory_gb.{model}.{variant}: must be > 0, got {gb}")
        return self
