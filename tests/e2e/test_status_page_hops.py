"""The status page's agent-hop table, rendered by headless Chromium from a real HTTP server.

Simulated shadow pairs (the primary always calls ``get_weather``; the shadow calls the wrong
tool, the wrong arguments or answers text more often at later hops for ``nf4``, at a flat
rate for ``awq``) are fed to live scoring; Chromium loads ``/quanttrap/`` and the test reads
the rendered table: agreement per hop bucket, the trend's answer and what differed.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.records import RequestRecord, ShadowPair, ToolCall
from proxy.app import QuanttrapApp
from proxy.scoring_runtime import ScoringRuntime
from proxy.status import add_status_routes
from quanttrap.settings import settings_from_mapping
from tests.doubles.scripted_backend import ScriptedBackend
from tests.e2e.test_status_page import _chromium, _run_chromium

pytestmark = pytest.mark.slow

WEATHER = ToolCall("get_weather", '{"city": "Paris"}')
WRONG = (
    (ToolCall("get_weather", '{"city": "Lyon"}'),),
    (ToolCall("search", '{"q": "weather"}'),),
    (),
)
HOPS = (0, 0, 1, 2, 3, 5, 9)


def _record(variant: str, i: int, hop: int, calls: tuple[ToolCall, ...]) -> RequestRecord:
    return RequestRecord(
        request_id=f"{i}-{variant}",
        model="agent",
        variant=variant,
        bits=16 if variant == "bf16" else 4,
        role="primary" if variant == "bf16" else "shadow",
        operation="chat",
        stream=False,
        status=200,
        started_at=time.time() - 1,
        duration_s=0.5,
        text="" if calls else "It is sunny.",
        tool_calls=calls,
        agent_turns_before=hop,
        pair_id=str(i),
    )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    variants = (("bf16", 16), ("nf4", 4), ("awq", 4))
    settings = settings_from_mapping(
        {
            "models": [
                {
                    "name": "agent",
                    "anchor": "bf16",
                    "routing": {"primary": "bf16"},
                    "variants": [
                        {"name": n, "bits": b,
                         "backend": {"kind": "openai", "base_url": f"http://127.0.0.1:1/{n}"}}
                        for n, b in variants
                    ],
                }
            ],
            "scoring": {"store": {"enabled": False}},
        }
    )  # fmt: skip
    backends = {("agent", n): ScriptedBackend(n) for n, _ in variants}
    app = QuanttrapApp(settings, backends, environ={})
    runtime = ScoringRuntime(settings, backends)
    add_status_routes(app, runtime)
    rng = random.Random(1)
    for i in range(600):
        hop = rng.choice(HOPS)
        for shadow, rate in (("nf4", 0.05 + 0.04 * hop), ("awq", 0.04)):
            calls = (WEATHER,) if rng.random() > rate else rng.choice(WRONG)
            pair = ShadowPair(
                str(i), _record("bf16", i, hop, (WEATHER,)), _record(shadow, i, hop, calls)
            )
            runtime.pair_sink(pair)
    runtime.snapshot = runtime._work(time.time(), runtime._memory())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_the_status_api_says_nf4_disagrees_more_after_the_first_hop(server: str) -> None:
    status = httpx.get(server + "/quanttrap/v1/status").json()
    pairs = {a["shadow"]: a for a in status["models"][0]["shadow_agreement"]}
    assert pairs["nf4"]["hop_trend"]["grows"] is True
    assert pairs["awq"]["hop_trend"]["grows"] is False
    assert [h["hop_bucket"] for h in pairs["nf4"]["by_hop"]] == [
        "0", "1", "2", "3-4", "5-8", "9-16"
    ]  # fmt: skip


def test_the_page_shows_agreement_by_hop(server: str, tmp_path: Path, require_tools: bool) -> None:
    binary = _chromium()
    if binary is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if require_tools:
            pytest.fail(message)
        pytest.skip(message)
    dom = _run_chromium(binary, tmp_path, "--dump-dom", server + "/quanttrap/")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    start = html.find("Shadow agreement by agent hop")
    assert start >= 0, html[:2000]
    table = html[start : html.find("</table>", start)]
    for bucket in ("0", "1", "2", "3-4", "5-8", "9-16"):
        assert f"<th>hop {bucket}</th>" in table
    nf4 = table[table.find("<b>nf4</b>") :]
    awq = table[table.find("<b>awq</b>") : table.find("<b>nf4</b>")]
    assert '<span class="trap-on">grows</span>' in nf4
    assert "not shown to grow" in awq and "valid at every look" in awq
    assert "wrong tool" in nf4 and "wrong arguments" in nf4 and "text instead of call" in nf4
