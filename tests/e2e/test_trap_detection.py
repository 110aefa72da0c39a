"""End to end: the running proxy detects a quantization trap from live evaluation traffic.

``quanttrap serve`` (a real process) fronts three fake upstream processes that answer
multi-hop questions with controlled accuracy and speed (the fake_upstream TEST DOUBLE's
``solve`` mode): ``nf4`` is slower and less accurate than the ``bf16`` anchor, ``int8`` as
accurate and faster. Evidence comes from canaries (the proxy's own probes, at a high rate)
and from client-tagged requests sent with the official ``openai`` client. No energy exists
here (method ``none``): the regime must be decided from accuracy and speed alone, and the
status must say energy is unavailable.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from scoring.datasets.multihop import as_chat_messages, generate
from tests.doubles.processes import Process, quanttrap_command, start_proxy, start_upstream

pytestmark = pytest.mark.slow

UPSTREAMS = {  # name: (bits, accuracy, delay between streamed tokens in ms)
    "bf16": (16, 0.95, 8),
    "nf4": (4, 0.55, 20),
    "int8": (8, 0.95, 4),
}


def _config(ups: dict[str, Process], store: Path, *, canary: bool) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "demo",
                "anchor": "bf16",
                "routing": {"primary": "bf16"},
                "variants": [
                    {
                        "name": name,
                        "bits": bits,
                        "backend": {"kind": "openai", "base_url": ups[name].url + "/v1"},
                    }
                    for name, (bits, _, _) in UPSTREAMS.items()
                ],
            }
        ],
        "scoring": {
            "window_s": 600,
            "slot_s": 5,
            "recompute_interval_s": 0.5,
            "trap": {"min_graded": 20, "min_requests": 10},
            # Canaries as fast as the variants answer: no CPU or busy-time budget holds them.
            "canary": {
                "enabled": canary,
                "rate_per_minute": 1200,
                "max_tokens": 64,
                "cpu_budget": 64,
                "busy_budget": 1,
            },
            "store": {"path": str(store)},
        },
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    logs = tmp_path_factory.mktemp("trap")
    procs: dict[str, Process] = {}
    try:
        for name, (_, accuracy, delay) in UPSTREAMS.items():
            procs[name] = start_upstream(name, logs, reply_words=12)
            config = {"solve": {"accuracy": accuracy}, "chunk_delay_ms": delay, "reply_words": 12}
            httpx.post(procs[name].url + "/_double/config", json=config).raise_for_status()
        path = logs / "quanttrap.yaml"
        store = logs / "data" / "quanttrap.sqlite3"
        path.write_text(json.dumps(_config(procs, store, canary=True)))
        procs["proxy"] = start_proxy(path, logs)
        yield {"procs": procs, "logs": logs, "store": store}
    finally:
        for proc in procs.values():
            proc.stop()


def _status(url: str) -> dict[str, Any]:
    resp = httpx.get(url + "/quanttrap/v1/status", timeout=5)
    resp.raise_for_status()
    return resp.json()  # type: ignore[no-any-return]


def _variants(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["variant"]: v for v in status["models"][0]["variants"]}


def _wait_for(url: str, want: dict[str, str], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = _status(url)
        got = {name: v["regime"] for name, v in _variants(status).items()}
        if all(got[name] == regime for name, regime in want.items()):
            return status
        time.sleep(0.25)
    raise AssertionError(f"regimes not reached in {timeout}s: {json.dumps(status)[:3000]}")


def test_tagged_traffic_from_the_openai_client_is_graded(stack: dict[str, Any]) -> None:
    proxy = stack["procs"]["proxy"]
    items = generate(10, seed=99)
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0) as client:
        for variant in UPSTREAMS:
            for item in items:
                stream = client.chat.completions.create(
                    model="demo",
                    messages=as_chat_messages(item),  # type: ignore[arg-type]
                    metadata={"expected_answer": str(item.answer), "dataset": "multihop"},
                    extra_headers={"X-Quanttrap-Variant": variant},
                    stream=True,
                )
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                assert "####" in text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        variants = _variants(_status(proxy.url))
        roles = httpx.get(proxy.url + "/quanttrap/v1/evaluations?role=primary&limit=1000").json()
        if len(roles["data"]) >= 30:
            break
        time.sleep(0.25)
    assert {r["variant"] for r in roles["data"]} == set(UPSTREAMS)
    assert all(r["dataset"] == "multihop" and r["prompt"] is None for r in roles["data"])
    assert all(v["buckets"][0]["samples"]["graded"] >= 10 for v in variants.values())


def test_status_reports_the_trap_and_the_good_variant(stack: dict[str, Any]) -> None:
    url = stack["procs"]["proxy"].url
    status = _wait_for(url, {"nf4": "full_trap", "int8": "no_trap"})

    def headline(status: dict[str, Any]) -> dict[str, Any]:
        nf4 = _variants(status)["nf4"]
        return next(r for r in nf4["buckets"] if r["batch_size_bucket"] == nf4["headline_bucket"])

    # The regime can be reached on tagged traffic before any canary round has paired up (a
    # slow, loaded machine): wait, bounded, for the paired evidence too.
    deadline = time.monotonic() + 30
    while not headline(status)["paired"]["anchor_only"] and time.monotonic() < deadline:
        time.sleep(0.25)
        status = _status(url)
    variants = _variants(status)
    nf4, int8 = variants["nf4"], variants["int8"]
    assert nf4["trap"] is True and int8["trap"] is False
    row = headline(status)
    assert row["significant"]["less_accurate"] is True and row["significant"]["slower"] is True
    assert row["accuracy_difference"]["high"] < -0.01
    assert row["cor"]["low"] > 0  # significantly slower than the anchor
    assert row["paired"]["anchor_only"] > row["paired"]["variant_only"]  # canary rounds pair
    # No energy was measured: said so, never a zero, and the regime came without it.
    assert row["energy"]["available"] is False and row["energy"]["method"] == "none"
    assert row["energy"]["j_per_query"] is None and row["energy_considered"] is False
    assert row["si"] is None and row["pillars"]["energy"]["raw"] is None
    good = next(r for r in int8["buckets"] if r["batch_size_bucket"] == int8["headline_bucket"])
    assert good["cor"]["high"] < 0  # faster
    assert good["significant"] == {"less_accurate": False, "slower": False, "more_energy": None}
    assert status["canary"]["enabled"] and status["counters"]["graded"] > 60


def test_metrics_report_the_trap(stack: dict[str, Any]) -> None:
    url = stack["procs"]["proxy"].url
    _wait_for(url, {"nf4": "full_trap", "int8": "no_trap"})
    resp = httpx.get(url + "/metrics", timeout=5)
    assert resp.status_code == 200
    text = resp.text
    nf4 = 'quanttrap_variant="nf4"'

    def value(metric: str, *labels: str) -> float:
        for line in text.splitlines():
            if line.startswith(metric + "{") and all(label in line for label in labels):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{metric} {labels} not in /metrics")

    assert value("quanttrap_regime", nf4, 'quanttrap_regime_name="full_trap"') == 1.0
    assert value("quanttrap_regime", nf4, 'quanttrap_regime_name="no_trap"') == 0.0
    assert value("quanttrap_regime", 'quanttrap_variant="int8"', 'name="no_trap"') == 1.0
    assert value("quanttrap_trap", nf4) == 1.0
    assert value("quanttrap_trap", 'quanttrap_variant="int8"') == 0.0
    assert value("quanttrap_cor", nf4) > 0
    assert value("quanttrap_window_samples", nf4, 'quanttrap_samples_kind="graded"') >= 20
    assert value("quanttrap_eval_graded_total", nf4, 'quanttrap_eval_outcome="incorrect"') > 0
    assert not any(line.startswith("quanttrap_si{") and nf4 in line for line in text.splitlines())


def test_status_cli_prints_the_table_and_the_wrong_answers(stack: dict[str, Any]) -> None:
    url = stack["procs"]["proxy"].url
    _wait_for(url, {"nf4": "full_trap"})
    cli = [*quanttrap_command(), "status", "--url", url]
    table = subprocess.run(cli, capture_output=True, text=True, timeout=30, check=True).stdout
    nf4_line = next(line for line in table.splitlines() if line.split()[:2] == ["demo", "nf4"])
    assert "full_trap" in nf4_line and "TRAP" in nf4_line and "unavailable" in nf4_line
    as_json = subprocess.run(
        [*cli, "--json"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert _variants(json.loads(as_json))["nf4"]["regime"] == "full_trap"
    wrong = subprocess.run(
        [*cli, "--wrong", "nf4", "--limit", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    rows = wrong.strip().splitlines()[1:]
    assert len(rows) == 5 and all(" nf4 " in r for r in rows)
    assert any("multihop/seed0/" in r for r in rows)  # canaries name their dataset item
    down = subprocess.run(
        [*quanttrap_command(), "status", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_a_restart_keeps_the_evidence(stack: dict[str, Any]) -> None:
    procs, logs = stack["procs"], stack["logs"]
    before = _variants(_wait_for(procs["proxy"].url, {"nf4": "full_trap"}))["nf4"]
    procs["proxy"].stop()  # SIGTERM: the log is flushed on shutdown
    path = logs / "restart.yaml"
    path.write_text(json.dumps(_config(procs, stack["store"], canary=False)))
    procs["proxy"] = start_proxy(path, logs)  # no canaries, no traffic: only the log
    status = _wait_for(procs["proxy"].url, {"nf4": "full_trap", "int8": "no_trap"}, 10)
    after = _variants(status)["nf4"]
    graded_before = sum(r["samples"]["graded"] for r in before["buckets"])
    graded_after = sum(r["samples"]["graded"] for r in after["buckets"])
    assert graded_after >= graded_before
    assert status["counters"]["reloaded_evaluations"] >= graded_after
    assert status["counters"]["records"] == 0  # nothing new arrived: it is all reloaded
