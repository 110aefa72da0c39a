"""Time-based sliding windows of per-variant evidence, in bounded memory.

A window covers the last ``window_s`` seconds as a ring of ``slot_s``-long slots; each slot
holds running sums (never the samples), so memory per window is bounded by the number of
slots whatever the traffic. Evidence expires one slot at a time. Windows are keyed by model,
variant and batch-size bucket: the paper's effects depend on batch size, so a variant is only
ever compared with its anchor in the same bucket (see :mod:`scoring.live`).

What one finished request contributes is an :class:`Observation`:

- **TPS** (generated tokens per second of generation): for a stream, the tokens after the
  first over the time after the first token, ``(completion_tokens − 1) / (duration − TTFT)``
  (the inverse of the time per output token); for a non-streamed answer, whose first token
  time is unknown, ``completion_tokens / duration`` (the prefill is then included). A window's
  TPS is the ratio of the sums — total generated tokens over total generation time — which is
  also what a PromQL rule recomputes from the ``quanttrap.generation.*`` counters.
- **energy** per query (J), kept separately per measurement method so that methods are never
  mixed in one comparison, and joules per generated token;
- **accuracy**: graded evaluation outcomes (correct / graded);
- **paired outcomes**: a variant's verdict and the anchor's on the same prompt.

This module is single-threaded by design: the live runtime feeds and reads it from one worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from core.buckets import BATCH_BUCKETS, BUCKET_LOWER_SIZE, batch_bucket
from core.records import Role
from scoring.stats import SampleSummary

__all__ = [
    "BATCH_BUCKETS",
    "BUCKET_LOWER_SIZE",
    "AgreementCell",
    "EnergySums",
    "EvidenceCell",
    "Observation",
    "RatioSums",
    "RunningStats",
    "SlidingWindow",
    "batch_bucket",
]


@dataclass(frozen=True, slots=True)
class Observation:
    """What one finished request to one variant contributes to the live windows.

    ``at`` is Unix time when it finished; ``gen_tokens`` / ``gen_s`` its generated tokens
    and generation seconds as defined in the module docstring (``None`` when not measurable);
    ``energy_j`` its apportioned energy (J) measured by ``energy_method``; ``correct`` the
    grader's verdict for evaluation traffic (``None`` when not graded); ``pair_key`` ties
    verdicts on the same prompt together (a shadow pair id or a canary round).
    """

    at: float
    model: str
    variant: str
    role: Role
    bucket: str
    ok: bool
    gen_tokens: int | None = None
    gen_s: float | None = None
    completion_tokens: int | None = None
    energy_j: float | None = None
    energy_method: str = "none"
    dataset: str | None = None
    correct: bool | None = None
    pair_key: str | None = None


@dataclass(slots=True)
class RunningStats:
    """Count, mean and sum of squared deviations (Welford), mergeable (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def merge(self, other: RunningStats) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n

    def summary(self) -> SampleSummary | None:
        if self.n == 0:
            return None
        variance = max(self.m2, 0.0) / (self.n - 1) if self.n > 1 else 0.0
        return SampleSummary(self.n, self.mean, variance)


@dataclass(slots=True)
class RatioSums:
    """Sums for a ratio estimator ``R = Σx / Σy`` (tokens over seconds)."""

    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    syy: float = 0.0
    sxy: float = 0.0

    def add(self, x: float, y: float) -> None:
        self.n += 1
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.syy += y * y
        self.sxy += x * y

    def merge(self, other: RatioSums) -> None:
        self.n += other.n
        self.sx += other.sx
        self.sy += other.sy
        self.sxx += other.sxx
        self.syy += other.syy
        self.sxy += other.sxy

    def summary(self) -> SampleSummary | None:
        """``R`` as a :class:`SampleSummary` whose relative variance is the ratio estimator's.

        The linearised variance of ``R = Σx/Σy`` is ``Var(R) ≈ s_d² / (n ȳ²)`` with
        ``d_i = x_i − R y_i``. :func:`scoring.stats.ratio_of_means_interval` uses
        ``variance / (n mean²)``, so the summary carries ``variance = n Var(R)``.
        """
        if self.n == 0 or self.sy <= 0 or self.sx <= 0:
            return None
        r = self.sx / self.sy
        if self.n == 1:
            return SampleSummary(1, r, 0.0)
        ss_d = self.sxx - 2.0 * r * self.sxy + r * r * self.syy
        s2_d = max(ss_d, 0.0) / (self.n - 1)
        y_bar = self.sy / self.n
        var_r = s2_d / (self.n * y_bar * y_bar)
        return SampleSummary(self.n, r, var_r * self.n) if math.isfinite(var_r) else None


@dataclass(slots=True)
class EnergySums:
    """Energy of one measurement method: J per query, and J per generated token."""

    per_query: RunningStats = field(default_factory=RunningStats)
    token_joules: float = 0.0
    tokens: int = 0

    def merge(self, other: EnergySums) -> None:
        self.per_query.merge(other.per_query)
        self.token_joules += other.token_joules
        self.tokens += other.tokens

    @property
    def j_per_token(self) -> float | None:
        return self.token_joules / self.tokens if self.tokens > 0 else None


@dataclass(slots=True)
class EvidenceCell:
    """Everything one slot (or a merged window) knows about one model/variant/bucket.

    ``pairs`` counts paired verdicts against the anchor on the same prompt:
    ``[both correct, anchor only, variant only, both wrong]``.
    """

    requests: int = 0
    failed: int = 0
    graded: int = 0
    correct: int = 0
    speed: RatioSums = field(default_factory=RatioSums)
    energy: dict[str, EnergySums] = field(default_factory=dict)
    pairs: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def add(self, obs: Observation) -> None:
        self.requests += 1
        if not obs.ok:
            self.failed += 1
            return
        if obs.correct is not None:
            self.graded += 1
            self.correct += obs.correct
        if obs.gen_tokens is not None and obs.gen_s is not None and obs.gen_s > 0:
            self.speed.add(obs.gen_tokens, obs.gen_s)
        if obs.energy_j is not None and obs.energy_method != "none":
            sums = self.energy.get(obs.energy_method)
            if sums is None:
                sums = self.energy[obs.energy_method] = EnergySums()
            sums.per_query.add(obs.energy_j)
            if obs.completion_tokens:
                sums.token_joules += obs.energy_j
                sums.tokens += obs.completion_tokens

    def add_pair(self, anchor_correct: bool, variant_correct: bool) -> None:
        index = (0 if variant_correct else 1) if anchor_correct else (2 if variant_correct else 3)
        self.pairs[index] += 1

    def merge(self, other: EvidenceCell) -> None:
        self.requests += other.requests
        self.failed += other.failed
        self.graded += other.graded
        self.correct += other.correct
        self.speed.merge(other.speed)
        for method, sums in other.energy.items():
            mine = self.energy.get(method)
            if mine is None:
                mine = self.energy[method] = EnergySums()
            mine.merge(sums)
        for i, count in enumerate(other.pairs):
            self.pairs[i] += count


@dataclass(slots=True)
class AgreementCell:
    """Shadow answer comparisons: agreed, disagreed, or not comparable (no answer found).

    ``hops`` splits the same counts by the primary's agent-hop bucket
    (:data:`~core.buckets.HOP_POSITION_BUCKETS`: ``[agree, disagree, unknown]`` each) and
    ``verdicts`` counts each outcome label (:data:`~scoring.comparison.VERDICT_LABELS`);
    both key sets are fixed, so a cell stays bounded.
    """

    agree: int = 0
    disagree: int = 0
    unknown: int = 0
    hops: dict[str, list[int]] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)

    def add(self, agree: bool | None, hop_bucket: str, verdict: str) -> None:
        index = 2 if agree is None else 0 if agree else 1
        if index == 0:
            self.agree += 1
        elif index == 1:
            self.disagree += 1
        else:
            self.unknown += 1
        counts = self.hops.get(hop_bucket)
        if counts is None:
            counts = self.hops[hop_bucket] = [0, 0, 0]
        counts[index] += 1
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1

    def merge(self, other: AgreementCell) -> None:
        self.agree += other.agree
        self.disagree += other.disagree
        self.unknown += other.unknown
        for bucket, counts in other.hops.items():
            mine = self.hops.get(bucket)
            if mine is None:
                mine = self.hops[bucket] = [0, 0, 0]
            for i, n in enumerate(counts):
                mine[i] += n
        for label, n in other.verdicts.items():
            self.verdicts[label] = self.verdicts.get(label, 0) + n


class _Mergeable(Protocol):
    def merge(self, other: Any, /) -> None: ...


C = TypeVar("C", bound=_Mergeable)


class SlidingWindow(Generic[C]):
    """The last ``window_s`` seconds as at most ``ceil(window_s / slot_s)`` slots of ``C``.

    Times are passed in (``now``), so the window is deterministic under test. Evidence
    stamped in the future (clock skew) is booked in the current slot; evidence older than
    the window is ignored.
    """

    def __init__(self, window_s: float, slot_s: float, factory: Callable[[], C]) -> None:
        if not 0 < slot_s <= window_s:
            raise ValueError(f"need 0 < slot_s <= window_s, got {slot_s}, {window_s}")
        self._slot_s = slot_s
        self._slots = math.ceil(window_s / slot_s)
        self._factory = factory
        self._cells: dict[int, C] = {}
        self._expired_below = -(2**62)  # every slot index below this one is gone

    @property
    def max_slots(self) -> int:
        return self._slots

    def __len__(self) -> int:
        return len(self._cells)

    def cell(self, at: float, now: float) -> C | None:
        """The slot's cell for evidence stamped ``at`` (created if needed), or ``None``."""
        current = int(now // self._slot_s)
        index = min(int(at // self._slot_s), current)
        if index <= current - self._slots:
            return None
        self._expire(current)
        found = self._cells.get(index)
        if found is None:
            found = self._cells[index] = self._factory()
        return found

    def total(self, now: float) -> C:
        """All unexpired slots merged into a fresh cell."""
        self._expire(int(now // self._slot_s))
        out = self._factory()
        for cell in self._cells.values():
            out.merge(cell)
        return out

    def _expire(self, current: int) -> None:
        oldest = current - self._slots + 1
        if oldest <= self._expired_below:
            return  # nothing older can have been added since: cell() refuses it
        self._expired_below = oldest
        for index in [i for i in self._cells if i < oldest]:
            del self._cells[index]
