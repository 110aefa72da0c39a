"""End to end: ``kill -9`` right after the last answer loses no graded evaluation.

``quanttrap serve`` (a real process) fronts a fake upstream process (TEST DOUBLE of an
OpenAI-compatible server). N tagged requests are answered, the proxy is killed with SIGKILL
the moment the last answer is in, then started again on the same evaluation log: the log must
hold N evaluations. The grading pass is set to run rarely, so only the journal (committed
before the response's last byte) can have stored them.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.doubles.processes import Process, start_proxy, start_upstream

pytestmark = pytest.mark.slow

N = 50


def _count(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_kill_9_after_the_last_answer_keeps_every_evaluation(tmp_path: Path, stream: bool) -> None:
    upstream = start_upstream("bf16", tmp_path, reply_words=6)
    store = tmp_path / "data" / "log.sqlite3"
    config = tmp_path / "quanttrap.yaml"
    variant = {"name": "bf16", "bits": 16,
               "backend": {"kind": "openai", "base_url": upstream.url + "/v1"}}  # fmt: skip
    config.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "demo",
                        "anchor": "bf16",
                        "routing": {"primary": "bf16"},
                        "variants": [variant],
                    }
                ],
                "scoring": {"recompute_interval_s": 600, "store": {"path": str(store)}},
            }
        )
    )
    procs: list[Process] = [upstream]
    try:
        proxy = start_proxy(config, tmp_path)
        procs.append(proxy)
        body = {"model": "demo", "messages": [{"role": "user", "content": "6 * 7?"}]}
        if stream:
            body["stream"] = True
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            for i in range(N):
                resp = client.post(
                    "/v1/chat/completions",
                    json=body,
                    headers={"X-Quanttrap-Expected": "42", "X-Request-Id": f"kill-{i}"},
                )
                assert resp.status_code == 200, resp.text
        proxy.proc.send_signal(signal.SIGKILL)  # the moment the last answer is in
        proxy.proc.wait()
        proxy.stop()
        restarted = start_proxy(config, tmp_path)
        procs.append(restarted)
        assert _count(store) == N
    finally:
        for proc in procs:
            proc.stop()
