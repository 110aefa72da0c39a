"""The journal's pieces: the key an attempt's evaluation is stored under, the queue items,
and grading on the writer thread (see :mod:`scoring.io.store`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from core.records import RequestRecord
from scoring.comparison import PairComparison
from scoring.evaluation import Evaluation, process_record

__all__ = [
    "JournalItem",
    "JournalOutcome",
    "KeyedRow",
    "grade_journal",
    "record_key",
    "resolve_journal",
]

log = logging.getLogger("quanttrap.scoring.io.store")

JournalOutcome = Literal["stored", "not_graded", "unavailable"]
"""``stored``: the evaluation is committed; ``not_graded``: nothing to store (the request
failed, or its reference or dataset could not be graded); ``unavailable``: it could not be
stored (store closed, queue full, disk full or read-only: logged and counted)."""


def record_key(record: RequestRecord) -> str:
    """The key one attempt's evaluation is stored under, the same when journaled and graded.

    Request ids come from clients and may repeat, and one request id is shared by its shadow
    copies; the start time (microseconds) makes the key one attempt's.
    """
    return f"{record.request_id}/{record.role}/{record.variant}/{record.started_at!r}"


@dataclass(frozen=True, slots=True)
class KeyedRow:
    """An evaluation of the grading pass, written over the journaled row of the same key; or,
    with ``evaluation`` ``None``, the attempt turned out not gradable (a stream that broke
    after it was journaled): its journaled row is deleted."""

    evaluation: Evaluation | None
    key: str


@dataclass(frozen=True, slots=True)
class JournalItem:
    """A record to grade and commit now; ``future`` is resolved on ``loop`` once durable."""

    record: RequestRecord
    key: str
    item_id: str | None
    pair_key: str | None
    capture_content: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[JournalOutcome]


_Outcomes = list[tuple[JournalItem, JournalOutcome | None]]
_Results = list[tuple[asyncio.Future[JournalOutcome], JournalOutcome]]


def grade_journal(items: Sequence[JournalItem]) -> tuple[list[tuple[Any, ...]], _Outcomes]:
    """Grade journaled records (writer thread): the rows to insert, and each item's outcome
    (``None``: decided by the commit)."""
    rows: list[tuple[Any, ...]] = []
    outcomes: _Outcomes = []
    for item in items:
        try:
            evaluation = process_record(
                item.record,
                item_id=item.item_id,
                pair_key=item.pair_key,
                capture_content=item.capture_content,
            ).evaluation
        except Exception:  # a grader bug must not stop the writer
            log.exception("evaluation log: could not grade %s", item.record.request_id)
            evaluation = None
        if evaluation is None:
            outcomes.append((item, "not_graded"))
        else:
            rows.append((*row_values(evaluation), item.key))
            outcomes.append((item, None))
    return rows, outcomes


def resolve_journal(outcomes: _Outcomes, committed: JournalOutcome) -> None:
    """Resume the journal callers, one thread-safe call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, _Results] = {}
    for item, outcome in outcomes:
        by_loop.setdefault(item.loop, []).append((item.future, outcome or committed))
    for loop, results in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(_set_results, results)


def _set_results(results: _Results) -> None:
    for future, outcome in results:
        if not future.done():  # the caller may have been cancelled
            future.set_result(outcome)


_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in (Evaluation, PairComparison)
}


def row_values(row: Evaluation | PairComparison) -> tuple[Any, ...]:
    """The row's column values in field order, booleans as integers."""
    # Not dataclasses.astuple: it deep-copies every field (about 10x slower).
    return tuple(_sql(getattr(row, name)) for name in _FIELDS[type(row)])


def _sql(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value
