"""End to end: the evaluation store's disk fills up under ``quanttrap serve``.

The proxy process runs with a file-size limit (``RLIMIT_FSIZE``, as ``ulimit -f`` sets it):
writes past it fail with ``EFBIG``, which SQLite reports as "database or disk is full" — a
full disk for the store's files, without root or a special file system (Python ignores
``SIGXFSZ``, so the write fails instead of killing the process). Tagged requests (graded
evaluation traffic, through a fake upstream process: TEST DOUBLE) keep coming; the proxy must
keep answering them, and say on ``/metrics`` that rows were not stored, with every row either
written or counted as failed. A read-only store is tested in
``tests/scoring/test_store_journal.py`` (SQLite's ``query_only``); making a file system
read-only under a running process needs privileges CI does not have.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.doubles.processes import Process, free_port, quanttrap_command, start_upstream

pytestmark = pytest.mark.slow

LIMIT = 256 * 1024
"""Bytes a file of the proxy may reach: the schema fits, a few hundred rows do not."""

_SET_LIMIT = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1]))); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_full_disk_loses_rows_loudly_and_the_proxy_keeps_serving(tmp_path: Path) -> None:
    upstream = start_upstream("bf16", tmp_path, reply_words=6)
    store = tmp_path / "data" / "log.sqlite3"
    variant = {"name": "bf16", "bits": 16,
               "backend": {"kind": "openai", "base_url": upstream.url + "/v1"}}  # fmt: skip
    model = {"name": "demo", "anchor": "bf16", "routing": {"primary": "bf16"},
             "variants": [variant]}  # fmt: skip
    config = tmp_path / "quanttrap.yaml"
    config.write_text(json.dumps({
        "models": [model],
        "server": {"log_level": "warning"},
        "scoring": {"recompute_interval_s": 0.2, "store": {"path": str(store)}},
    }))  # fmt: skip
    port = free_port()
    proxy = Process(
        [sys.executable, "-c", _SET_LIMIT, str(LIMIT), *quanttrap_command(),
         "serve", "--config", str(config), "--port", str(port)],
        port, tmp_path / "proxy.log", env={"PYTHONPATH": str(Path(__file__).parents[2])},
        cwd=tmp_path,
    )  # fmt: skip
    try:
        proxy.wait_http("/healthz", timeout=60)
        body = {"model": "demo", "messages": [{"role": "user", "content": "6 * 7? " + "x" * 2000}]}
        sent = 0
        failed = 0.0
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for _ in range(20):
                    resp = client.post("/v1/chat/completions", json=body,
                                       headers={"X-Quanttrap-Expected": "42"})  # fmt: skip
                    assert resp.status_code == 200, resp.text  # the proxy keeps serving
                    sent += 1
                metrics = client.get("/metrics").text
                failed = _metric(metrics, "quanttrap_evaluation_store_rows_total",
                                 quanttrap_store_outcome="failed")  # fmt: skip
                if failed:
                    break
            assert failed > 0, f"no failed rows after {sent} tagged requests:\n{proxy.output()}"
            assert _metric(metrics, "quanttrap_evaluation_store_failures_total") > 0
            # Every graded row was either stored or counted as failed: none vanished quietly.
            counts: tuple[float, ...] = ()
            for _ in range(50):  # the last grading pass and its write
                metrics = client.get("/metrics").text
                counts = tuple(
                    _metric(metrics, "quanttrap_evaluation_store_rows_total",
                            quanttrap_store_outcome=outcome)
                    for outcome in ("written", "failed", "dropped")
                )  # fmt: skip
                if counts[0] + counts[1] + counts[2] >= sent:
                    break
                time.sleep(0.2)
            written, failed, dropped = counts
            # And it still answers once the disk is full.
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        assert proxy.proc.poll() is None
        with sqlite3.connect(store) as conn:
            rows = int(conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
        assert rows < sent  # the disk did refuse some
        print(f"sent {sent}, stored {rows}, written {written}, failed {failed}, dropped {dropped}")
        # Every graded request missing from the file was counted as failed (or dropped), at
        # least once: with the journal a row can fail twice (its journal write, then the
        # grading pass's upsert), so the counts are attempts, not distinct evaluations.
        assert failed + dropped >= sent - rows, (written, failed, dropped, sent, rows)
        assert written >= rows
    finally:
        proxy.stop()
        upstream.stop()
