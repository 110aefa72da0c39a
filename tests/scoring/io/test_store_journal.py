"""The evaluation log's journal: durable before the answer ends, energy later, failures said."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from core.records import RequestRecord
from scoring.comparison import PairComparison
from scoring.evaluation import process_record
from scoring.io.store import EvaluationStore, record_key
from telemetry.store_metrics import register_store_metrics

T0 = round(time.time())  # recent: retention deletes rows older than a week
RECORD = RequestRecord(
    request_id="r1",
    model="m",
    variant="nf4",
    bits=4,
    role="primary",
    operation="chat",
    stream=False,
    status=200,
    started_at=float(T0),
    duration_s=0.5,
    completion_tokens=12,
    text="6 * 7 = 42. #### 42",
    expected_answer="42",
    prompt="What is 6 * 7?",
)


class FullDisk(EvaluationStore):
    """TEST DOUBLE of a full disk: SQLite's own page limit makes every new page fail with
    SQLITE_FULL ("database or disk is full"), the error a full file system gives."""

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        if pages:
            conn.execute(f"PRAGMA max_page_count={pages}")
        return conn


class ReadOnly(EvaluationStore):
    """TEST DOUBLE of a file system that turns read-only after start-up (root ignores chmod):
    from the second connection on (the writer's), ``query_only`` makes SQLite refuse every
    write with "attempt to write a readonly database"."""

    read_only = True
    connections = 0

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        self.connections += 1
        if self.read_only and self.connections > 1:
            conn.execute("PRAGMA query_only=1")
        return conn


def _count(path: Path) -> int:
    """Rows as another process would see them: a fresh connection, no flush."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])


async def test_a_journaled_evaluation_is_committed_before_the_call_returns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.sqlite3"
    store = EvaluationStore(path)
    await asyncio.to_thread(store.open)
    try:
        assert await store.journal(RECORD) == "stored"
        assert _count(path) == 1  # no flush: durable when the caller resumes
        # A crashed process leaves the row: a second store on the file (the restart) reads it.
        after_crash = EvaluationStore(path)
        (row,) = after_crash.load_evaluations(0.0)
        assert (row.request_id, row.correct, row.extracted) == ("r1", True, "42")
        assert (row.energy_j, row.energy_method) == (None, "none")  # energy not known yet
        assert row.prompt is None and row.completion is None  # no text on disk by default
        assert row.prompt_sha256 is not None
    finally:
        await asyncio.to_thread(store.close)


async def test_the_grading_pass_writes_over_the_journaled_row_with_its_energy(
    tmp_path: Path,
) -> None:
    store = EvaluationStore(tmp_path / "log.sqlite3")
    await asyncio.to_thread(store.open)
    try:
        assert await store.journal(RECORD) == "stored"
        assert await store.journal(RECORD) == "stored"  # repeated: still one row
        with_energy = replace(RECORD, energy_j=12.5, energy_method="nvml_counter")
        evaluation = process_record(with_energy).evaluation
        assert evaluation is not None
        store.append(evaluation, key=record_key(with_energy))
        # Another request reusing the client's request id is another evaluation.
        again = replace(RECORD, started_at=RECORD.started_at + 1.0)
        assert await store.journal(again) == "stored"
        assert await asyncio.to_thread(store.flush)
        rows = {(r.at, r.energy_j, r.energy_method) for r in store.load_evaluations(0.0)}
        assert rows == {(T0 + 0.5, 12.5, "nvml_counter"), (T0 + 1.5, None, "none")}
        assert store.journaled == 2 and store.count("evaluations") == 2
    finally:
        await asyncio.to_thread(store.close)


async def test_a_journaled_row_is_forgotten_when_the_attempt_was_not_gradable(
    tmp_path: Path,
) -> None:
    store = EvaluationStore(tmp_path / "log.sqlite3")
    await asyncio.to_thread(store.open)
    try:
        assert await store.journal(RECORD) == "stored"
        assert await store.journal(replace(RECORD, request_id="other")) == "stored"
        assert store.forget(record_key(RECORD))  # e.g. its stream broke after the journal
        assert await asyncio.to_thread(store.flush)
        assert [e.request_id for e in store.load_evaluations(0.0)] == ["other"]
    finally:
        await asyncio.to_thread(store.close)


async def test_what_cannot_be_graded_is_not_stored_and_says_so(tmp_path: Path) -> None:
    store = EvaluationStore(tmp_path / "log.sqlite3")
    assert await store.journal(RECORD) == "unavailable"  # not open: never claimed stored
    await asyncio.to_thread(store.open)
    try:
        failed = replace(RECORD, status=502, error_type="upstream_error")
        assert await store.journal(failed) == "not_graded"
        unknown = replace(RECORD, dataset="no-such-dataset")
        assert await store.journal(unknown) == "not_graded"
        assert store.count("evaluations") == 0
    finally:
        await asyncio.to_thread(store.close)


async def test_content_is_written_only_when_capture_is_on(tmp_path: Path) -> None:
    store = EvaluationStore(tmp_path / "log.sqlite3")
    await asyncio.to_thread(store.open)
    try:
        assert await store.journal(RECORD, capture_content=True) == "stored"
        (row,) = store.load_evaluations(0.0)
        assert (row.prompt, row.completion) == (RECORD.prompt, RECORD.text)
    finally:
        await asyncio.to_thread(store.close)


async def test_a_full_disk_is_logged_counted_and_never_claimed_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    store = FullDisk(tmp_path / "log.sqlite3")
    register_store_metrics(MeterProvider(metric_readers=[reader]).get_meter("t"), _counts(store))
    await asyncio.to_thread(store.open)
    big = replace(RECORD, text="x" * 20_000 + " #### 42")  # needs new pages
    try:
        with caplog.at_level(logging.ERROR, "quanttrap.scoring.io.store"):
            assert await store.journal(big, capture_content=True) == "unavailable"
            assert await store.journal(big, capture_content=True) == "unavailable"
        assert store.failures >= 2 and store.rows_failed == 2 and store.journaled == 0
        assert "NOT stored" in caplog.text and "full" in caplog.text
        assert "x" * 100 not in caplog.text  # the completion never reaches the log
        points = _points(reader)
        assert points[("quanttrap.evaluation_store.rows", "failed")] == 2
        assert points[("quanttrap.evaluation_store.failures", None)] == store.failures
        assert store.count("evaluations") == 0
    finally:
        await asyncio.to_thread(store.close)


async def test_a_read_only_disk_fails_the_journal_and_the_store_recovers(tmp_path: Path) -> None:
    store = ReadOnly(tmp_path / "log.sqlite3")
    await asyncio.to_thread(store.open)
    try:
        assert await store.journal(RECORD) == "unavailable"
        assert store.rows_failed == 1 and store.count("evaluations") == 0
    finally:
        await asyncio.to_thread(store.close)
    store.read_only = False  # the disk is writable again: a restart stores
    await asyncio.to_thread(store.open)
    try:
        assert await store.journal(RECORD) == "stored"
    finally:
        await asyncio.to_thread(store.close)


async def test_a_version_1_log_gains_the_key_column(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    store = EvaluationStore(path)
    await asyncio.to_thread(store.open)
    evaluation = process_record(RECORD).evaluation
    assert evaluation is not None
    store.append(evaluation)
    await asyncio.to_thread(store.close)
    with sqlite3.connect(path) as conn:  # back to version 1: no key column
        conn.execute("DROP INDEX evaluations_key")
        conn.execute("ALTER TABLE evaluations DROP COLUMN record_key")
    await asyncio.to_thread(store.open)
    try:
        assert await store.journal(RECORD) == "stored"
        assert store.count("evaluations") == 2  # the old row kept, the new one keyed
    finally:
        await asyncio.to_thread(store.close)


async def test_a_version_2_log_gains_the_comparison_reason_and_hop(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    store = EvaluationStore(path)
    await asyncio.to_thread(store.open)
    await asyncio.to_thread(store.close)
    with sqlite3.connect(path) as conn:  # back to version 2: comparisons without them
        conn.execute("ALTER TABLE shadow_comparisons DROP COLUMN reason")
        conn.execute("ALTER TABLE shadow_comparisons DROP COLUMN agent_hop")
        conn.execute("INSERT INTO shadow_comparisons (at, pair_id, model, primary_variant, "
                     "shadow_variant, agree) VALUES (1.0, 'p', 'm', 'a', 'b', 1)")  # fmt: skip
    await asyncio.to_thread(store.open)
    try:
        new = PairComparison(2.0, "q", "m", "a", "b", None, "x", "y", False,
                             reason="wrong_tool", agent_hop=3)  # fmt: skip
        store.append(new)
        await asyncio.to_thread(store.flush)
        old, got = sorted(store.load_comparisons(0.0), key=lambda c: c.at)
        assert (old.pair_id, old.agent_hop, old.reason) == ("p", 0, None)
        assert (got.reason, got.agent_hop) == ("wrong_tool", 3)
    finally:
        await asyncio.to_thread(store.close)


def _counts(store: EvaluationStore):  # type: ignore[no-untyped-def]
    return lambda: {
        "written": store.written,
        "journaled": store.journaled,
        "failed": store.rows_failed,
        "dropped": store.dropped,
        "failures": store.failures,
    }


def _points(reader: InMemoryMetricReader) -> dict[tuple[str, str | None], float]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[tuple[str, str | None], float] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    outcome = (p.attributes or {}).get("quanttrap.store.outcome")
                    out[metric.name, None if outcome is None else str(outcome)] = p.value  # type: ignore[union-attr]
    return out


_JOURNAL_THEN_WAIT = """
import asyncio, sys, time
from dataclasses import replace
from scoring.io.store import EvaluationStore
from tests.scoring.io.test_store_journal import RECORD

async def main() -> None:
    store = EvaluationStore(sys.argv[1])
    await asyncio.to_thread(store.open)
    for i in range(int(sys.argv[2])):
        assert await store.journal(replace(RECORD, request_id=f"k{i}")) == "stored"
    print("journaled", flush=True)
    await asyncio.sleep(60)  # killed here, never closed

asyncio.run(main())
"""


def test_journaled_rows_survive_sigkill_of_the_writing_process(tmp_path: Path) -> None:
    """A real process journals N evaluations and is killed with SIGKILL at once."""
    path = tmp_path / "log.sqlite3"
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "-c", _JOURNAL_THEN_WAIT, str(path), "40"],
        cwd=root,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"journaled"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
    assert _count(path) == 40
