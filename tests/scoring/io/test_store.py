"""The evaluation log: WAL, batched background writes, restart keeps evidence, bounded."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from scoring.comparison import PairComparison
from scoring.config import ScoringConfig
from scoring.evaluation import Evaluation
from scoring.io.store import EvaluationStore
from scoring.live import LiveScorer, ModelSpec

NOW = 50_000.0
EVAL = Evaluation(
    at=NOW - 10,
    request_id="r0",
    model="m",
    variant="nf4",
    bits=4,
    role="canary",
    dataset="multihop",
    bucket="1",
    batch_size=1,
    correct=False,
    extracted="12",
    expected="13",
    method="strict-match",
    item_id="multihop/seed0/3",
    prompt_sha256="ab" * 32,
    gen_tokens=20,
    gen_s=0.5,
    completion_tokens=21,
)
CMP = PairComparison(
    at=NOW - 5,
    pair_id="p1",
    model="m",
    primary_variant="bf16",
    shadow_variant="nf4",
    dataset=None,
    primary_answer="14",
    shadow_answer="15",
    agree=False,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvaluationStore]:
    s = EvaluationStore(tmp_path / "data" / "log.sqlite3", clock=lambda: NOW)
    s.open()
    yield s
    s.close()


def test_wal_mode_and_round_trip(store: EvaluationStore) -> None:
    assert store.journal_mode() == "wal"
    assert store.append(EVAL) and store.append(CMP)
    assert store.flush()
    assert store.load_evaluations(NOW - 60) == [EVAL]
    assert store.load_comparisons(NOW - 60) == [CMP]
    assert store.load_evaluations(NOW - 1) == []  # older than "since"


def test_writes_happen_off_the_callers_thread(tmp_path: Path) -> None:
    threads: set[str] = set()
    store = EvaluationStore(tmp_path / "log.sqlite3", clock=lambda: NOW)
    original = store._write

    def spy(conn: sqlite3.Connection, batch: object) -> None:
        threads.add(threading.current_thread().name)
        original(conn, batch)  # type: ignore[arg-type]

    store._write = spy  # type: ignore[method-assign]
    store.open()
    for i in range(50):
        store.append(replace(EVAL, request_id=f"r{i}"))
    assert store.flush()
    store.close()
    assert threads == {"quanttrap-store"}
    assert store.count("evaluations") == 50 and store.written == 50


def test_restart_puts_the_evidence_back_into_the_windows(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    spec = ModelSpec("m", "bf16", (("bf16", 16), ("nf4", 4)))
    first = EvaluationStore(path, clock=lambda: NOW)
    first.open()
    for i in range(30):
        for variant, ok in (("bf16", True), ("nf4", i % 3 == 0)):
            first.append(
                replace(EVAL, request_id=f"{variant}{i}", variant=variant, correct=ok,
                        pair_key=f"k{i}")
            )  # fmt: skip
    first.close()  # the proxy stops

    second = EvaluationStore(path, clock=lambda: NOW)  # ... and starts again
    second.open()
    scorer = LiveScorer(ScoringConfig(), [spec])
    for evaluation in second.load_evaluations(NOW - 900):
        scorer.ingest(evaluation.observation(), NOW)
    second.close()
    rows = {v.variant: v.buckets[0] for v in scorer.evaluate(NOW).models[0].variants}
    assert (rows["bf16"].graded, rows["bf16"].correct) == (30, 30)
    assert (rows["nf4"].graded, rows["nf4"].correct) == (30, 10)
    assert rows["nf4"].pairs == (10, 20, 0, 0)  # the pairs were rebuilt from the log
    assert rows["nf4"].speed_samples == 30


def test_retention_by_rows_and_by_age(tmp_path: Path) -> None:
    clock = [NOW]
    store = EvaluationStore(tmp_path / "log.sqlite3", max_rows=100, max_age_s=3600,
                            clock=lambda: clock[0])  # fmt: skip
    store.open()
    for i in range(250):
        store.append(replace(EVAL, request_id=f"r{i}", at=NOW - 7200 + i))
    assert store.flush()
    store.prune()
    assert store.count("evaluations") == 0  # all older than an hour
    for i in range(250):
        store.append(replace(EVAL, request_id=f"n{i}", at=NOW))
    assert store.flush()
    store.prune()
    assert store.count("evaluations") == 100
    newest = store.query("evaluations", {}, limit=1)[0]
    assert newest["request_id"] == "n249"  # the newest rows are the ones kept
    store.close()


def test_query_filters_what_a_variant_got_wrong(store: EvaluationStore) -> None:
    store.append(replace(EVAL, request_id="a", variant="nf4", correct=False))
    store.append(replace(EVAL, request_id="b", variant="nf4", correct=True))
    store.append(replace(EVAL, request_id="c", variant="bf16", correct=False))
    assert store.flush()
    wrong = store.query("evaluations", {"variant": "nf4", "correct": False})
    assert [r["request_id"] for r in wrong] == ["a"]
    assert wrong[0]["correct"] is False and wrong[0]["item_id"] == "multihop/seed0/3"
    assert wrong[0]["prompt"] is None  # no content capture: hash and item id only
    disagreements = store.query("shadow_comparisons", {"agree": False})
    assert disagreements == []
    with pytest.raises(ValueError):
        store.query("evaluations", {"nope": 1})
    with pytest.raises(ValueError):
        store.query("users", {})


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    store = EvaluationStore(tmp_path / "log.sqlite3", queue_size=10)  # writer not started
    accepted = [store.append(replace(EVAL, request_id=str(i))) for i in range(15)]
    assert accepted.count(True) == 10 and store.dropped == 5
