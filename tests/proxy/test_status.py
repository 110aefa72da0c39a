"""Live scoring in the app: tagged traffic graded, shadow answers compared, status API, page."""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from backends.base import MemoryReport
from proxy.config import ConfigError
from proxy.scoring_runtime import ScoringRuntime
from proxy.status_cli import format_status, format_wrong
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import chat, settings_for
from tests.proxy.scoring_helpers import scored, tagged

RIGHT, WRONG = ("The", "answer:", "####", "42"), ("The", "answer:", "####", "41")


def _variant(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in status["models"][0]["variants"] if v["variant"] == name)


async def test_tagged_requests_are_graded_and_listed(tmp_path: Path) -> None:
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT),
        "nf4": ScriptedBackend("nf4", words=WRONG),
    }
    async with scored(backends, tmp_path) as h:
        for variant in ("bf16", "nf4"):
            resp = await h.client.post("/v1/chat/completions", **tagged("42", variant=variant))
            assert resp.status_code == 200
        # the tag in metadata works too, and is never forwarded to the model
        body = {**tagged("42")["json"], "metadata": {"expected_answer": "42", "user": "u1"}}
        await h.client.post("/v1/chat/completions", json=body)
        assert backends["bf16"].calls[-1].body["metadata"] == {"user": "u1"}
        status = await h.status()
        await asyncio.to_thread(h.runtime.store.flush)  # type: ignore[union-attr]
        wrong = await h.client.get("/quanttrap/v1/evaluations?variant=nf4&correct=false")
        right = await h.client.get("/quanttrap/v1/evaluations", params={"correct": "true"})
    bf16, nf4 = _variant(status, "bf16"), _variant(status, "nf4")
    assert bf16["buckets"][0]["samples"]["graded"] == 2
    assert bf16["buckets"][0]["accuracy"]["estimate"] == 1.0
    assert nf4["buckets"][0]["accuracy"]["estimate"] == 0.0
    assert nf4["buckets"][0]["accuracy"]["high"] > 0.5  # one sample: a wide Wilson interval
    assert status["counters"]["graded"] == 3
    (row,) = wrong.json()["data"]
    assert (row["variant"], row["extracted"], row["expected"], row["dataset"]) == (
        "nf4",
        "41",
        "42",
        "gsm8k",
    )
    assert row["prompt"] is None and len(row["prompt_sha256"]) == 64
    assert {r["variant"] for r in right.json()["data"]} == {"bf16"}


async def test_status_reports_energy_unavailable_and_never_zero(tmp_path: Path) -> None:
    backends = {"bf16": ScriptedBackend("bf16", words=RIGHT), "nf4": ScriptedBackend("nf4")}
    async with scored(backends, None) as h:
        await h.client.post("/v1/chat/completions", **tagged("42", variant="nf4", stream=True))
        status = await h.status()
    row = _variant(status, "nf4")["buckets"][0]
    assert row["energy"] == {
        "method": "none",
        "available": False,
        "samples": 0,
        "j_per_query": None,
        "j_per_token": None,
        "note": "energy: unavailable (no method measured it: method none)",
    }
    assert row["si"] is None and row["pillars"]["energy"]["raw"] is None
    assert _variant(status, "nf4")["memory"] == {
        "gb": None,
        "method": "unknown",
        "source": "unknown",
    }
    assert any(m.startswith("memory: unknown") for m in row["missing"])
    table = format_status(status)
    assert "unavailable" in table and "nf4" in table and re.search(r"bf16 \*", table)


async def test_shadow_pairs_are_compared_and_graded(tmp_path: Path) -> None:
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT),
        "nf4": ScriptedBackend("nf4", words=WRONG),
    }
    async with scored(backends, tmp_path, shadow={"variants": ["nf4"], "sample_rate": 1.0}) as h:
        for _ in range(3):
            await h.client.post("/v1/chat/completions", **tagged("42"))
        await h.client.post("/v1/chat/completions", json=tagged("42")["json"])  # unlabelled
        for _ in range(50):
            if len(h.runtime._pairs) >= 4:
                break
            await asyncio.sleep(0.01)
        status = await h.status()
        await asyncio.to_thread(h.runtime.store.flush)  # type: ignore[union-attr]
        disagreements = await h.client.get("/quanttrap/v1/comparisons?agree=false")
    (agreement,) = status["models"][0]["shadow_agreement"]
    assert (agreement["primary"], agreement["shadow"]) == ("bf16", "nf4")
    assert (agreement["agree"], agreement["disagree"]) == (0, 4)
    assert agreement["rate"]["estimate"] == 0.0 and agreement["rate"]["high"] > 0
    nf4 = _variant(status, "nf4")["buckets"][0]
    assert nf4["samples"]["graded"] == 3  # the shadow copies graded with the primary's tag
    assert nf4["paired"]["anchor_only"] == 3
    rows = disagreements.json()["data"]
    assert len(rows) == 4
    assert {(r["primary_correct"], r["shadow_correct"]) for r in rows} == {
        (True, False),
        (None, None),
    }


async def test_log_queries_validate_parameters_and_need_the_key(tmp_path: Path) -> None:
    backends = {"bf16": ScriptedBackend("bf16")}
    env = {"QUANTTRAP_API_KEYS": "k1"}
    async with scored(backends, tmp_path, environ=env) as h:
        assert (await h.client.get("/quanttrap/v1/evaluations")).status_code == 401
        key = {"authorization": "Bearer k1"}
        for query, param in (("limit=0", "limit"), ("correct=maybe", "correct"), ("x=1", "x")):
            resp = await h.client.get(f"/quanttrap/v1/evaluations?{query}", headers=key)
            assert resp.status_code == 400
            assert resp.json()["error"]["param"] == param
        ok = await h.client.get("/quanttrap/v1/evaluations?limit=5", headers=key)
        assert ok.status_code == 200 and ok.json()["data"] == []
        # the live table shows per-variant accuracy: it needs a key too when keys are set
        assert (await h.client.get("/quanttrap/v1/status")).status_code == 401
        assert (await h.client.get("/quanttrap/v1/status", headers=key)).status_code == 200


async def test_log_routes_say_when_the_store_is_off() -> None:
    async with scored({"bf16": ScriptedBackend("bf16")}, None) as h:
        resp = await h.client.get("/quanttrap/v1/evaluations")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "store_disabled"


async def test_status_page_is_served_with_nothing_external() -> None:
    async with scored({"bf16": ScriptedBackend("bf16")}, None) as h:
        pages = {p: await h.client.get(p) for p in ("/quanttrap/", "/quanttrap")}
        js = await h.client.get("/quanttrap/app.js")
        css = await h.client.get("/quanttrap/app.css")
    for resp in pages.values():
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert "/quanttrap/app.js" in resp.text and "/quanttrap/app.css" in resp.text
    assert js.headers["content-type"].startswith("text/javascript")
    assert "/quanttrap/v1/status" in js.text
    assert css.headers["content-type"].startswith("text/css")
    static = resources.files("proxy.static")
    for name in ("index.html", "app.js", "app.css"):
        text = static.joinpath(name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "@import" not in text and "cdn" not in text.lower()


async def test_metrics_gauges_and_counters(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT),
        "nf4": ScriptedBackend("nf4", words=WRONG),
    }
    scoring = {"trap": {"min_graded": 3, "min_requests": 3, "on_after": 1}}
    async with scored(backends, None, scoring=scoring, meter=provider.get_meter("t")) as h:
        for _ in range(5):
            for variant in ("bf16", "nf4"):
                await h.client.post("/v1/chat/completions", **tagged("42", variant=variant))
        await h.status()
        data = reader.get_metrics_data()
    points: dict[str, list[tuple[dict[str, Any], float]]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points.setdefault(metric.name, []).append((dict(p.attributes or {}), p.value))  # type: ignore[union-attr]
    graded = {
        (a["quanttrap.variant"], a["quanttrap.eval.outcome"]): v
        for a, v in points["quanttrap.eval.graded"]
    }
    assert graded == {("bf16", "correct"): 5, ("nf4", "incorrect"): 5}
    regimes = {
        a["quanttrap.regime.name"]: v
        for a, v in points["quanttrap.regime"]
        if a["quanttrap.variant"] == "nf4"
    }
    assert sum(regimes.values()) == 1  # one-hot
    assert set(regimes) >= {"full_trap", "no_trap", "undetermined"}
    samples = {
        a["quanttrap.samples.kind"]: v
        for a, v in points["quanttrap.window.samples"]
        if a["quanttrap.variant"] == "nf4"
    }
    assert samples["graded"] == 5 and samples["energy"] == 0
    pillars = {
        (a["quanttrap.pillar.name"], a["quanttrap.pillar.bounded"])
        for a, _ in points["quanttrap.pillar"]
        if a["quanttrap.variant"] == "nf4"
    }
    assert ("trust", "true") in pillars and ("trust", "false") in pillars
    assert not any(name == "energy" for name, _ in pillars)  # unmeasured: no sample at all
    assert {a["quanttrap.variant"] for a, _ in points["quanttrap.trap"]} == {"bf16", "nf4"}
    verdicts = {
        (a["quanttrap.variant"], a["quanttrap.verdict.question"]): v
        for a, v in points["quanttrap.verdict"]
    }
    # Answered questions only (no energy measured: "more energy" has no sample); never the
    # anchor's own row. 5 graded a side cannot decide accuracy beyond δ at every look.
    assert set(verdicts) == {("nf4", "less_accurate"), ("nf4", "slower")}
    assert verdicts["nf4", "less_accurate"] == 0.0
    si = {a["quanttrap.variant"]: v for a, v in points["quanttrap.si"]}
    assert si == {"bf16": 1.0}  # nf4: no energy, no memory, so no SI at all (never faked)
    assert any(v > 0 for _, v in points["quanttrap.generation.tokens"])


async def test_status_shows_the_anytime_valid_verdicts_and_their_margins() -> None:
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT),
        "nf4": ScriptedBackend("nf4", words=WRONG),
    }
    async with scored(backends, None, scoring={"trap": {"on_after": 1}}) as h:
        for _ in range(25):
            for variant in ("bf16", "nf4"):
                await h.client.post("/v1/chat/completions", **tagged("42", variant=variant))
        status = await h.status()
        page = (await h.client.get("/quanttrap/app.js")).text
    assert status["verdicts"]["level"] == 0.95 and status["verdicts"]["epoch_s"] == 86400
    assert status["verdicts"]["epoch_since"] is not None
    nf4 = _variant(status, "nf4")
    v = nf4["buckets"][0]["verdicts"]
    assert v["level"] == pytest.approx(0.95)
    assert v["margins"] == {"accuracy": 0.01, "speed": 0.05, "energy": 0.05}
    acc = v["accuracy_difference"]
    assert acc["estimate"] == -1.0 and acc["confidence"] == pytest.approx(1 - 0.05 / 6)
    # 25 graded a side: the sequence is wider than a fixed-sample interval, still below −δ.
    assert -1.0 <= acc["low"] < acc["high"] < -0.01
    assert v["answers"]["less_accurate"] is True and v["energy_ratio"] is None
    assert v["held_from_previous_epoch"] == []
    # Speed is measured on the wall clock here, so only the accuracy half of the regime is fixed.
    assert nf4["regime"] in {"accuracy_trap", "full_trap"} and nf4["trap"] is True
    # The page shows the sequence and the margin it was held against.
    assert "verdictLines" in page and "margin" in page and "held from the previous epoch" in page


async def test_sinks_are_bounded_and_scoring_can_be_switched_off() -> None:
    bounded = {"pending_records": 100}
    async with scored({"bf16": ScriptedBackend("bf16")}, None, scoring=bounded) as h:
        for _ in range(3):
            await h.client.post("/v1/chat/completions", **tagged("42"))
        record = h.runtime._records[0]
        for _ in range(200):
            h.runtime.record_sink(record)
        assert len(h.runtime._records) == 100
        assert h.runtime.counters["dropped_records"] == 103
    from proxy.app import QuanttrapApp
    from quanttrap.assembly import attach_scoring

    settings = settings_for({"bf16": 16}, primary="bf16")
    off = settings.model_copy(
        update={"scoring": settings.scoring.model_copy(update={"enabled": False})}
    )
    app = QuanttrapApp(off, {("demo", "bf16"): ScriptedBackend("bf16")}, environ={})
    assert attach_scoring(app, off) is None
    assert (await app_client_get(app, "/quanttrap/v1/status")) == 404


def test_declared_memory_must_name_a_configured_variant() -> None:
    settings = settings_for({"bf16": 16, "nf4": 4}, primary="bf16")
    bad = settings.model_copy(
        update={
            "scoring": settings.scoring.model_copy(update={"memory_gb": {"demo": {"fp8": 7.0}}})
        }
    )
    with pytest.raises(ConfigError, match=r"scoring.memory_gb.demo.fp8"):
        ScoringRuntime(bad, {})


def test_wrong_answers_table_shows_item_or_hash() -> None:
    rows = [
        {"at": 0, "model": "m", "variant": "nf4", "role": "canary", "dataset": "multihop",
         "item_id": "multihop/seed0/7", "prompt": None, "prompt_sha256": "f" * 64,
         "extracted": "12", "expected": "13"},
        {"at": 0, "model": "m", "variant": "nf4", "role": "primary", "dataset": "gsm8k",
         "item_id": None, "prompt": None, "prompt_sha256": "0123456789ab" + "0" * 52,
         "extracted": None, "expected": "5"},
    ]  # fmt: skip
    text = format_wrong(rows, "nf4")
    assert "multihop/seed0/7" in text and "sha256:0123456789ab" in text and "(none)" in text
    assert format_wrong([], "nf4").startswith("no wrong answers")


class _EngineLike(ScriptedBackend):
    """A scripted backend that reports memory like the in-process engine does."""

    def __init__(self, name: str, weights: int, peak: int) -> None:
        super().__init__(name)
        self._report = (weights, peak)

        self.method = "process peak RSS"

    def memory(self) -> Any:
        weights, peak = self._report
        return MemoryReport(weights_bytes=weights, peak_bytes=peak, method=self.method)


async def app_client_get(app: Any, path: str) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        return (await client.get(path)).status_code


def test_memory_comes_from_config_else_the_engine_else_unknown() -> None:
    settings = settings_for({"bf16": 16, "nf4": 4, "int8": 8}, primary="bf16")
    settings = settings.model_copy(
        update={
            "scoring": settings.scoring.model_copy(update={"memory_gb": {"demo": {"int8": 8.5}}})
        }
    )
    backends = {
        ("demo", "bf16"): _EngineLike("bf16", 2_000_000_000, 9_000_000_000),
        ("demo", "nf4"): ScriptedBackend("nf4"),
        ("demo", "int8"): _EngineLike("int8", 1_000_000_000, 9_000_000_000),
    }
    memory = ScoringRuntime(settings, backends)._memory()
    assert memory["demo", "bf16"].gb == 2.0 and "weights" in memory["demo", "bf16"].method
    assert (memory["demo", "int8"].gb, memory["demo", "int8"].method) == (
        8.5,
        "declared in scoring.memory_gb",
    )
    assert (memory["demo", "nf4"].gb, memory["demo", "nf4"].method) == (None, "unknown")
    sources = {key[1]: m.source for key, m in memory.items()}
    assert sources == {"bf16": "weights", "int8": "config", "nf4": "unknown"}
    peak = settings.model_copy(
        update={"scoring": settings.scoring.model_copy(update={"memory_basis": "peak"})}
    )
    assert ScoringRuntime(peak, backends)._memory()["demo", "bf16"].gb == 9.0
    # The peak's bounded kind follows what the engine's MemoryReport.method says.
    import torch

    from backends.engine.memory import memory_report

    cpu = memory_report(torch.nn.Linear(2, 2), torch.device("cpu"), 48).method
    cuda = cpu.replace("process peak RSS (ru_maxrss)", "torch.cuda.max_memory_allocated(cuda:0)")
    for method, source in ((cpu, "cpu_rss"), (cuda, "cuda_peak"), ("something else", "peak")):
        engine = _EngineLike("bf16", 1, 9_000_000_000)
        engine.method = method
        found = ScoringRuntime(peak, {("demo", "bf16"): engine})._memory()["demo", "bf16"]
        assert (found.gb, found.source) == (9.0, source), method


async def test_memory_gauge_and_graded_depth_label() -> None:
    """Known memory is exported per variant with its bounded method; unknown exports nothing.
    Graded evaluations carry the reasoning-depth bucket of the client's tag."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    backends = {
        "bf16": ScriptedBackend("bf16", words=RIGHT),
        "nf4": ScriptedBackend("nf4", words=WRONG),
    }
    scoring = {"memory_gb": {"demo": {"bf16": 14.5}}}
    async with scored(backends, None, scoring=scoring, meter=provider.get_meter("t")) as h:
        for depth in ("1", "4", "4", "9", None):
            kwargs = tagged("42", variant="bf16")
            if depth is not None:
                kwargs["headers"]["X-Quanttrap-Depth"] = depth
            await h.client.post("/v1/chat/completions", **kwargs)
        nf4 = tagged("42", variant="nf4")
        body = {**nf4["json"], "metadata": {"reference_depth": "6"}}
        await h.client.post("/v1/chat/completions", json=body, headers=nf4["headers"])
        await h.status()
        data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: [(dict(p.attributes or {}), p.value) for p in metric.data.data_points]  # type: ignore[union-attr]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    memory = {(a["quanttrap.variant"], a["quanttrap.memory.method"]): v
              for a, v in points["quanttrap.variant.memory"]}  # fmt: skip
    assert memory == {("bf16", "config"): 14_500_000_000}  # nf4: unknown, no sample at all
    depths = {
        (a["quanttrap.variant"], a["quanttrap.depth.bucket"], a["quanttrap.eval.outcome"]): v
        for a, v in points["quanttrap.eval.graded"]
    }
    assert depths == {
        ("bf16", "1-2", "correct"): 1,
        ("bf16", "3-4", "correct"): 2,
        ("bf16", "7+", "correct"): 1,
        ("bf16", "unknown", "correct"): 1,  # untagged, and "#### 42" states no step
        ("nf4", "5-6", "incorrect"): 1,
    }


async def test_status_shows_the_canary_budget_and_shadow_coverage_by_bucket() -> None:
    backends = {"bf16": ScriptedBackend("bf16"), "nf4": ScriptedBackend("nf4")}
    shadow = {"variants": ["nf4"], "sample_rate": 1.0, "max_concurrency": 2}
    canary = {"canary": {"enabled": True, "rate_per_minute": 60}}
    async with scored(backends, None, scoring=canary, shadow=shadow) as h:
        for _ in range(3):
            assert (await h.client.post("/v1/chat/completions", json=chat())).status_code == 200
            await asyncio.sleep(0.05)  # the copy finishes before the next request
        status = (await h.client.get("/quanttrap/v1/status")).json()
    budget = status["canary"]["budget"]
    assert {"cpu_budget_cores", "cpu_used_cores", "busy_budget", "limited_by"} <= set(budget)
    coverage = status["shadow_sampling"]["demo"]
    assert coverage["cap"] == 2
    by_bucket = {b["bucket"]: b for b in coverage["buckets"]}
    assert set(by_bucket) >= {"1", "2-3", "4-7", "8-15", "16-31", "32+"}
    # Each request ran alone (bucket "1"): all three copies offered there, and run.
    assert (by_bucket["1"]["offered"], by_bucket["1"]["run"], by_bucket["1"]["dropped"]) == (
        3,
        3,
        0,
    )
