"""End to end: ``kill -9`` loses no graded evaluation that a client was answered.

``quanttrap serve`` (a real process) fronts a fake upstream process (TEST DOUBLE of an
OpenAI-compatible server). N tagged requests are answered, the proxy is killed with SIGKILL
the moment the last answer is in, then started again on the same evaluation log: the log must
hold N evaluations. The grading pass is set to run rarely, so only the journal (committed
before the response's last byte) can have stored them.

The second test kills the proxy while tagged streams are still running: every answered
request is in the log, nothing that was never sent is, the file passes SQLite's integrity
check, and the restarted proxy answers and journals again.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
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


def _stored_request_ids(store: Path) -> set[str]:
    with sqlite3.connect(store) as conn:
        keys = conn.execute("SELECT record_key FROM evaluations").fetchall()
    return {str(key).split("/", 1)[0] for (key,) in keys}


def _config(tmp_path: Path, upstream: Process, store: Path) -> Path:
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
    return config


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_kill_9_after_the_last_answer_keeps_every_evaluation(tmp_path: Path, stream: bool) -> None:
    upstream = start_upstream("bf16", tmp_path, reply_words=6)
    store = tmp_path / "data" / "log.sqlite3"
    config = _config(tmp_path, upstream, store)
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


def test_kill_9_mid_stream_keeps_every_answered_evaluation(tmp_path: Path) -> None:
    upstream = start_upstream("bf16", tmp_path, reply_words=40)
    # 40 words, a chunk every 25 ms: each stream runs about a second.
    httpx.post(upstream.url + "/_double/config", json={"chunk_delay_ms": 25, "reply_words": 40})
    store = tmp_path / "data" / "log.sqlite3"
    config = _config(tmp_path, upstream, store)
    procs: list[Process] = [upstream]
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "6 * 7?"}]}
    answered: set[str] = set()
    started = threading.Barrier(9)  # 8 streams under way, and the test
    lock = threading.Lock()

    def stream(request_id: str, barrier: threading.Barrier | None) -> None:
        headers = {"X-Quanttrap-Expected": "42", "X-Request-Id": request_id}
        try:
            with (
                httpx.Client(base_url=proxy.url, timeout=30) as client,
                client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp,
            ):
                for i, line in enumerate(resp.iter_lines()):
                    if i == 1 and barrier is not None:
                        barrier.wait(timeout=30)  # the first event is in: mid-stream
                    if line == "data: [DONE]":
                        with lock:
                            answered.add(request_id)
        except httpx.HTTPError:
            pass  # cut by the kill: not answered

    try:
        proxy = start_proxy(config, tmp_path)
        procs.append(proxy)
        for i in range(6):  # answered before the kill
            stream(f"before-{i}", None)
        threads = [threading.Thread(target=stream, args=(f"cut-{i}", started)) for i in range(8)]
        for thread in threads:
            thread.start()
        started.wait(timeout=30)
        proxy.proc.send_signal(signal.SIGKILL)
        proxy.proc.wait()
        for thread in threads:
            thread.join(timeout=30)
        proxy.stop()

        sent = {f"before-{i}" for i in range(6)} | {f"cut-{i}" for i in range(8)}
        assert {f"before-{i}" for i in range(6)} <= answered
        assert not any(r.startswith("cut-") for r in answered)  # the kill came mid-stream
        with sqlite3.connect(store) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = _stored_request_ids(store)
        assert answered <= stored, answered - stored  # every answered evaluation kept
        assert stored <= sent  # and nothing invented

        restarted = start_proxy(config, tmp_path)
        procs.append(restarted)
        proxy = restarted
        stream("after", None)
        assert "after" in answered
        assert "after" in _stored_request_ids(store)
    finally:
        for proc in procs:
            proc.stop()
