"""The live runtime's journal call: what the request pipeline awaits for evaluation traffic."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

from core.records import RequestRecord
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.scoring_helpers import scored, tagged

RIGHT = ("The", "answer:", "####", "42")


def _rows(path: Path) -> list[tuple[str, str | None, str | None]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT request_id, energy_method, item_id FROM evaluations").fetchall()


async def test_journal_then_grading_pass_leaves_one_row_per_request(tmp_path: Path) -> None:
    backends = {"bf16": ScriptedBackend("bf16", words=RIGHT)}
    async with scored(backends, tmp_path) as h:
        records: list[RequestRecord] = []
        h.app.add_record_sink(records.append)
        for _ in range(3):
            resp = await h.client.post("/v1/chat/completions", **tagged("42"))
            assert resp.status_code == 200
        await h.client.post("/v1/chat/completions", json={"model": "demo", "messages": []})
        assert len(records) == 3
        # What the pipeline will do before the last byte: journal each tagged record.
        # (Once the pipeline journals by itself, these calls find the rows already there.)
        outcomes = [await h.runtime.journal(r) for r in records]
        assert outcomes == ["stored"] * 3
        assert len(_rows(tmp_path / "log.sqlite3")) == 3  # durable before any grading pass
        assert await h.runtime.journal(records[0]) == "stored"  # again: still one row each
        # Untagged traffic and shadows are not journaled.
        assert await h.runtime.journal(replace(records[0], expected_answer=None)) == "not_graded"
        assert await h.runtime.journal(replace(records[0], role="shadow")) == "not_graded"
        # The grading pass writes the complete evaluation over each journaled row.
        await h.runtime.tick()
        assert h.runtime.store is not None
        assert await asyncio.to_thread(h.runtime.store.flush)
        assert len(_rows(tmp_path / "log.sqlite3")) == 3
        assert h.runtime.snapshot is not None
        assert h.runtime.snapshot.counters["log_journaled"] == 3


async def test_a_journaled_attempt_that_failed_in_the_end_is_not_counted(tmp_path: Path) -> None:
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT),
        "nf4": ScriptedBackend("nf4", words=RIGHT, break_after=3),  # the stream breaks
    }
    async with scored(backends, tmp_path) as h:
        records: list[RequestRecord] = []
        h.app.add_record_sink(records.append)
        await h.client.post("/v1/chat/completions", **tagged("42", stream=True))
        await h.client.post("/v1/chat/completions", **tagged("42", variant="nf4", stream=True))
        good, broken = records
        assert good.ok and not broken.ok
        assert await h.runtime.journal(good) == "stored"
        # The pipeline journals before the last byte, when the break is not known yet.
        provisional = replace(broken, status=200, error_type=None, text="#### 42")
        assert await h.runtime.journal(provisional) == "stored"
        await h.runtime.tick()  # the grading pass sees the final, broken record
        assert h.runtime.store is not None
        assert await asyncio.to_thread(h.runtime.store.flush)
        assert [r[0] for r in _rows(tmp_path / "log.sqlite3")] == [good.request_id]


async def test_a_journaled_canary_keeps_its_dataset_item(tmp_path: Path) -> None:
    backends = {"bf16": ScriptedBackend("bf16", words=RIGHT)}
    async with scored(backends, tmp_path) as h:
        records: list[RequestRecord] = []
        h.app.add_record_sink(records.append)
        await h.client.post("/v1/chat/completions", **tagged("42"))
        canary = replace(records[0], request_id="canary-1", role="canary")
        h.runtime.register_canary("canary-1", "multihop/seed0/7", "round-1")
        assert await h.runtime.journal(canary) == "stored"
        rows = [r for r in _rows(tmp_path / "log.sqlite3") if r[0] == "canary-1"]
        assert rows == [("canary-1", "none", "multihop/seed0/7")]


async def test_without_a_store_nothing_is_claimed_stored() -> None:
    backends = {"bf16": ScriptedBackend("bf16", words=RIGHT)}
    async with scored(backends, None) as h:
        records: list[RequestRecord] = []
        h.app.add_record_sink(records.append)
        await h.client.post("/v1/chat/completions", **tagged("42"))
        assert await h.runtime.journal(records[0]) == "unavailable"
