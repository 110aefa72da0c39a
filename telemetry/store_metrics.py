"""The evaluation log's health as metrics: what was written, and what could not be.

Observable counters read at scrape time from the store's own counts (passed in as a function,
so telemetry does not import the store). Prometheus names:

=============================================  ===============================================
``quanttrap_evaluation_store_rows_total``       rows, ``quanttrap_store_outcome``: written |
                                               journaled | failed | dropped
``quanttrap_evaluation_store_failures_total``   failed batches or retention passes (a full or
                                               read-only disk, a corrupt file)
=============================================  ===============================================

An alert on ``increase(quanttrap_evaluation_store_rows_total{quanttrap_store_outcome="failed"}
[5m]) > 0`` says evaluations are being lost while the proxy keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter
from opentelemetry.metrics import Observation as Point

__all__ = ["OUTCOME_KEY", "ROWS", "STORE_FAILURES", "StoreCounts", "register_store_metrics"]

ROWS: Final = "quanttrap.evaluation_store.rows"
STORE_FAILURES: Final = "quanttrap.evaluation_store.failures"
OUTCOME_KEY: Final = "quanttrap.store.outcome"
_OUTCOMES: Final = ("written", "journaled", "failed", "dropped")

StoreCounts = Callable[[], Mapping[str, int]]
"""Returns the store's counts: ``written``, ``journaled``, ``failed`` (rows), ``dropped``
and ``failures`` (batches)."""


def register_store_metrics(meter: Meter, counts: StoreCounts) -> None:
    """Create the two observable counters on ``meter``, reading ``counts`` at each scrape."""

    def rows(_options: CallbackOptions) -> Iterable[Point]:
        now = counts()
        return [Point(now.get(o, 0), {OUTCOME_KEY: o}) for o in _OUTCOMES]

    def failures(_options: CallbackOptions) -> Iterable[Point]:
        return [Point(counts().get("failures", 0))]

    meter.create_observable_counter(
        ROWS,
        callbacks=[rows],
        unit="{row}",
        description="Evaluation-log rows by outcome (failed: NOT stored, the disk refused).",
    )
    meter.create_observable_counter(
        STORE_FAILURES,
        callbacks=[failures],
        unit="{failure}",
        description="Evaluation-log writes that failed (disk full, read-only, corrupt).",
    )
