"""Live scoring inside the running proxy: sinks, the periodic recompute, the log, canaries.

:func:`attach_scoring` wires a :class:`ScoringRuntime` into a :class:`~proxy.app.QuanttrapApp`:

- a record sink and a pair sink that only append to bounded deques (O(1), never raising:
  nothing is graded or computed on the request path);
- a background task that every ``scoring.recompute_interval_s`` hands the queued records to a
  worker thread, which grades evaluation traffic, compares shadow answers, updates the
  sliding windows, appends to the SQLite log and recomputes the live snapshot
  (:class:`~scoring.live.LiveScorer`), which then replaces the published one whole;
- the evaluation log (:class:`~scoring.io.store.EvaluationStore`), reloaded into the windows at
  start so a restart keeps the window's evidence;
- the canary prober (:class:`~proxy.canary.CanaryRunner`) when ``scoring.canary.enabled``;
- the status API and page (:mod:`proxy.status`), and the scoring metrics when a meter is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import replace

from opentelemetry.metrics import Meter

from backends.base import Backend
from core.records import RequestRecord, ShadowPair
from proxy.canary import CanaryRunner
from proxy.config import ConfigError, ProxySettings
from proxy.shadow_sampling import ShadowSamplingStats
from scoring.comparison import compare_pair
from scoring.config import ScoringConfig
from scoring.evaluation import Processed, process_record
from scoring.io.store import EvaluationStore, JournalOutcome, record_key
from scoring.live import LiveScorer, MemoryInfo, MemorySource, ModelSpec
from scoring.snapshot import LiveHistory, LiveSnapshot
from telemetry.scoring_metrics import ScoringMetrics
from telemetry.semconv import CAPTURE_CONTENT_ENV
from telemetry.store_metrics import register_store_metrics

__all__ = ["ScoringRuntime"]

log = logging.getLogger("quanttrap.scoring")

_MAX_CANARY_IDS = 4096


class ScoringRuntime:
    """The live scoring state of one proxy process (see the module docstring)."""

    def __init__(
        self,
        settings: ProxySettings,
        backends: Mapping[tuple[str, str], Backend],
        *,
        meter: Meter | None = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        cfg: ScoringConfig = settings.scoring
        _check_memory(cfg, settings)
        environ = os.environ if environ is None else environ
        self.config = cfg
        self.settings = settings
        self._backends = backends
        self._clock = clock
        self.capture_content = settings.telemetry.capture_content or (
            environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"
        )
        specs = [
            ModelSpec(m.name, m.anchor, tuple((v.name, v.bits) for v in m.variants))
            for m in settings.models
        ]
        self.scorer = LiveScorer(cfg, specs)
        self.history = LiveHistory(cfg.history_points, cfg.history_interval_s)
        self.snapshot: LiveSnapshot | None = None
        self.metrics = ScoringMetrics(meter, lambda: self.snapshot) if meter is not None else None
        self.store = (
            EvaluationStore(
                cfg.store.path,
                max_rows=cfg.store.max_rows,
                max_age_s=cfg.store.max_age_s,
                flush_interval_s=cfg.store.flush_interval_s,
                queue_size=cfg.store.queue_size,
                clock=clock,
            )
            if cfg.store.enabled
            else None
        )
        if meter is not None and self.store is not None:
            register_store_metrics(meter, self._store_counts)
        self._records: deque[RequestRecord] = deque()
        self._pairs: deque[ShadowPair] = deque()
        self._canaries: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._canary_lock = threading.Lock()
        self._work_lock = threading.Lock()  # one recompute at a time
        self._task: asyncio.Task[None] | None = None
        self.counters: dict[str, int] = {
            "records": 0,
            "pairs": 0,
            "graded": 0,
            "grading_errors": 0,
            "dropped_records": 0,
            "reloaded_evaluations": 0,
            "reloaded_comparisons": 0,
        }
        self.canary: CanaryRunner | None = None
        self.shadow_coverage: Callable[[], Mapping[str, ShadowSamplingStats]] | None = None
        """Per model, how the shadow cap is shared by batch-size bucket (set at assembly)."""
        """The canary prober when ``scoring.canary.enabled`` (set by :func:`attach_scoring`)."""

    # -- the request path: O(1), never raises ------------------------------------------------

    def record_sink(self, record: RequestRecord) -> None:
        if len(self._records) >= self.config.pending_records:
            self._records.popleft()
            self.counters["dropped_records"] += 1
        self._records.append(record)

    def pair_sink(self, pair: ShadowPair) -> None:
        if pair.shadow is None:
            return  # dropped by the shadow cap: nothing to compare
        if len(self._pairs) >= self.config.pending_records:
            self._pairs.popleft()
            self.counters["dropped_records"] += 1
        self._pairs.append(pair)

    async def journal(self, record: RequestRecord) -> JournalOutcome:
        """Make ``record``'s evaluation durable now; await it before the last response byte.

        For evaluation traffic (a primary or canary record with an expected answer); other
        records return ``not_graded`` at once. The grading pass later writes the complete
        evaluation (with its energy) over the journaled row.
        """
        store = self.store
        if store is None:
            return "unavailable"
        if record.expected_answer is None or not record.ok or record.role == "shadow":
            return "not_graded"
        with self._canary_lock:
            item_id, pair_key = self._canaries.get(record.request_id, (None, None))
        return await store.journal(
            record, item_id=item_id, pair_key=pair_key, capture_content=self.capture_content
        )

    def _store_counts(self) -> dict[str, int]:
        store = self.store
        if store is None:
            return {}
        return {
            "written": store.written,
            "journaled": store.journaled,
            "failed": store.rows_failed,
            "dropped": store.dropped,
            "failures": store.failures,
        }

    def register_canary(self, request_id: str, item_id: str, pair_key: str) -> None:
        """Remember which dataset item and round a canary request id stands for (bounded)."""
        with self._canary_lock:
            self._canaries[request_id] = (item_id, pair_key)
            while len(self._canaries) > _MAX_CANARY_IDS:
                self._canaries.popitem(last=False)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.open)
            await asyncio.to_thread(self._reload)
        self.snapshot = await asyncio.to_thread(self._work, self._clock(), self._memory())
        self.history.maybe_record(self.snapshot)
        self._task = asyncio.create_task(self._loop(), name="quanttrap-scoring")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.tick()  # grade and log what arrived since the last tick
        if self.store is not None:
            await asyncio.to_thread(self.store.close)

    async def tick(self) -> LiveSnapshot:
        """Process the queued records and recompute the snapshot now (the loop's one step)."""
        snapshot = await asyncio.to_thread(self._work, self._clock(), self._memory())
        self.snapshot = snapshot
        self.history.maybe_record(snapshot)  # on the loop, where the status API reads it
        return snapshot

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.recompute_interval_s)
            try:
                await self.tick()
            except Exception:  # scoring must never stop because of one bad batch
                log.exception("live scoring recompute failed")

    # -- the worker thread -------------------------------------------------------------------

    def _work(self, now: float, memory: Mapping[tuple[str, str], MemoryInfo]) -> LiveSnapshot:
        with self._work_lock:
            records, pairs = self._records, self._pairs
            while records:
                record = records.popleft()
                self.counters["records"] += 1
                self._ingest(self._process(record), record, now)
            while pairs:
                pair = pairs.popleft()
                self.counters["pairs"] += 1
                self._ingest_pair(pair, now)
            snapshot = self.scorer.evaluate(now, memory)
            counters = {**self.counters, **self.scorer.counters}
            if self.store is not None:
                counters["log_written"] = self.store.written
                counters["log_dropped"] = self.store.dropped
                counters["log_journaled"] = self.store.journaled
                counters["log_failed_batches"] = self.store.failures
                counters["log_rows_failed"] = self.store.rows_failed
            return replace(snapshot, counters=counters)

    def _process(self, record: RequestRecord) -> Processed:
        item_id = pair_key = None
        if record.role == "canary":
            with self._canary_lock:
                found = self._canaries.pop(record.request_id, None)
            if found is not None:
                item_id, pair_key = found
        return process_record(
            record, pair_key=pair_key, item_id=item_id, capture_content=self.capture_content
        )

    def _ingest(self, processed: Processed, record: RequestRecord, now: float) -> None:
        obs = processed.observation
        self.scorer.ingest(obs, now)
        if processed.grading_error is not None:
            self.counters["grading_errors"] += 1
            count = self.counters["grading_errors"]
            if count & (count - 1) == 0:  # the 1st, 2nd, 4th, 8th ...: a bad client cannot flood
                log.warning(
                    "could not grade %s (%d grading errors so far): %s",
                    record.request_id,
                    count,
                    processed.grading_error,
                )
        evaluation = processed.evaluation
        if evaluation is not None:
            self.counters["graded"] += 1
            if self.store is not None:  # over the journaled row, if the pipeline journaled it
                self.store.append(evaluation, key=record_key(record))
        elif record.expected_answer is not None and self.store is not None:
            # Journaled before its last byte, but not gradable in the end (the stream broke,
            # the reference was unreadable): the journaled row must not count.
            self.store.forget(record_key(record))
        if self.metrics is not None:
            if evaluation is not None:
                self.metrics.graded(
                    obs.model,
                    obs.variant,
                    obs.role,
                    evaluation.dataset,
                    obs.bucket,
                    evaluation.correct,
                    evaluation.depth,
                )
            if obs.gen_tokens is not None and obs.gen_s is not None:
                self.metrics.generation(
                    obs.model, obs.variant, obs.role, obs.bucket, obs.gen_tokens, obs.gen_s
                )

    def _ingest_pair(self, pair: ShadowPair, now: float) -> None:
        comparison = compare_pair(pair, capture_content=self.capture_content)
        if comparison is not None:
            self.scorer.ingest_comparison(comparison, now)
            if self.store is not None:
                self.store.append(comparison)
            if self.metrics is not None:
                self.metrics.comparison(
                    comparison.model,
                    comparison.primary_variant,
                    comparison.shadow_variant,
                    comparison.agree,
                    reason=comparison.reason,
                    agent_hop=comparison.agent_hop,
                )
        shadow = pair.shadow
        if shadow is None:
            return
        primary = pair.primary
        # The copy answered the primary's question: grade it against the primary's reference,
        # unless the primary called tools (an agent hop before its final answer: not graded,
        # so the copy is not either, and no unpaired verdict is booked for it alone).
        shadow = replace(
            shadow,
            expected_answer=None if primary.tool_calls else primary.expected_answer,
            dataset=primary.dataset,
            prompt=primary.prompt,
            reference_depth=primary.reference_depth,
        )
        processed = process_record(
            shadow, pair_key=pair.pair_id, capture_content=self.capture_content
        )
        self._ingest(processed, shadow, now)

    def _reload(self) -> None:
        """Put the evidence of the last window back (blocking; runs on a worker thread)."""
        assert self.store is not None
        now = self._clock()
        since = now - self.config.window_s
        with self._work_lock:
            for evaluation in self.store.load_evaluations(since):
                self.scorer.ingest(evaluation.observation(), now)
                self.counters["reloaded_evaluations"] += 1
            for comparison in self.store.load_comparisons(since):
                self.scorer.ingest_comparison(comparison, now)
                self.counters["reloaded_comparisons"] += 1
        if self.counters["reloaded_evaluations"] or self.counters["reloaded_comparisons"]:
            log.info(
                "live scoring: reloaded %d evaluations and %d shadow comparisons from %s",
                self.counters["reloaded_evaluations"],
                self.counters["reloaded_comparisons"],
                self.store.path,
            )

    # -- memory ------------------------------------------------------------------------------

    def _memory(self) -> dict[tuple[str, str], MemoryInfo]:
        """Each variant's residency: declared in config, else the engine's report, else unknown."""
        out: dict[tuple[str, str], MemoryInfo] = {}
        basis = self.config.memory_basis
        for key, backend in self._backends.items():
            model, variant = key
            declared = self.config.memory_gb.get(model, {}).get(variant)
            if declared is not None:
                out[key] = MemoryInfo(declared, "declared in scoring.memory_gb", "config")
                continue
            try:
                report = backend.memory()
                if report is None:
                    out[key] = MemoryInfo(None, "unknown")
                    continue
                size = report.weights_bytes if basis == "weights" else report.peak_bytes
                method = str(report.method)
                source: MemorySource = "weights" if basis == "weights" else _peak_source(method)
                out[key] = MemoryInfo(size / 1e9, f"engine {basis}: {method}", source)
            except Exception as exc:  # not loaded yet, or a backend without a usable report
                out[key] = MemoryInfo(None, f"unknown ({exc})")
        return out


def _peak_source(method: str) -> MemorySource:
    """The bounded kind of an engine's peak, from what its ``MemoryReport.method`` says."""
    peak = method.partition("peak:")[2] or method
    if "cuda" in peak:
        return "cuda_peak"  # torch.cuda.max_memory_allocated(device)
    if "rss" in peak.lower():
        return "cpu_rss"  # the process's ru_maxrss
    return "peak"


def _check_memory(cfg: ScoringConfig, settings: ProxySettings) -> None:
    for model, variants in cfg.memory_gb.items():
        spec = settings.model(model)
        if spec is None:
            raise ConfigError(f"scoring.memory_gb.{model}: no such model")
        for variant in variants:
            if spec.variant(variant) is None:
                raise ConfigError(f"scoring.memory_gb.{model}.{variant}: no such variant")
