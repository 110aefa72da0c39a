"""The evaluation log: graded evaluations and shadow comparisons in a local SQLite database.

Every :class:`~scoring.evaluation.Evaluation` and every shadow
:class:`~scoring.comparison.PairComparison` is written here, and at start-up the rows of the
last window are read back into the live windows. An operator can list what a variant got
wrong (``quanttrap status --wrong nf4``, or
``GET /quanttrap/v1/evaluations?variant=nf4&correct=false``).

- **The journal: nothing graded is lost on a crash.** :meth:`EvaluationStore.journal` is
  awaited by the request pipeline for evaluation traffic *before the response's last byte is
  sent*. The writer thread grades the record there and then (off the event loop) and commits
  the evaluation under the request's key (:func:`record_key`) before the awaiting request goes
  on, so a ``kill -9`` after the client has its answer cannot lose the evaluation. The
  completion text is graded in memory and never written (unless content capture is on). The
  request's energy arrives later (within one sampling period): the periodic grading pass then
  writes the complete evaluation under the same key (an upsert), replacing the journaled row;
  a crash before that leaves that row with energy unknown (``energy_method`` ``none``), never
  the evaluation lost. The journal commits in WAL mode with ``synchronous=NORMAL``: durable
  across a process crash, not across a power cut or an OS crash (the last commits may go).
- **Never on the request path.** :meth:`EvaluationStore.append` puts a row on a bounded queue
  and returns; one writer thread owns the write connection and commits in batches at least
  every ``flush_interval_s``. A full queue drops the row and counts it (``dropped``).
- **WAL mode**, so readers (the status API, on worker threads with their own connections)
  never block the writer; ``synchronous=NORMAL``, the usual WAL pairing.
- **Bounded**: after each batch the writer deletes rows older than ``max_age_s`` and all but
  the newest ``max_rows`` of each table.
- **Content**: prompts and completions are stored only when content capture is switched on
  (the caller leaves them ``None`` otherwise); a prompt's SHA-256 and a canary's dataset item
  id identify the question either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

from core.records import RequestRecord
from scoring.comparison import PairComparison
from scoring.evaluation import Evaluation
from scoring.io.journal import (
    JournalItem,
    JournalOutcome,
    KeyedRow,
    grade_journal,
    record_key,
    resolve_journal,
    row_values,
)

__all__ = [
    "COMPARISON_COLUMNS",
    "EVALUATION_COLUMNS",
    "EvaluationStore",
    "JournalOutcome",
    "record_key",
]

log = logging.getLogger("quanttrap.scoring.io.store")

EVALUATION_COLUMNS: Final = tuple(f.name for f in fields(Evaluation))
COMPARISON_COLUMNS: Final = tuple(f.name for f in fields(PairComparison))
_TABLES: Final = {"evaluations": EVALUATION_COLUMNS, "shadow_comparisons": COMPARISON_COLUMNS}
_BOOLEANS: Final = frozenset({"correct", "agree", "primary_correct", "shadow_correct"})
_SCHEMA_VERSION = 3  # 2: evaluations.record_key; 3: shadow_comparisons.reason, agent_hop
_BATCH = 1000
_PRUNE_EVERY_S = 5.0

Row = Evaluation | PairComparison
_Item = Row | KeyedRow | JournalItem | threading.Event | None


class EvaluationStore:
    """Append-only log with retention; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_rows: int = 200_000,
        max_age_s: float = 7 * 24 * 3600.0,
        flush_interval_s: float = 1.0,
        queue_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._flush_s = flush_interval_s
        self._clock = clock
        self._queue: queue.Queue[_Item] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self.written = 0
        """Rows committed (journaled rows and their later upserts count each)."""
        self.journaled = 0
        """Evaluations inserted by :meth:`journal` (a repeated call for one key counts once)."""
        self.dropped = 0
        """Rows not even queued (queue full, or the store not open)."""
        self.failures = 0
        """Batches (or retention passes) that failed: disk full, read-only, corrupt ..."""
        self.rows_failed = 0
        """Rows lost to failed batches."""

    # -- life cycle (call from a worker thread: these block) ---------------------------------

    def open(self) -> None:
        """Create the file and schema, then start the writer thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            for table, columns in _TABLES.items():
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} "
                    f"(id INTEGER PRIMARY KEY, {', '.join(columns)})"
                )
                conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_at ON {table} (at)")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS evaluations_variant "
                "ON evaluations (model, variant, correct)"
            )
            # An older log gains the columns added since (old rows keep NULL there): version 1
            # had no evaluations.record_key, version 2 no shadow_comparisons.reason/agent_hop.
            for table, columns in (*_TABLES.items(), ("evaluations", ("record_key",))):
                known = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column not in known:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            conn.execute(  # NULLs are distinct in a UNIQUE index: unkeyed rows never collide
                "CREATE UNIQUE INDEX IF NOT EXISTS evaluations_key ON evaluations (record_key)"
            )
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.commit()
        self._thread = threading.Thread(target=self._run, name="quanttrap-store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every row queued so far is committed (tests, shutdown)."""
        if self._thread is None:
            return False
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    # -- writing (cheap; any thread) ---------------------------------------------------------

    def append(self, row: Row, *, key: str | None = None) -> bool:
        """Queue one row for the writer; ``False`` (and counted) if the queue is full.

        With ``key`` (an evaluation's :func:`record_key`) the row replaces a journaled row of
        the same key, or is inserted if there is none.
        """
        item: _Item = row
        if key is not None and isinstance(row, Evaluation):
            item = KeyedRow(row, key)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def forget(self, key: str) -> bool:
        """Delete the journaled evaluation under ``key``: the attempt ended without a gradable
        answer after all (e.g. its stream broke after the journal call). Queued like append."""
        try:
            self._queue.put_nowait(KeyedRow(None, key))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def journal(
        self,
        record: RequestRecord,
        *,
        item_id: str | None = None,
        pair_key: str | None = None,
        capture_content: bool = False,
    ) -> asyncio.Future[JournalOutcome]:
        """Grade ``record`` and commit its evaluation durably; await the result.

        Call from the event loop, for evaluation traffic, before the response's last byte.
        The caller's cost is one queue put; grading and the commit run on the writer thread,
        which commits everything queued at once (group commit). A row already journaled
        under the same key is kept (a repeated call is harmless).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JournalOutcome] = loop.create_future()
        if self._thread is None:
            future.set_result("unavailable")
            return future
        item = JournalItem(
            record, record_key(record), item_id, pair_key, capture_content, loop, future
        )
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            future.set_result("unavailable")
        return future

    # -- reading (blocking; call from a worker thread) ---------------------------------------

    def journal_mode(self) -> str:
        with contextlib.closing(self._connect()) as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])

    def count(self, table: str) -> int:
        _check_table(table)
        with contextlib.closing(self._connect()) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def load_evaluations(self, since: float) -> list[Evaluation]:
        """Evaluations at or after ``since`` (Unix time), oldest first."""
        return [Evaluation(**r) for r in self._select("evaluations", {"since": since}, None)]

    def load_comparisons(self, since: float) -> list[PairComparison]:
        return [
            # Rows from a version-2 log have no hop position: they count as hop 0.
            PairComparison(**{**r, "agent_hop": r.get("agent_hop") or 0})
            for r in self._select("shadow_comparisons", {"since": since}, None)
        ]

    def query(self, table: str, filters: dict[str, Any], limit: int = 100) -> list[dict[str, Any]]:
        """Newest rows first. ``filters``: column equalities plus ``since`` (Unix time)."""
        _check_table(table)
        return list(self._select(table, filters, limit))

    def _select(
        self, table: str, filters: dict[str, Any], limit: int | None
    ) -> Iterator[dict[str, Any]]:
        columns = _TABLES[table]
        where, params = [], []
        for key, value in filters.items():
            if value is None:
                continue
            if key == "since":
                where.append("at >= ?")
            elif key in columns:
                where.append(f"{key} = ?")
            else:
                raise ValueError(f"unknown filter {key!r} for {table}")
            params.append(int(value) if isinstance(value, bool) else value)
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if limit is not None else " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute(sql, params).fetchall()
        for row in rows:
            yield {
                c: (bool(v) if c in _BOOLEANS and v is not None else v)
                for c, v in zip(columns, row, strict=True)
            }

    # -- the writer thread -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _run(self) -> None:
        conn = self._connect()
        try:
            stop = False
            while not stop:
                batch: list[Row | KeyedRow | JournalItem] = []
                markers: list[threading.Event] = []
                try:
                    item = self._queue.get(timeout=self._flush_s)
                except queue.Empty:
                    self._maybe_prune(conn)
                    continue
                while True:
                    if item is None:
                        stop = True
                    elif isinstance(item, threading.Event):
                        markers.append(item)
                    else:
                        batch.append(item)
                    if stop or len(batch) >= _BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                self._write(conn, batch)
                self._maybe_prune(conn)
                for marker in markers:
                    marker.set()
        finally:
            conn.close()

    def _write(
        self, conn: sqlite3.Connection, batch: Sequence[Row | KeyedRow | JournalItem]
    ) -> None:
        if not batch:
            return
        evaluations = [row_values(r) for r in batch if isinstance(r, Evaluation)]
        comparisons = [row_values(r) for r in batch if isinstance(r, PairComparison)]
        keyed = [
            (*row_values(r.evaluation), r.key)
            for r in batch
            if isinstance(r, KeyedRow) and r.evaluation is not None
        ]
        forgotten = [(r.key,) for r in batch if isinstance(r, KeyedRow) and r.evaluation is None]
        journaled, outcomes = grade_journal([r for r in batch if isinstance(r, JournalItem)])
        stored: JournalOutcome = "unavailable"
        try:
            with conn:
                for table, rows in (
                    ("evaluations", evaluations),
                    ("shadow_comparisons", comparisons),
                ):
                    if rows:
                        conn.executemany(_INSERT[table], rows)
                if keyed:
                    conn.executemany(_UPSERT, keyed)
                inserted = 0
                if journaled:  # rowcount: rows inserted (a repeated journal call adds none)
                    inserted = conn.executemany(_INSERT_IF_NEW, journaled).rowcount
                if forgotten:  # last: a journal row of this very batch may be among them
                    conn.executemany("DELETE FROM evaluations WHERE record_key = ?", forgotten)
            rows_done = len(evaluations) + len(comparisons) + len(keyed) + len(journaled)
            self.written += rows_done
            self.journaled += inserted
            stored = "stored"
        except sqlite3.Error as exc:  # a full or read-only disk must not take the proxy down
            self.failures += 1
            self.rows_failed += len(evaluations) + len(comparisons) + len(keyed) + len(journaled)
            if self.failures & (self.failures - 1) == 0:  # 1st, 2nd, 4th ...: no log flood
                log.error(
                    "evaluation log %s: could not write %d rows (%d failed batches so far; "
                    "these evaluations are NOT stored): %s",
                    self.path,
                    len(batch),
                    self.failures,
                    exc,
                )
        resolve_journal(outcomes, stored)

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = self._clock()
        if now - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = now
        self.prune(conn, now)

    def prune(self, conn: sqlite3.Connection | None = None, now: float | None = None) -> None:
        """Apply the retention bounds now (the writer does it every few seconds)."""
        now = self._clock() if now is None else now
        own = conn is None
        c = self._connect() if conn is None else conn
        try:
            with c:
                for table in _TABLES:
                    c.execute(f"DELETE FROM {table} WHERE at < ?", (now - self.max_age_s,))
                    c.execute(
                        f"DELETE FROM {table} WHERE id <= (SELECT id FROM {table} "
                        "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (self.max_rows,),
                    )
        except sqlite3.Error as exc:
            self.failures += 1
            log.error("evaluation log: retention failed: %s", exc)
        finally:
            if own:
                c.close()


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_INSERT: Final = {table: _insert_sql(table, cols) for table, cols in _TABLES.items()}
_KEYED_COLUMNS: Final = (*EVALUATION_COLUMNS, "record_key")
_INSERT_IF_NEW: Final = (
    _insert_sql("evaluations", _KEYED_COLUMNS) + " ON CONFLICT(record_key) DO NOTHING"
)
_UPSERT: Final = (
    _insert_sql("evaluations", _KEYED_COLUMNS)
    + " ON CONFLICT(record_key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in EVALUATION_COLUMNS)
)


def _check_table(table: str) -> None:
    if table not in _TABLES:
        raise ValueError(f"unknown table {table!r}; known: {', '.join(_TABLES)}")
