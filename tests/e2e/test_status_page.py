"""The built-in status page, rendered by headless Chromium from a real HTTP server.

The proxy app is served by uvicorn on a real socket; its live scoring is fed ten minutes of
simulated evaluation traffic whose per-variant means are the paper's published A100 /
Mistral-7B / GSM8K figures (FP16 43.1 %, 44.6 tok/s, 311.7 J/query; NF4 39.4 %, 36.5 tok/s,
503.1 J; AWQ 40.7 %, 45.9 tok/s, 184.7 J) plus an LLM.int8() variant, with NVML-counter
energy and declared memory, so that every column and both charts have data. Chromium loads
``/quanttrap/``, runs its JavaScript (which polls the status API) and the test checks the
rendered DOM; a screenshot is written too. ``QUANTTRAP_UPDATE_SCREENSHOT=1`` copies it to
``docs/status_page.png``.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.records import RequestRecord
from proxy.app import QuanttrapApp
from proxy.scoring_runtime import ScoringRuntime
from proxy.status import add_status_routes
from quanttrap.settings import settings_from_mapping
from tests.doubles.scripted_backend import ScriptedBackend

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = ROOT / "docs" / "status_page.png"
START = 1_800_000_000.0
MINUTES = 10
PROFILES = {  # variant: (bits, accuracy, tokens/s, J/query, memory GB)
    "fp16": (16, 0.4314, 44.6, 311.7, 14.5),
    "int8": (8, 0.4290, 14.2, 980.0, 8.1),
    "nf4": (4, 0.3942, 36.5, 503.1, 4.5),
    "awq": (4, 0.4071, 45.9, 184.7, 4.2),
}


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _simulate(runtime: ScoringRuntime, clock: list[float]) -> None:
    """Ten minutes of graded traffic, recomputed every 5 s as the live loop would."""
    rng = random.Random(2602)
    step = 5.0
    for tick in range(int(MINUTES * 60 / step)):
        clock[0] = START + tick * step
        # GSM8K-like prompts, each asked of every variant (canary rounds): 1,920 paired rounds
        # in ten minutes, enough for the anytime-valid verdict to put nf4's 3.7-point accuracy
        # loss beyond δ (with 8 a tick, 960 rounds, it is "efficiency trap" only).
        for _ in range(16):
            difficulty = rng.random()
            key = f"round-{tick}-{rng.random()}"
            for name, (bits, acc, tps, joules, _) in PROFILES.items():
                tokens = rng.randint(120, 260)
                ttft = 0.05
                duration = ttft + (tokens - 1) / (tps * rng.uniform(0.93, 1.07))
                record = RequestRecord(
                    request_id=f"{key}-{name}",
                    model="mistral-7b",
                    variant=name,
                    bits=bits,
                    role="canary",
                    operation="chat",
                    stream=True,
                    status=200,
                    started_at=clock[0] - duration,
                    duration_s=duration,
                    time_to_first_token_s=ttft,
                    completion_tokens=tokens,
                    text=f"#### {1 if difficulty < acc + rng.gauss(0, 0.04) else 2}",
                    batch_size=1,
                    expected_answer="1",
                    dataset="gsm8k",
                    energy_j=joules * tokens / 190 * rng.uniform(0.95, 1.05),
                    energy_method="nvml_counter",
                )
                runtime.register_canary(record.request_id, f"gsm8k/test/{tick}", key)
                runtime.record_sink(record)
        snapshot = runtime._work(clock[0], runtime._memory())
        runtime.snapshot = snapshot
        runtime.history.maybe_record(snapshot)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    settings = settings_from_mapping(
        {
            "models": [
                {
                    "name": "mistral-7b",
                    "anchor": "fp16",
                    "routing": {"primary": "fp16"},
                    "variants": [
                        {
                            "name": n,
                            "bits": p[0],
                            "backend": {"kind": "openai", "base_url": f"http://127.0.0.1:1/{n}"},
                        }
                        for n, p in PROFILES.items()
                    ],
                }
            ],
            "scoring": {
                "window_s": MINUTES * 60,
                "slot_s": 15,
                "history_interval_s": 10,
                "store": {"enabled": False},
                "memory_gb": {"mistral-7b": {n: p[4] for n, p in PROFILES.items()}},
            },
        }
    )
    backends = {("mistral-7b", n): ScriptedBackend(n) for n in PROFILES}
    app = QuanttrapApp(settings, backends, environ={})
    clock = [START]
    runtime = ScoringRuntime(settings, backends, clock=lambda: clock[0])
    shadows = app.service.shadows
    runtime.shadow_coverage = lambda: {m: d.sampler.stats() for m, d in shadows.items()}
    add_status_routes(app, runtime)
    _simulate(runtime, clock)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


def _run_chromium(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{time.monotonic_ns()}"
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def test_status_api_serves_the_simulated_table(server: str) -> None:
    status = httpx.get(server + "/quanttrap/v1/status").json()
    variants = {v["variant"]: v for v in status["models"][0]["variants"]}
    assert variants["nf4"]["regime"] == "full_trap" and variants["nf4"]["trap"]
    assert variants["int8"]["regime"] == "efficiency_trap"
    assert len(variants["nf4"]["history"]) == MINUTES * 6
    row = variants["nf4"]["buckets"][0]
    assert row["si"]["low"] < row["si"]["estimate"] < row["si"]["high"]
    assert row["energy"]["method"] == "nvml_counter"


def test_page_renders_in_headless_chromium(
    server: str, tmp_path: Path, require_tools: bool
) -> None:
    binary = _chromium()
    if binary is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if require_tools:
            pytest.fail(message)
        pytest.skip(message)
    url = server + "/quanttrap/"
    dom = _run_chromium(binary, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-rendered="' in html, html[:2000]  # the script fetched and drew the status
    for variant in PROFILES:
        assert f"<b>{variant}</b>" in html
    assert 'class="badge full_trap"' in html and 'class="badge efficiency_trap"' in html
    assert html.count("<polyline") >= 6  # SI and energy lines for the variants
    assert "nvml_counter" in html and "status unavailable" not in html
    assert "data-shadow-coverage" in html and "Shadow copies" in html  # per-bucket shares

    shot = tmp_path / "status_page.png"
    result = _run_chromium(binary, tmp_path, f"--screenshot={shot}", url)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("QUANTTRAP_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_the_documented_screenshot_exists() -> None:
    data = DOCS_SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 900)
