"""The live scorer: sliding windows in, a scored snapshot with intervals and trap flags out.

:class:`LiveScorer` is fed :class:`~scoring.windows.Observation`\\ s (one per finished request,
graded when it was evaluation traffic) and shadow :class:`~scoring.comparison.PairComparison`\\ s,
and on :meth:`LiveScorer.evaluate` it recomputes, for every model, variant and batch-size
bucket, the estimates of the last ``window_s`` seconds and the comparison with the anchor **in
the same bucket**: COR, the three pillars, the SI — each with its interval. The regime questions are
answered from the evidence of the current **epoch** (everything since the epoch started, in
running sums) with anytime-valid confidence sequences (:mod:`scoring.verdicts`), and the
regime feeds the latched trap flag. An epoch starts with the scorer (a deployment or config
change restarts the process) and every ``trap.epoch_s`` seconds; answers that the epoch's own
evidence made "yes" are held through the next epoch until it confirms or excludes them, and
lapse at its end. B\\* is
located across buckets where energy was measured.

It is pure and single-threaded: time is passed in, no I/O; the runtime calls it from one
worker. Memory is bounded by the configured models, variants and the fixed bucket set (times
the number of slots per window), plus a bounded table of unpaired verdicts. Shadow
comparisons are also kept per agent-hop bucket (a fixed set) in the window and the epoch, for
the per-hop agreement and its trend (:mod:`scoring.agreement`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from core.buckets import hop_position_bucket
from scoring.agreement import hop_trend, hop_views
from scoring.comparison import VERDICT_LABELS, PairComparison, verdict_label
from scoring.config import ScoringConfig
from scoring.evidence import RegimeLatch
from scoring.row import RowInputs, score_row
from scoring.snapshot import AgreementView, BucketRow, LiveSnapshot, ModelStatus, VariantStatus
from scoring.stats import wilson_interval
from scoring.thresholds import BatchEnergy, BatchThreshold, critical_batch_threshold
from scoring.verdicts import QUESTIONS, Question, Verdicts
from scoring.windows import (
    BATCH_BUCKETS,
    BUCKET_LOWER_SIZE,
    AgreementCell,
    EvidenceCell,
    Observation,
    SlidingWindow,
)

__all__ = ["MEMORY_SOURCES", "LiveScorer", "MemoryInfo", "MemorySource", "ModelSpec"]

_MAX_OPEN_PAIRS = 4096
"""Prompts whose verdicts are waiting for their partner (oldest forgotten beyond it)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A configured model: its anchor and its variants as (name, bits)."""

    name: str
    anchor: str
    variants: tuple[tuple[str, int], ...]


MemorySource = Literal["config", "weights", "cuda_peak", "cpu_rss", "peak", "unknown"]
"""Where a residency figure came from, as a bounded metric label: declared in
``scoring.memory_gb`` (``config``), the engine's weight storage (``weights``), its peak from
``torch.cuda.max_memory_allocated`` (``cuda_peak``) or the process's peak RSS (``cpu_rss``),
another engine peak (``peak``), or not known (``unknown``: no figure at all)."""
MEMORY_SOURCES: Final[tuple[MemorySource, ...]] = (
    "config",
    "weights",
    "cuda_peak",
    "cpu_rss",
    "peak",
    "unknown",
)


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    """A variant's memory residency in GB and how it was obtained (``unknown``: not known).

    ``method`` is the human-readable account (status page); ``source`` its bounded kind.
    """

    gb: float | None
    method: str
    source: MemorySource = "unknown"


_UNKNOWN_MEMORY = MemoryInfo(None, "unknown")


class LiveScorer:
    def __init__(self, config: ScoringConfig, models: Sequence[ModelSpec]) -> None:
        self.config = config
        self.models = tuple(models)
        self._bits = {(m.name, v): b for m in self.models for v, b in m.variants}
        self._anchors = {m.name: m.anchor for m in self.models}
        self._windows: dict[tuple[str, str, str], SlidingWindow[EvidenceCell]] = {}
        self._agreement: dict[tuple[str, str, str], SlidingWindow[AgreementCell]] = {}
        self._agreement_epoch: dict[tuple[str, str, str], AgreementCell] = {}
        self._latches: dict[tuple[str, str, str], RegimeLatch] = {}
        self._epoch: dict[tuple[str, str, str], EvidenceCell] = {}
        self._epoch_since: float | None = None
        self._held: dict[tuple[str, str, str], frozenset[Question]] = {}
        self._last_answers: dict[tuple[str, str, str], frozenset[Question]] = {}
        self._last_verdicts: dict[tuple[str, str, str], Verdicts] = {}
        self._open_pairs: OrderedDict[tuple[str, str], dict[str, tuple[bool, str]]] = OrderedDict()
        self.counters: dict[str, int] = {"observations": 0, "ignored": 0, "pairs_matched": 0}

    # -- feeding -----------------------------------------------------------------------------

    def ingest(self, obs: Observation, now: float) -> None:
        """Book one request's evidence (ignored if its model/variant is not configured)."""
        if (obs.model, obs.variant) not in self._bits:
            self.counters["ignored"] += 1
            return
        self.counters["observations"] += 1
        self._roll(now)
        cell = self._window(obs.model, obs.variant, obs.bucket).cell(obs.at, now)
        if cell is not None:
            cell.add(obs)
        self._epoch_cell(obs.model, obs.variant, obs.bucket).add(obs)
        if obs.correct is not None and obs.pair_key is not None:
            self._pair(obs, now)

    def ingest_comparison(self, cmp: PairComparison, now: float) -> None:
        """Book one shadow comparison: its outcome, its label and the primary's hop bucket,
        in the window and in the epoch (the hop trend's evidence)."""
        key = (cmp.model, cmp.primary_variant, cmp.shadow_variant)
        if (cmp.model, cmp.shadow_variant) not in self._bits:
            return
        self._roll(now)
        hop = hop_position_bucket(cmp.agent_hop)
        label = verdict_label(cmp.reason, cmp.agree)
        epoch = self._agreement_epoch.get(key)
        if epoch is None:
            epoch = self._agreement_epoch[key] = AgreementCell()
        epoch.add(cmp.agree, hop, label)
        window = self._agreement.get(key)
        if window is None:
            window = self._agreement[key] = SlidingWindow(
                self.config.window_s, self.config.slot_s, AgreementCell
            )
        cell = window.cell(cmp.at, now)
        if cell is not None:
            cell.add(cmp.agree, hop, label)

    def _pair(self, obs: Observation, now: float) -> None:
        """Join verdicts on the same prompt; book each (anchor, variant) pair once."""
        assert obs.correct is not None and obs.pair_key is not None
        key = (obs.model, obs.pair_key)
        seen = self._open_pairs.get(key)
        if seen is None:
            seen = self._open_pairs[key] = {}
            if len(self._open_pairs) > _MAX_OPEN_PAIRS:
                self._open_pairs.popitem(last=False)
        anchor = self._anchors[obs.model]
        seen[obs.variant] = (obs.correct, obs.bucket)
        if obs.variant == anchor:
            partners = [(v, c, b) for v, (c, b) in seen.items() if v != anchor]
            booked = [(v, obs.correct, c, b) for v, c, b in partners]
        elif anchor in seen:
            booked = [(obs.variant, seen[anchor][0], obs.correct, obs.bucket)]
        else:
            booked = []
        for variant, anchor_ok, variant_ok, bucket in booked:
            cell = self._window(obs.model, variant, bucket).cell(obs.at, now)
            if cell is not None:
                cell.add_pair(anchor_ok, variant_ok)
                self.counters["pairs_matched"] += 1
            self._epoch_cell(obs.model, variant, bucket).add_pair(anchor_ok, variant_ok)

    def _window(self, model: str, variant: str, bucket: str) -> SlidingWindow[EvidenceCell]:
        key = (model, variant, bucket if bucket in BATCH_BUCKETS else "unknown")
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow(
                self.config.window_s, self.config.slot_s, EvidenceCell
            )
        return window

    def _epoch_cell(self, model: str, variant: str, bucket: str) -> EvidenceCell:
        key = (model, variant, bucket if bucket in BATCH_BUCKETS else "unknown")
        cell = self._epoch.get(key)
        if cell is None:
            cell = self._epoch[key] = EvidenceCell()
        return cell

    def _roll(self, now: float) -> None:
        epoch_s = self.config.trap.epoch_s
        if self._epoch_since is None:
            self._epoch_since = now
        elif epoch_s > 0 and now - self._epoch_since >= epoch_s:
            self.new_epoch(now)

    @property
    def epoch_since(self) -> float | None:
        """When the current verdict epoch started (``None`` before the first evaluation)."""
        return self._epoch_since

    def new_epoch(self, now: float) -> None:
        """Start a verdict epoch at ``now``: forget its evidence, hold its "yes" answers."""
        self._epoch.clear()
        self._agreement_epoch.clear()
        self._held = dict(self._last_answers)
        self._epoch_since = now

    # -- scoring -----------------------------------------------------------------------------

    def evaluate(
        self, now: float, memory: Mapping[tuple[str, str], MemoryInfo] | None = None
    ) -> LiveSnapshot:
        """Recompute everything over the window ending at ``now``; advances the latches."""
        memory = memory or {}
        self._roll(now)
        totals = {key: w.total(now) for key, w in self._windows.items()}
        models = tuple(self._model_status(m, totals, memory, now) for m in self.models)
        return LiveSnapshot(now, self.config.window_s, self.config.confidence, models)

    def _model_status(
        self,
        spec: ModelSpec,
        totals: Mapping[tuple[str, str, str], EvidenceCell],
        memory: Mapping[tuple[str, str], MemoryInfo],
        now: float,
    ) -> ModelStatus:
        anchor = spec.anchor
        anchor_mem = memory.get((spec.name, anchor), _UNKNOWN_MEMORY)
        variants = []
        for name, bits in spec.variants:
            mem = memory.get((spec.name, name), _UNKNOWN_MEMORY)
            rows = []
            for bucket in BATCH_BUCKETS:
                cell = totals.get((spec.name, name, bucket))
                if cell is None or cell.requests == 0:
                    continue
                anchor_cell = totals.get((spec.name, anchor, bucket)) or EvidenceCell()
                key = (spec.name, name, bucket)
                row = score_row(
                    RowInputs(
                        bucket=bucket,
                        variant=cell,
                        anchor=anchor_cell,
                        is_anchor=name == anchor,
                        variant_memory_gb=mem.gb,
                        anchor_memory_gb=anchor_mem.gb,
                        anchor_name=anchor,
                        epoch_variant=self._epoch.get(key) or EvidenceCell(),
                        epoch_anchor=self._epoch.get((spec.name, anchor, bucket)) or EvidenceCell(),
                        epoch_since=self._epoch_since or now,
                        held=self._held.get(key, frozenset()),
                        previous=self._last_verdicts.get(key),
                    ),
                    self.config,
                )
                self._remember(key, row)
                rows.append(self._latch(spec.name, name, row))
            b_star, note = self._b_star(spec, name, totals)
            variants.append(
                VariantStatus(
                    model=spec.name,
                    variant=name,
                    bits=bits,
                    is_anchor=name == anchor,
                    memory_gb=mem.gb,
                    memory_method=mem.method,
                    memory_source=mem.source,
                    headline=_headline(rows, totals, spec.name, anchor),
                    buckets=tuple(rows),
                    trap=any(r.trap for r in rows),
                    b_star=b_star,
                    b_star_note=note,
                )
            )
        return ModelStatus(spec.name, anchor, tuple(variants), self._agreements(spec, now))

    def _remember(self, key: tuple[str, str, str], row: BucketRow) -> None:
        """Keep the row's "yes" answers (held into the next epoch); drop resolved holds."""
        v = row.verdicts
        if v is None:
            return
        self._last_verdicts[key] = v
        # Only answers this epoch's own evidence gave: a hold is never carried twice.
        own = (q for q in QUESTIONS if v.answer(q) is True and q not in v.carried)
        self._last_answers[key] = frozenset(own)
        if key in self._held:
            self._held[key] = frozenset(v.carried)

    def _latch(self, model: str, variant: str, row: BucketRow) -> BucketRow:
        if row.regime_now == "anchor":
            return row
        latch = self._latches.get((model, variant, row.bucket))
        if latch is None:
            trap = self.config.trap
            latch = self._latches[model, variant, row.bucket] = RegimeLatch(
                trap.on_after, trap.off_after
            )
        label = latch.update(row.regime_now)
        return replace(row, regime=label, trap=latch.trap)

    def _agreements(self, spec: ModelSpec, now: float) -> tuple[AgreementView, ...]:
        out = []
        confidence = self.config.confidence
        trap = self.config.trap
        for key, window in sorted(self._agreement.items()):
            model, primary, shadow = key
            if model != spec.name:
                continue
            cell = window.total(now)
            known = cell.agree + cell.disagree
            rate = wilson_interval(cell.agree, known, confidence) if known else None
            trend = hop_trend(
                self._agreement_epoch.get(key) or AgreementCell(),
                self._epoch_since if self._epoch_since is not None else now,
                1.0 - confidence,
                trap.tune_samples,
                trap.min_graded,
            )
            verdicts = tuple((v, cell.verdicts[v]) for v in VERDICT_LABELS if v in cell.verdicts)
            out.append(
                AgreementView(
                    primary,
                    shadow,
                    cell.agree,
                    cell.disagree,
                    cell.unknown,
                    rate,
                    hop_views(cell, confidence),
                    verdicts,
                    trend,
                )
            )
        return tuple(out)

    def _b_star(
        self, spec: ModelSpec, variant: str, totals: Mapping[tuple[str, str, str], EvidenceCell]
    ) -> tuple[BatchThreshold | None, str]:
        if variant == spec.anchor:
            return None, "the anchor has no B*"
        minimum = self.config.trap.min_requests
        by_method: dict[str, list[BatchEnergy]] = {}
        for bucket, size in BUCKET_LOWER_SIZE.items():
            a = totals.get((spec.name, spec.anchor, bucket))
            v = totals.get((spec.name, variant, bucket))
            if a is None or v is None:
                continue
            for method, v_sums in v.energy.items():
                a_sums = a.energy.get(method)
                if a_sums is None or min(a_sums.per_query.n, v_sums.per_query.n) < minimum:
                    continue
                by_method.setdefault(method, []).append(
                    BatchEnergy(
                        batch_size=size,
                        anchor_j_per_query=a_sums.per_query.mean,
                        variant_j_per_query=v_sums.per_query.mean,
                        anchor_j_per_token=a_sums.j_per_token,
                        variant_j_per_token=v_sums.j_per_token,
                        anchor_queries=a_sums.per_query.n,
                        variant_queries=v_sums.per_query.n,
                    )
                )
        best = max(by_method.items(), key=lambda kv: len(kv[1]), default=None)
        if best is None or len(best[1]) < 2:
            return None, "needs energy of both variants, one method, in two or more batch buckets"
        method, points = best
        result = critical_batch_threshold(points)
        return result, f"located on bucket lower sizes, energy by {method}"


def _headline(
    rows: Sequence[BucketRow],
    totals: Mapping[tuple[str, str, str], EvidenceCell],
    model: str,
    anchor: str,
) -> BucketRow | None:
    """The bucket with the most comparable evidence: max of min(variant, anchor) requests."""

    def weight(row: BucketRow) -> tuple[int, int]:
        a = totals.get((model, anchor, row.bucket))
        return (min(row.requests, a.requests if a else 0), row.requests)

    return max(rows, key=weight, default=None)
