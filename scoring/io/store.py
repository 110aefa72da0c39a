"""The evaluation log: graded evaluations and shadow comparisons in a local SQLite database.

Nothing graded is lost on a restart: every :class:`~scoring.evaluation.Evaluation` and every
shadow :class:`~scoring.comparison.PairComparison` is appended here, and at start-up the rows of
the last window are read back into the live windows. An operator can list what a variant got
wrong (``quanttrap status --wrong nf4``, or
``GET /quanttrap/v1/evaluations?variant=nf4&correct=false``).

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

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, fields
from pathlib import Path
from typing import Any, Final

from scoring.comparison import PairComparison
from scoring.evaluation import Evaluation

__all__ = ["COMPARISON_COLUMNS", "EVALUATION_COLUMNS", "EvaluationStore"]

log = logging.getLogger("quanttrap.scoring.store")

EVALUATION_COLUMNS: Final = tuple(f.name for f in fields(Evaluation))
COMPARISON_COLUMNS: Final = tuple(f.name for f in fields(PairComparison))
_TABLES: Final = {"evaluations": EVALUATION_COLUMNS, "shadow_comparisons": COMPARISON_COLUMNS}
_BOOLEANS: Final = frozenset({"correct", "agree", "primary_correct", "shadow_correct"})
_SCHEMA_VERSION = 1
_BATCH = 1000
_PRUNE_EVERY_S = 5.0

Row = Evaluation | PairComparison


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
        self._queue: queue.Queue[Row | threading.Event | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self.written = 0
        self.dropped = 0
        self.failures = 0

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

    def append(self, row: Row) -> bool:
        """Queue one row for the writer; ``False`` (and counted) if the queue is full."""
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            return False
        return True

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
            PairComparison(**r) for r in self._select("shadow_comparisons", {"since": since}, None)
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
                batch: list[Row] = []
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

    def _write(self, conn: sqlite3.Connection, batch: Sequence[Row]) -> None:
        if not batch:
            return
        evaluations = [_values(r) for r in batch if isinstance(r, Evaluation)]
        comparisons = [_values(r) for r in batch if isinstance(r, PairComparison)]
        try:
            with conn:
                for table, rows in (
                    ("evaluations", evaluations),
                    ("shadow_comparisons", comparisons),
                ):
                    if rows:
                        cols = _TABLES[table]
                        marks = ", ".join("?" * len(cols))
                        conn.executemany(
                            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows
                        )
            self.written += len(batch)
        except sqlite3.Error as exc:  # a full disk must not take the proxy down
            self.failures += 1
            log.error("evaluation log: could not write %d rows: %s", len(batch), exc)

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


def _values(row: Row) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, bool) else v for v in astuple(row))


def _check_table(table: str) -> None:
    if table not in _TABLES:
        raise ValueError(f"unknown table {table!r}; known: {', '.join(_TABLES)}")
