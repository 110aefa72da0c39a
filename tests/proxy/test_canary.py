"""Canary evaluation traffic: every variant, pinned, role canary, low priority, paired."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from proxy.canary import load_canary_items
from quanttrap.settings import load_settings
from scoring.config import CanaryConfig, ScoringConfig
from scoring.datasets.gsm8k import reference_depth
from scoring.datasets.multihop import split_of
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.scoring_helpers import scored

RIGHT, WRONG = ("####", "42"), ("####", "41")
QUIET = {"canary": {"enabled": True, "rate_per_minute": 0.01}}  # rounds only when launched


async def _settle(runner: Any) -> None:
    for _ in range(200):
        if not runner._probes:
            return
        await asyncio.sleep(0.01)


def _variant(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in status["models"][0]["variants"] if v["variant"] == name)


async def test_a_round_asks_every_variant_the_same_question() -> None:
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT),
        "nf4": ScriptedBackend("nf4", words=WRONG),
    }
    async with scored(
        backends, None, scoring=QUIET, shadow={"variants": ["nf4"], "sample_rate": 1.0}
    ) as h:
        runner = h.runtime.canary
        assert runner is not None
        model = h.app.settings.models[0]
        assert runner.launch_round(model, 0) == 2
        await _settle(runner)
        status = await h.status()
    questions = []
    for name, backend in backends.items():
        (call,) = backend.calls  # exactly one each: canaries are never shadowed
        assert call.headers["x-quanttrap-role"] == "canary"
        assert call.body["temperature"] == 0 and call.body["stream"] is True
        assert "metadata" not in call.body  # the expected answer never reaches the model
        questions.append(call.body["messages"][0]["content"])
        assert _variant(status, name)["buckets"][0]["samples"]["graded"] == 1
    assert questions[0] == questions[1] and split_of(questions[0]) == "eval"
    paired = _variant(status, "nf4")["buckets"][0]["paired"]
    assert paired["both_wrong"] == 1  # one round, one pair (neither said the real answer)
    assert ("demo", "bf16", "completed") in runner.counts


async def test_canaries_are_graded_against_the_dataset(tmp_path: Path) -> None:
    async with scored({"bf16": ScriptedBackend("bf16")}, tmp_path, scoring=QUIET) as h:
        runner = h.runtime.canary
        assert runner is not None
        runner.launch_round(h.app.settings.models[0], 3)
        await _settle(runner)
        await h.status()
        await asyncio.to_thread(h.runtime.store.flush)  # type: ignore[union-attr]
        rows = (await h.client.get("/quanttrap/v1/evaluations?role=canary")).json()["data"]
    (row,) = rows
    assert row["dataset"] == "multihop" and row["item_id"] == "multihop/seed0/3"
    item = load_canary_items(CanaryConfig())[3]
    assert item.depth is not None and row["depth"] == item.depth  # the item's own depth
    assert row["correct"] is False  # "Hello world" is not the answer
    assert row["pair_key"].startswith("canary-")


async def test_busy_variants_are_skipped_and_in_flight_is_bounded() -> None:
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT, delay_s=0.2),
        "nf4": ScriptedBackend("nf4", words=RIGHT),
    }
    async with scored(backends, None, scoring=QUIET) as h:
        runner = h.runtime.canary
        assert runner is not None
        model = h.app.settings.models[0]
        h.app.service.in_flight["demo", "nf4"] = 8  # eight user requests on nf4
        assert runner.launch_round(model, 0) == 1  # bf16 only
        assert runner.launch_round(model, 1) == 0  # bf16 still busy with its canary
        h.app.service.in_flight["demo", "nf4"] = 0
        await _settle(runner)
    assert runner.counts["demo", "nf4", "skipped_busy"] == 2
    assert runner.counts["demo", "bf16", "skipped_in_flight"] == 1
    assert len(backends["bf16"].calls) == 1 and backends["nf4"].calls == []


async def test_user_requests_in_flight_are_counted_per_variant() -> None:
    backends = {"bf16": ScriptedBackend("bf16", delay_s=0.1), "nf4": ScriptedBackend("nf4")}
    async with scored(backends, None) as h:
        task = asyncio.create_task(
            h.client.post(
                "/v1/chat/completions",
                json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
            )
        )
        await asyncio.sleep(0.05)
        busy = dict(h.app.service.in_flight)
        await task
    assert busy == {("demo", "bf16"): 1, ("demo", "nf4"): 0}
    assert h.app.service.in_flight == {("demo", "bf16"): 0, ("demo", "nf4"): 0}


async def test_the_loop_sends_rounds_at_the_configured_rate() -> None:
    fast = {  # one round every 0.1 s, with a budget that never holds a round back
        "canary": {"enabled": True, "rate_per_minute": 600, "cpu_budget": 64, "busy_budget": 1}
    }
    backends = {"bf16": ScriptedBackend("bf16"), "nf4": ScriptedBackend("nf4")}
    async with scored(backends, None, scoring=fast):
        await asyncio.sleep(0.55)
    for backend in backends.values():
        assert 3 <= len(backend.calls) <= 6
    first = [c.body["messages"][0]["content"] for c in backends["bf16"].calls]
    assert len(set(first)) == len(first)  # the cycle moves on every round


async def test_the_cpu_budget_holds_rounds_back_and_says_so() -> None:
    tight = {"canary": {"enabled": True, "rate_per_minute": 600, "cpu_budget": 1e-4}}
    backends = {"bf16": ScriptedBackend("bf16"), "nf4": ScriptedBackend("nf4")}
    async with scored(backends, None, scoring=tight) as h:
        await asyncio.sleep(0.55)
        runner = h.runtime.canary
        assert runner is not None
        status = runner.budget_status()
    # A round costs at least a millisecond of CPU: 1e-4 cores defers the next by >= 10 s.
    for backend in backends.values():
        assert len(backend.calls) == 1
    assert status.rounds == 1 and status.limited_by == "cpu"
    assert status.cpu_budget_cores == 1e-4 and status.cpu_used_cores > 1e-4
    assert status.deferred_s > 0


def test_the_canary_budget_is_a_setting_users_can_set() -> None:
    settings = load_settings(None, environ={"QUANTTRAP_SCORING__CANARY__CPU_BUDGET": "0.5"})
    assert settings.scoring.canary.cpu_budget == 0.5
    assert load_settings(None, environ={}).scoring.canary.cpu_budget == 0.02
    with pytest.raises(ConfigError, match="cpu_budget"):
        load_settings(None, environ={"QUANTTRAP_SCORING__CANARY__CPU_BUDGET": "0"})


def test_canary_sets() -> None:
    items = load_canary_items(CanaryConfig(seed=5))
    assert len(items) == 512 and items[0].item_id == "multihop/seed5/0"
    assert all(split_of(i.messages[0]["content"]) == "eval" for i in items)
    assert items == load_canary_items(CanaryConfig(seed=5))  # reproducible
    gsm8k = load_canary_items(CanaryConfig(dataset="gsm8k"))
    assert len(gsm8k) == 1319 and gsm8k[0].expected.rstrip().split()[-1] == "18"
    # every item knows its reasoning depth: multi-hop's generator depth, GSM8K's annotations
    assert {i.depth for i in items} == set(range(1, 9))
    assert all(i.depth is not None and i.depth >= 1 for i in gsm8k)
    assert gsm8k[0].depth == reference_depth(gsm8k[0].expected)


def test_canaries_are_off_by_default_and_on_in_the_embedded_default() -> None:
    assert ScoringConfig().canary.enabled is False
    embedded = load_settings(None, environ={})
    assert embedded.scoring.canary.enabled and embedded.scoring.canary.dataset == "multihop"
