"""What the live scorer publishes: one immutable snapshot per recomputation, and a history.

A :class:`LiveSnapshot` is built by :class:`scoring.live.LiveScorer` every few seconds and
replaced as a whole, so readers (the status API, the metric callbacks) never see a half-made
table. Every estimate carries its interval; ``None`` means "not measurable yet", and the
``missing`` texts say why — nothing unmeasured is ever shown as zero.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from scoring.agreement import HopAgreement, HopTrend
from scoring.regimes import Regime
from scoring.stats import Interval, McNemarResult
from scoring.thresholds import BatchThreshold
from scoring.verdicts import Verdicts

__all__ = [
    "AgreementView",
    "BucketRow",
    "EnergyView",
    "HistoryPoint",
    "LiveHistory",
    "LiveSnapshot",
    "ModelStatus",
    "PillarView",
    "VariantStatus",
]


@dataclass(frozen=True, slots=True)
class EnergyView:
    """Energy of one variant in one bucket, by one method (never a mix).

    ``method`` is ``none`` and ``available`` false when nothing measured it; ``reason`` then
    says so. ``j_per_query`` is the mean with its interval (J); ``j_per_token`` J per token.
    """

    method: str
    available: bool
    samples: int
    j_per_query: Interval | None
    j_per_token: float | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PillarView:
    """One pillar: raw value with its interval, and the bounded (clipped) value the SI uses."""

    raw: Interval | None
    bounded: float | None


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One variant in one batch-size bucket, compared with the anchor in the same bucket.

    ``accuracy`` is a Wilson interval; ``tokens_per_s`` the ratio-estimator interval of
    generated tokens per second of generation; comparison fields are ``None`` on the anchor's
    own row. ``pairs`` is (both correct, anchor only, variant only, both wrong).
    These window estimates describe the last ``window_s`` seconds; the verdicts do not rest
    on them. ``verdicts`` holds the epoch's anytime-valid confidence sequences and margins
    (:mod:`scoring.verdicts`); ``significant`` its answers (less accurate, slower, more
    energy); ``regime_now`` the regime they give, ``regime`` the latched one that ``trap``
    follows.
    """

    bucket: str
    requests: int
    failed: int
    graded: int
    correct: int
    speed_samples: int
    accuracy: Interval | None
    tokens_per_s: Interval | None
    energy: EnergyView
    memory_gb: float | None
    cor: Interval | None = None
    accuracy_difference: Interval | None = None
    pairs: tuple[int, int, int, int] = (0, 0, 0, 0)
    paired: McNemarResult | None = None
    trust: PillarView = PillarView(None, None)
    economic: PillarView = PillarView(None, None)
    energy_pillar: PillarView = PillarView(None, None)
    si: Interval | None = None
    si_raw: float | None = None
    regime_now: Regime = "undetermined"
    regime: Regime = "undetermined"
    trap: bool = False
    significant: tuple[bool | None, bool | None, bool | None] = (None, None, None)
    energy_considered: bool = False
    verdicts: Verdicts | None = None
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VariantStatus:
    """A variant across buckets: the headline bucket (most comparable evidence) and all rows.

    ``trap`` is true when any bucket's latched flag is on. ``b_star`` is the critical batch
    threshold located on the buckets' lower sizes, when energy was measured in two or more.
    """

    model: str
    variant: str
    bits: int
    is_anchor: bool
    memory_gb: float | None
    memory_method: str
    headline: BucketRow | None
    buckets: tuple[BucketRow, ...]
    trap: bool
    b_star: BatchThreshold | None
    b_star_note: str
    memory_source: str = "unknown"
    """The bounded kind of ``memory_method`` (:data:`scoring.live.MEMORY_SOURCES`)."""


@dataclass(frozen=True, slots=True)
class AgreementView:
    """Shadow answer agreement of ``shadow`` with ``primary`` (Wilson interval on the rate).

    ``hops`` splits the window's comparisons by the primary's agent-hop bucket, ``verdicts``
    counts each outcome label in the window (``(label, count)``, labels of
    :data:`~scoring.comparison.VERDICT_LABELS` that occurred), and ``trend`` is the epoch's
    anytime-valid answer to "does disagreement grow after the first hop?"
    (:mod:`scoring.agreement`).
    """

    primary: str
    shadow: str
    agree: int
    disagree: int
    unknown: int
    rate: Interval | None
    hops: tuple[HopAgreement, ...] = ()
    verdicts: tuple[tuple[str, int], ...] = ()
    trend: HopTrend | None = None


@dataclass(frozen=True, slots=True)
class ModelStatus:
    model: str
    anchor: str
    variants: tuple[VariantStatus, ...]
    agreement: tuple[AgreementView, ...]


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """The whole live table at ``at`` (Unix time) over the last ``window_s`` seconds."""

    at: float
    window_s: float
    confidence: float
    models: tuple[ModelStatus, ...]
    counters: dict[str, int] = field(default_factory=dict)
    """Ingestion counts (records, graded, grading errors, dropped) since start."""


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of a variant's headline history (Unix time; ``None`` = not measured)."""

    at: float
    si: float | None
    si_low: float | None
    si_high: float | None
    j_per_query: float | None
    energy_method: str
    tokens_per_s: float | None
    accuracy: float | None
    regime: Regime
    trap: bool


class LiveHistory:
    """The last ``points`` headline values per (model, variant), sampled every ``interval_s``."""

    def __init__(self, points: int, interval_s: float) -> None:
        self._points = points
        self._interval_s = interval_s
        self._last: float | None = None
        self.series: dict[tuple[str, str], deque[HistoryPoint]] = {}

    def maybe_record(self, snapshot: LiveSnapshot) -> bool:
        """Append a point per variant if ``interval_s`` has passed since the last one."""
        if self._last is not None and snapshot.at - self._last < self._interval_s:
            return False
        self._last = snapshot.at
        for model in snapshot.models:
            for v in model.variants:
                row = v.headline
                series = self.series.get((model.model, v.variant))
                if series is None:
                    series = self.series[model.model, v.variant] = deque(maxlen=self._points)
                series.append(_point(snapshot.at, row))
        return True


def _point(at: float, row: BucketRow | None) -> HistoryPoint:
    if row is None:
        return HistoryPoint(at, None, None, None, None, "none", None, None, "undetermined", False)
    j = row.energy.j_per_query
    return HistoryPoint(
        at=at,
        si=row.si.estimate if row.si else None,
        si_low=row.si.low if row.si else None,
        si_high=row.si.high if row.si else None,
        j_per_query=j.estimate if j else None,
        energy_method=row.energy.method,
        tokens_per_s=row.tokens_per_s.estimate if row.tokens_per_s else None,
        accuracy=row.accuracy.estimate if row.accuracy else None,
        regime=row.regime,
        trap=row.trap,
    )
