"""Shadow tool-call agreement by agent hop, in the running app: ``/metrics`` and the status API.

The app is built with REAL telemetry (its Prometheus registry serves ``/metrics``) and live
scoring attached to the telemetry's meter, as ``quanttrap serve`` wires them; upstreams are
the scripted backend (a test double) and energy the fake source (a test double for NVML).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from core.records import RequestRecord, ShadowPair, ToolCall
from proxy.app import QuanttrapApp
from proxy.scoring_runtime import ScoringRuntime
from quanttrap.assembly import attach_scoring, variant_specs
from scoring.config import ScoringConfig
from telemetry import FakeEnergySource, Telemetry
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import settings_for

WEATHER = ToolCall("get_weather", '{"city": "Paris"}')
ELSEWHERE = ToolCall("get_weather", '{"city": "Lyon"}')
SERIES = "quanttrap_shadow_comparisons_total"


@dataclasses.dataclass
class _Harness:
    client: httpx.AsyncClient
    runtime: ScoringRuntime

    async def metrics(self) -> dict[tuple[str, str, str], float]:
        """(agreement, verdict, hop bucket) -> count of the comparisons counter."""
        await self.runtime.tick()
        text = (await self.client.get("/metrics")).text
        out: dict[tuple[str, str, str], float] = {}
        for line in text.splitlines():
            if not line.startswith(SERIES + "{"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (
                labels["quanttrap_shadow_agreement"],
                labels["quanttrap_shadow_verdict"],
                labels["quanttrap_agent_hop_bucket"],
            )
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    async def gauge(self, name: str) -> dict[str, float]:
        """Shadow variant -> value of a scoring gauge on ``/metrics``."""
        await self.runtime.tick()
        text = (await self.client.get("/metrics")).text
        out = {}
        for line in text.splitlines():
            if line.startswith(name + "{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                out[labels["quanttrap_variant"]] = float(line.rsplit(" ", 1)[1])
        return out

    async def status(self) -> dict[str, Any]:
        await self.runtime.tick()
        data: dict[str, Any] = (await self.client.get("/quanttrap/v1/status")).json()
        return data


@asynccontextmanager
async def _app(
    backends: Mapping[str, ScriptedBackend], **model_extra: Any
) -> AsyncIterator[_Harness]:
    names = list(backends)
    settings = settings_for({n: 16 if i == 0 else 4 for i, n in enumerate(names)},
                            primary=names[0], **model_extra)  # fmt: skip
    scoring = ScoringConfig.model_validate(
        {"recompute_interval_s": 600, "store": {"enabled": False}, "trap": {"min_graded": 2}}
    )
    settings = settings.model_copy(update={"scoring": scoring})
    specs = [dataclasses.replace(s, gpus="all") for s in variant_specs(settings)]
    tel = Telemetry.create(
        settings.telemetry,
        specs,
        registry=CollectorRegistry(),
        energy_source=FakeEnergySource(power_w=200.0, clock=time.monotonic),
        environ={},
    )
    app = QuanttrapApp(
        settings, {("demo", n): b for n, b in backends.items()}, environ={}, telemetry=tel
    )
    runtime = attach_scoring(app, settings, meter=tel.meter)
    assert runtime is not None
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            yield _Harness(client, runtime)
    finally:
        await app.shutdown()


def _record(variant: str, hop: int, calls: tuple[ToolCall, ...], text: str = "") -> RequestRecord:
    return RequestRecord(
        request_id=f"r-{variant}-{hop}",
        model="demo",
        variant=variant,
        bits=16 if variant == "bf16" else 4,
        role="primary" if variant == "bf16" else "shadow",
        operation="chat",
        stream=False,
        status=200,
        started_at=time.time(),
        duration_s=0.1,
        text=text,
        tool_calls=calls,
        agent_turns_before=hop,
        pair_id=f"pair-{hop}",
    )


async def test_tool_call_verdicts_reach_metrics_and_status_by_hop() -> None:
    backends = {"bf16": ScriptedBackend("bf16"), "nf4": ScriptedBackend("nf4")}
    async with _app(backends) as h:
        for hop, shadow_calls, text in (
            (0, (WEATHER,), ""),  # agrees
            (0, (WEATHER,), ""),
            (1, (ELSEWHERE,), ""),  # wrong arguments
            (3, (), "It is sunny in Paris."),  # text instead of a call
            (3, (ELSEWHERE,), ""),
        ):
            primary = _record("bf16", hop, (WEATHER,))
            shadow = _record("nf4", hop, shadow_calls, text)
            h.runtime.pair_sink(ShadowPair(f"pair-{hop}", primary, shadow))
        counts = await h.metrics()
        status = await h.status()
    assert counts == {
        ("agree", "agree", "0"): 2,
        ("disagree", "wrong_arguments", "1"): 1,
        ("disagree", "text_instead_of_call", "3-4"): 1,
        ("disagree", "wrong_arguments", "3-4"): 1,
    }
    (agreement,) = status["models"][0]["shadow_agreement"]
    assert (agreement["agree"], agreement["disagree"]) == (2, 3)
    assert agreement["verdicts"] == {"agree": 2, "wrong_arguments": 2, "text_instead_of_call": 1}
    by_hop = {h["hop_bucket"]: h for h in agreement["by_hop"]}
    assert list(by_hop) == ["0", "1", "3-4"]
    assert by_hop["0"]["rate"]["estimate"] == 1.0 and by_hop["3-4"]["disagree"] == 2
    trend = agreement["hop_trend"]
    assert trend["first_hop"] == {"compared": 2, "disagree": 0}
    assert trend["later_hops"] == {"compared": 3, "disagree": 3}
    # min_graded 2: answered, but five comparisons cannot exclude 0 at every look.
    diff = trend["difference"]
    assert diff["estimate"] == 1.0 and diff["low"] < 0 and diff["confidence"] == 0.95
    assert trend["grows"] is False and trend["level"] == 0.95


async def test_the_hop_trend_gauge_says_when_disagreement_grows() -> None:
    backends = {name: ScriptedBackend(name) for name in ("bf16", "nf4", "awq")}
    async with _app(backends) as h:
        assert await h.gauge("quanttrap_shadow_hop_trend") == {}  # unanswered: no sample
        for i in range(40):
            for shadow in ("nf4", "awq"):
                for hop in (0, 1 + i % 6):  # nf4 disagrees at every later hop, awq never
                    wrong = shadow == "nf4" and hop > 0
                    calls = (ELSEWHERE,) if wrong else (WEATHER,)
                    pair = ShadowPair(
                        f"p{i}", _record("bf16", hop, (WEATHER,)), _record(shadow, hop, calls)
                    )
                    h.runtime.pair_sink(pair)
        trend = await h.gauge("quanttrap_shadow_hop_trend")
    assert trend == {"nf4": 1.0, "awq": 0.0}


async def test_a_tagged_tool_call_pair_is_compared_but_not_graded() -> None:
    backends = {"bf16": ScriptedBackend("bf16"), "nf4": ScriptedBackend("nf4")}
    async with _app(backends) as h:
        primary = replace(_record("bf16", 2, (WEATHER,)), expected_answer="42")
        shadow = _record("nf4", 2, (), "#### 42")
        h.runtime.pair_sink(ShadowPair("pair-2", primary, shadow))
        h.runtime.record_sink(primary)
        counts = await h.metrics()
        status = await h.status()
    assert counts == {("disagree", "text_instead_of_call", "2"): 1}
    variants = {v["variant"]: v for v in status["models"][0]["variants"]}
    # Neither half was graded: a tool-call hop has no final answer to grade yet.
    graded = [b["samples"]["graded"] for v in variants.values() for b in v["buckets"]]
    assert graded and set(graded) == {0} and status["counters"]["graded"] == 0


async def test_a_restart_puts_comparisons_back_in_their_hop_buckets(tmp_path: Path) -> None:
    settings = settings_for({"bf16": 16, "nf4": 4}, primary="bf16")
    scoring = ScoringConfig.model_validate(
        {"recompute_interval_s": 600, "store": {"path": str(tmp_path / "log.sqlite3")}}
    )
    settings = settings.model_copy(update={"scoring": scoring})
    first = ScoringRuntime(settings, {})
    await first.start()
    for hop, calls in ((0, (WEATHER,)), (5, (ELSEWHERE,)), (5, ())):
        first.pair_sink(
            ShadowPair("p", _record("bf16", hop, (WEATHER,)), _record("nf4", hop, calls))
        )
    await first.stop()  # grades, compares and flushes the log
    again = ScoringRuntime(settings, {})
    await again.start()
    try:
        (view,) = again.snapshot.models[0].agreement  # type: ignore[union-attr]
    finally:
        await again.stop()
    assert again.counters["reloaded_comparisons"] == 3
    assert {h.bucket: (h.agree, h.disagree) for h in view.hops} == {"0": (1, 0), "5-8": (0, 2)}
    assert dict(view.verdicts) == {"agree": 1, "wrong_arguments": 1, "missing_call": 1}


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


_HISTORY = [  # two round trips: two parallel calls and their results, then one call
    {"role": "user", "content": "Weather in Paris and Rome, then the time in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        _call("a", "get_weather", '{"city": "Paris"}'),
        _call("b", "get_weather", '{"city": "Rome"}'),
    ]},
    {"role": "tool", "tool_call_id": "a", "content": "sunny"},
    {"role": "tool", "tool_call_id": "b", "content": "rain"},
    {"role": "assistant", "content": None, "tool_calls": [_call("c", "get_time", '{"tz": "CET"}')]},
    {"role": "tool", "tool_call_id": "c", "content": "10:00"},
]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_disagreement_through_the_app_reaches_metrics(stream: bool) -> None:
    backends = {
        "bf16": ScriptedBackend("bf16", tool_calls=(WEATHER,)),
        "nf4": ScriptedBackend("nf4", tool_calls=(ELSEWHERE,)),
    }
    async with _app(backends, shadow={"variants": ["nf4"], "sample_rate": 1.0}) as h:
        body = {"model": "demo", "messages": _HISTORY, "stream": stream}
        resp = await h.client.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200
        for _ in range(100):
            if h.runtime._pairs:
                break
            await asyncio.sleep(0.01)
        counts = await h.metrics()
    # Two round trips before the call (their three tool results add none): hop position 2.
    assert counts == {("disagree", "wrong_arguments", "2"): 1}
