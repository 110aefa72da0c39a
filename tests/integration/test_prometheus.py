"""Proof against a real Prometheus: the proxy's metrics, the generated rules and dashboards.

Real processes, loopback only: two fake upstreams (the fake_upstream TEST DOUBLE in ``solve``
mode: ``nf4`` slower and less accurate than the ``bf16`` anchor) and one that always fails,
a fake-GPU ``nvml-agent`` (TEST DOUBLE; the real agent code over fake GPUs, nf4's drawing
3x the power), ``quanttrap
serve`` metering both variants through it, and ``prometheus`` (2.42 in Debian) scraping the
proxy every second with the generated rules loaded (``for:`` shortened to 1 s). The official
``openai`` client sends graded evaluation traffic (shadowed to ``nf4``), failover and error
traffic; then Prometheus's HTTP API must show:

- issue 4: the documented names and labels, with counts equal to what was sent;
- issue 6: every dashboard panel's query (template variables substituted) returns data; the
  recorded fleet-wide SI equals the proxy's own status API within ``SI_TOLERANCE``; and the
  trap, energy, accuracy and shadow alerts fire for ``nf4``.

Without a ``prometheus`` binary the module is skipped, or fails under
``QUANTTRAP_REQUIRE_INTEGRATION=1`` (CI).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from grafana.export import render_all, write_all
from grafana.options import RuleOptions
from grafana.overview import depth_accuracy_queries
from grafana.series import Label, Record, Series
from quanttrap.settings import load_settings
from scoring.datasets.multihop import MultiHopItem, as_chat_messages, generate
from scoring.hops import depth_bucket
from scoring.stats import wilson_interval
from tests.doubles.processes import Process, free_port, quanttrap_command, start_upstream
from tests.integration.prometheus_process import PrometheusProcess, prometheus_binary

pytestmark = pytest.mark.slow

UPSTREAMS = {"bf16": (16, 0.95, 4), "nf4": (4, 0.5, 12)}
"""name: (bits, share of questions answered right, ms between streamed tokens)."""
GPU_POWER_W = (300.0, 900.0)
"""Fake GPU 0 (bf16) and GPU 1 (nf4): nf4's GPU draws 3x the power, so its energy per query
is clearly above the anchor's whatever the overlap of shadow copies."""
EVALUATIONS = 40
"""Tagged evaluation requests to the ``demo`` model (each shadowed to ``nf4``)."""
STREAMED = 28
"""... of which streamed (the rest non-streamed, tagged by header instead of metadata)."""
FAILOVERS = 4
ERRORS = 3
SI_TOLERANCE = 1e-6
"""|fleet − proxy| for the SI, the raw pillars and COR. Every counter series here is younger
than the rules' window, so the rules count exactly what the proxy counted (a series older
than the window would go through ``increase()``'s extrapolation and differ a little); the
slack is for floating point only. Measured: equal to about 1e-16."""


@dataclass
class Stack:
    prometheus: PrometheusProcess
    proxy: Process
    sent: dict[str, int]


def _config(ups: dict[str, Process], agent: Process, store: Path) -> dict[str, Any]:
    def variant(name: str, bits: int, upstream: str, gpu: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": name,
            "bits": bits,
            "backend": {"kind": "openai", "base_url": ups[upstream].url + "/v1"},
        }
        if gpu is not None:
            out["gpus"] = [gpu]
        return out

    return {
        "models": [
            {
                "name": "demo",
                "anchor": "bf16",
                "routing": {"primary": "bf16"},
                "shadow": {"variants": ["nf4"], "sample_rate": 1.0, "max_concurrency": 64},
                "variants": [variant("bf16", 16, "bf16", 0), variant("nf4", 4, "nf4", 1)],
            },
            {  # the primary always fails: every request fails over to "b"
                "name": "flaky",
                "anchor": "a",
                "routing": {"primary": "a"},
                "variants": [variant("a", 16, "fail"), variant("b", 8, "bf16")],
            },
            {  # nowhere to fail over to: the client gets the error
                "name": "down",
                "anchor": "a",
                "routing": {"primary": "a"},
                "variants": [variant("a", 16, "fail")],
            },
        ],
        "telemetry": {"energy": {"source": "remote", "url": agent.url}},
        "scoring": {
            "window_s": 600,
            "slot_s": 5,
            "recompute_interval_s": 0.5,
            "memory_gb": {"demo": {"bf16": 14.0, "nf4": 5.0}},
            "trap": {"min_graded": 20, "min_requests": 10, "on_after": 2},
            "store": {"path": str(store)},
        },
    }


def _messages(item: MultiHopItem) -> list[ChatCompletionMessageParam]:
    return cast("list[ChatCompletionMessageParam]", as_chat_messages(item))


def _send_traffic(url: str) -> dict[str, int]:
    """The client's traffic; returns what it sent and what it was told (tokens)."""
    sent = {"demo": 0, "flaky": 0, "down": 0, "streamed_ok": 0, "output_tokens_demo": 0}
    items = generate(EVALUATIONS, seed=7)
    for item in items:  # graded evaluations per depth bucket, as the counter must label them
        key = f"depth:{depth_bucket(item.depth)}"
        sent[key] = sent.get(key, 0) + 1
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        for i, item in enumerate(items):
            if i < STREAMED:
                stream = client.chat.completions.create(
                    model="demo",
                    messages=_messages(item),
                    metadata={
                        "expected_answer": str(item.answer),
                        "dataset": "multihop",
                        "reference_depth": str(item.depth),
                    },
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for chunk in stream:
                    if chunk.usage is not None:
                        sent["output_tokens_demo"] += chunk.usage.completion_tokens
                sent["streamed_ok"] += 1
            else:
                done = client.chat.completions.create(
                    model="demo",
                    messages=_messages(item),
                    extra_headers={
                        "X-Quanttrap-Expected": str(item.answer),
                        "X-Quanttrap-Depth": str(item.depth),
                    },
                )
                assert done.usage is not None
                sent["output_tokens_demo"] += done.usage.completion_tokens
            sent["demo"] += 1
            if i == 0:
                # Let Prometheus see every counter once before the burst: increase() cannot
                # count what happened before the first scrape of a series.
                time.sleep(2.5)
        for _ in range(FAILOVERS):
            client.chat.completions.create(
                model="flaky", messages=[{"role": "user", "content": "hello"}]
            )
            sent["flaky"] += 1
        for _ in range(ERRORS):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(
                    model="down", messages=[{"role": "user", "content": "hello"}]
                )
            sent["down"] += 1
    return sent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = prometheus_binary()
    if binary is None:
        message = "prometheus is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("QUANTTRAP_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("prometheus")
    procs: list[Process] = []
    prom: PrometheusProcess | None = None
    try:
        agent_port = free_port()
        agent = Process(
            [sys.executable, "-m", "tests.integration.fake_gpu_agent", "--port",
             str(agent_port), "--power-w", *map(str, GPU_POWER_W)],
            agent_port,
            work / "agent.log",
        )  # fmt: skip
        procs.append(agent)
        agent.wait_http("/healthz")
        ups = {name: start_upstream(name, work, reply_words=12) for name in (*UPSTREAMS, "fail")}
        procs.extend(ups.values())
        for name, (_, accuracy, delay) in UPSTREAMS.items():
            config = {"solve": {"accuracy": accuracy}, "chunk_delay_ms": delay, "reply_words": 12}
            httpx.post(ups[name].url + "/_double/config", json=config).raise_for_status()
        httpx.post(ups["fail"].url + "/_double/config", json={"status": 503}).raise_for_status()
        config_path = work / "quanttrap.yaml"
        config_path.write_text(json.dumps(_config(ups, agent, work / "log.sqlite3")))
        # The rules the operator would export for this config, alerts due after 1 s. The
        # proxy declares its HTTP upstreams' memory; the rules are generated WITHOUT it: they
        # must read it from the proxy's quanttrap_variant_memory_bytes.
        settings = load_settings(config_path)
        scoring = settings.scoring.model_copy(update={"memory_gb": {}})
        files = render_all(RuleOptions(scoring=scoring, alert_for="1s"))
        recording = files["rules/quanttrap-recording.yaml"]
        assert Series.VARIANT_MEMORY in recording and "vector(" not in recording
        write_all(files, work / "export")
        proxy_port = free_port()
        prom = PrometheusProcess(
            binary,
            work,
            [f"127.0.0.1:{proxy_port}"],
            sorted((work / "export" / "rules").glob("*.yaml")),
        )
        proxy = Process(
            [*quanttrap_command(), "serve", "--config", str(config_path), "--port",
             str(proxy_port)],
            proxy_port,
            work / "proxy.log",
        )  # fmt: skip
        procs.append(proxy)
        proxy.wait_http("/healthz", timeout=60)
        prom.wait_for('up{job="quanttrap"} == 1')
        sent = _send_traffic(proxy.url)
        yield Stack(prom, proxy, sent)
    finally:
        if prom is not None:
            prom.stop()
        for proc in reversed(procs):
            proc.stop()


def _settle(prom: PrometheusProcess, expr: str, want: float, timeout: float = 20.0) -> float:
    """Poll a counter query until it reaches ``want`` (scrapes lag the traffic by ~1 s)."""
    deadline = time.monotonic() + timeout
    got = prom.value(expr)
    while (got is None or got < want) and time.monotonic() < deadline:
        time.sleep(0.25)
        got = prom.value(expr)
    assert got is not None, f"{expr}: no data"
    return got


# -- issue 4: names, labels and counts ---------------------------------------------------------


def test_request_metrics_count_what_was_sent(stack: Stack) -> None:
    prom, sent = stack.prometheus, stack.sent
    users = sent["demo"] + sent["flaky"] + sent["down"]
    primary = f'{Label.ROLE}="primary"'
    assert _settle(prom, f"sum({Series.REQUESTS}{{{primary}}})", users) == users
    assert prom.value(f"sum({Series.REQUEST_DURATION}_count{{{primary}}})") == users
    # Every demo request was shadowed to nf4 (the cap is far above the client's concurrency).
    shadow = f'{Label.ROLE}="shadow"'
    shadows = _settle(prom, f"sum({Series.REQUESTS}{{{shadow}}})", sent["demo"])
    copies = {
        r["metric"][Label.SHADOW_OUTCOME]: float(r["value"][1])
        for r in prom.query(f"sum by ({Label.SHADOW_OUTCOME}) ({Series.SHADOW_COPIES})")
    }
    assert shadows == sent["demo"] and copies == {"sent": shadows, "completed": shadows}, copies
    by_model = {
        r["metric"][Label.MODEL]: float(r["value"][1])
        for r in prom.query(f"sum by ({Label.MODEL}) ({Series.REQUESTS}{{{primary}}})")
    }
    assert by_model == {"demo": sent["demo"], "flaky": sent["flaky"], "down": sent["down"]}
    # Streams: one TTFT each; output tokens: exactly what the client was told in `usage`.
    demo = f'{Label.MODEL}="demo",{primary}'
    assert prom.value(f"sum({Series.TIME_TO_FIRST_TOKEN}_count{{{demo}}})") == sent["streamed_ok"]
    output = f'{demo},{Label.TOKEN_TYPE}="output"'
    assert prom.value(f"sum({Series.TOKEN_USAGE}_sum{{{output}}})") == sent["output_tokens_demo"]
    assert prom.value(f"sum({Series.FAILOVERS})") == sent["flaky"]
    errors = f'{Label.MODEL}="down",{Label.STATUS_CLASS}="5xx"'
    assert prom.value(f"sum({Series.REQUESTS}{{{errors}}})") == sent["down"]
    graded = f'{Label.MODEL}="demo"'
    assert _settle(prom, f"sum({Series.EVAL_GRADED}{{{graded}}})", 2 * sent["demo"]) == (
        2 * sent["demo"]  # the primary's answer and its shadow copy's, both graded
    )
    # The documented label set of the request counter (OpenTelemetry's exporter + scrape).
    series = prom.query(f'{Series.REQUESTS}{{{Label.MODEL}="demo",{primary}}}')
    assert series
    assert set(series[0]["metric"]) == {
        "__name__", "job", "instance", Label.MODEL, Label.VARIANT, Label.ROLE, Label.BUCKET,
        Label.STATUS_CLASS, "gen_ai_operation_name", "gen_ai_provider_name",
        "quanttrap_precision_bits",
    }  # fmt: skip
    methods = {
        r["metric"][Label.VARIANT]: r["metric"][Label.ENERGY_METHOD]
        for r in prom.query(f'{Series.ENERGY_METHOD_INFO}{{{Label.MODEL}="demo"}} == 1')
    }
    assert methods == {"bf16": "nvml_counter", "nf4": "nvml_counter"}


# -- issue 6: dashboards, recording rules, alerts ------------------------------------------------

_SUBSTITUTIONS = {
    "$model": ".*",
    "$variant": ".*",
    "$bucket": ".*",
    "$__rate_interval": "1m",
    "$__range": "10m",
}
_LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+), (?P<label>\w+)\)$")


def _substitute(expr: str) -> str:
    for name, value in _SUBSTITUTIONS.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    prom = stack.prometheus
    # The fleet-wide SI needs both sides' sample gates: wait until the rules produce it.
    assert prom.wait_for(f'{Record.SI}{{{Label.VARIANT}="nf4"}}', timeout=30)
    empty = []
    for path, text in sorted(render_all().items()):
        if not path.startswith("dashboards/"):
            continue
        board = json.loads(text)
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            found = _LABEL_VALUES.match(variable["query"])
            assert found, variable["query"]
            match = _substitute(found["match"])
            if not prom.label_values(found["label"], match):
                empty.append(f"{path}: variable {variable['name']}")
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = _substitute(target["expr"])
                if not prom.wait_for(expr, timeout=5):
                    empty.append(f"{path}: {panel['title']!r}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def _status_row(url: str, variant: str) -> dict[str, Any]:
    status = httpx.get(url + "/quanttrap/v1/status", timeout=5).json()
    model = next(m for m in status["models"] if m["model"] == "demo")
    v = next(x for x in model["variants"] if x["variant"] == variant)
    row: dict[str, Any] = next(
        b for b in v["buckets"] if b["batch_size_bucket"] == v["headline_bucket"]
    )
    return {"variant": v, "row": row}


def test_recorded_si_matches_the_proxy(stack: Stack) -> None:
    prom, url = stack.prometheus, stack.proxy.url
    nf4 = f'{Label.MODEL}="demo",{Label.VARIANT}="nf4"'
    assert prom.wait_for(f"{Record.SI}{{{nf4}}}", timeout=30)
    time.sleep(2.0)  # two more scrapes and evaluations after the last counter moved
    proxy = _status_row(url, "nf4")["row"]
    bucket = proxy["batch_size_bucket"]
    selector = f'{nf4},{Label.BUCKET}="{bucket}"'
    fleet_si = prom.value(f"{Record.SI}{{{selector}}}")
    assert fleet_si is not None and proxy["si"] is not None
    pillars = {
        name: prom.value(
            f'{Record.PILLAR}{{{selector},{Label.PILLAR}="{name}",{Label.BOUNDED}="false"}}'
        )
        for name in ("trust", "economic", "energy")
    }
    report = {
        "si": (fleet_si, proxy["si"]["estimate"]),
        **{n: (pillars[n], proxy["pillars"][n]["raw"]["estimate"]) for n in pillars},
        "cor": (prom.value(f"{Record.COR}{{{selector}}}"), proxy["cor"]["estimate"]),
    }
    print("fleet vs proxy (nf4):", json.dumps(report))
    assert abs(fleet_si - proxy["si"]["estimate"]) <= SI_TOLERANCE, report
    for name, (fleet, own) in report.items():
        assert fleet is not None and abs(fleet - own) <= SI_TOLERANCE, (name, report)
    anchor_si = prom.value(f'{Record.SI}{{{Label.MODEL}="demo",{Label.VARIANT}="bf16"}}')
    assert anchor_si == 1.0


def test_memory_is_exported_and_the_rules_use_it(stack: Stack) -> None:
    """The declared memory of the HTTP upstreams reaches the fleet SI through the gauge."""
    prom = stack.prometheus
    exported = {
        (r["metric"][Label.VARIANT], r["metric"][Label.MEMORY_METHOD]): float(r["value"][1])
        for r in prom.query(f'{Series.VARIANT_MEMORY}{{{Label.MODEL}="demo"}}')
    }
    assert exported == {("bf16", "config"): 14e9, ("nf4", "config"): 5e9}, exported
    # Variants whose memory nobody knows ("flaky", "down") export nothing, never a zero.
    assert prom.query(f'{Series.VARIANT_MEMORY}{{{Label.MODEL}!="demo"}}') == []
    recorded = {
        r["metric"][Label.VARIANT]: float(r["value"][1])
        for r in prom.query(f'{Record.MEMORY}{{{Label.MODEL}="demo"}}')
    }
    assert recorded == {"bf16": 14.0, "nf4": 5.0}
    economic = prom.value(
        f'{Record.PILLAR}{{{Label.MODEL}="demo",{Label.VARIANT}="nf4",'
        f'{Label.PILLAR}="economic",{Label.BOUNDED}="false"}}'
    )
    assert economic is not None


def test_accuracy_by_depth_panel_returns_every_depth_sent(stack: Stack) -> None:
    """The graded counter carries the client's depth tags; the panel's queries read them."""
    prom, sent = stack.prometheus, stack.sent
    primary = f'{Label.MODEL}="demo",{Label.ROLE}="primary"'
    _settle(prom, f"sum({Series.EVAL_GRADED}{{{primary}}})", sent["demo"])
    by_depth = {
        r["metric"][Label.DEPTH_BUCKET]: float(r["value"][1])
        for r in prom.query(f"sum by ({Label.DEPTH_BUCKET}) ({Series.EVAL_GRADED}{{{primary}}})")
    }
    want = {k.removeprefix("depth:"): v for k, v in sent.items() if k.startswith("depth:")}
    assert by_depth == want and "unknown" not in by_depth, (by_depth, want)
    accuracy, low, high = (
        {
            (r["metric"][Label.VARIANT], r["metric"][Label.DEPTH_BUCKET]): float(r["value"][1])
            for r in prom.query(_substitute(expr))
        }
        for expr in depth_accuracy_queries()
    )
    assert {d for v, d in accuracy if v == "bf16"} == set(want), accuracy
    # The panel's interval is the in-process Wilson interval of the counts it read.
    for depth in want:
        row = f'{Label.MODEL}="demo",{Label.VARIANT}="bf16",{Label.DEPTH_BUCKET}="{depth}"'
        n = prom.value(f"sum({Series.EVAL_GRADED}{{{row}}})")
        c = prom.value(f'sum({Series.EVAL_GRADED}{{{row},{Label.OUTCOME}="correct"}})') or 0.0
        assert n is not None
        expected = wilson_interval(int(c), int(n))
        got = (accuracy["bf16", depth], low["bf16", depth], high["bf16", depth])
        assert got == pytest.approx((expected.estimate, expected.low, expected.high)), depth


def test_trap_and_fleet_alerts_fire(stack: Stack) -> None:
    prom, url = stack.prometheus, stack.proxy.url
    want = {
        "QuanttrapFullTrap",
        "QuanttrapEnergyInversion",
        "QuanttrapAccuracyDrop",
        "QuanttrapShadowDisagreement",
    }
    deadline = time.monotonic() + 30
    firing: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and not want <= set(firing):
        firing = {
            a["labels"]["alertname"]: a
            for a in prom.alerts()
            if a["state"] == "firing" and a["labels"].get(Label.VARIANT) == "nf4"
        }
        time.sleep(0.5)
    state = _status_row(url, "nf4")["variant"]
    assert want <= set(firing), (sorted(firing), state["regime"], state["trap"])
    assert state["regime"] == "full_trap" and state["trap"] is True
    trap = firing["QuanttrapFullTrap"]
    assert trap["labels"]["severity"] == "critical"
    assert trap["annotations"]["runbook_url"].endswith("/docs/runbooks/QuanttrapFullTrap.md")
    description = trap["annotations"]["description"]
    assert "not measured" not in description, description  # the fleet numbers are quoted
    assert "SI 0." in description, description
    # Nothing fires for the anchor, and no telemetry alert fires when telemetry works.
    others = {a["labels"]["alertname"] for a in prom.alerts() if a["state"] == "firing"}
    assert "QuanttrapEnergyTelemetryMissing" not in others
    assert not any(
        a["labels"].get(Label.VARIANT) == "bf16" and a["labels"].get(Label.MODEL) == "demo"
        for a in prom.alerts()
    )
