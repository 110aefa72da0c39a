"""What each API costs the proxy: CPU per request and per streamed chunk, chat vs Responses vs
Anthropic Messages (issue 12).

For each API, one ``quanttrap serve`` process pinned to CPU 0 fronts the fake_upstream test
double (no pacing) on CPU 1; a small asyncio load generator (httpx, also on CPU 1) sends the
requests. CPU time is the proxy process's user+system time from ``/proc/PID/stat`` over the
phase, divided by what it served:

  * CPU µs per non-streaming request (a ``SHORT``-word answer);
  * CPU µs per streamed chunk: the difference between a stream of ``LONG`` words and one of
    ``SHORT`` words, per extra chunk (so the per-request cost cancels). A chunk is a chat
    ``chat.completion.chunk``, a Responses ``response.output_text.delta`` event, a Messages
    ``content_block_delta`` event — one generated word each;
  * CPU µs per streamed request of ``SHORT`` words (the per-stream cost).

Each figure is the median over ``--rounds`` interleaved rounds (every API in each round, so
drift on a shared machine hits all alike). Caveats: the double answers at once, so these are
the proxy's costs at saturation of CPU 0, not latencies; on a machine shared with other work
the spread between rounds is printed and should be read with the medians.

Run: ``.venv/bin/python benchmarks/api_cost.py [--rounds 3] [--requests 600] [--streams 120]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.doubles.processes import (  # noqa: E402
    Process,
    free_port,
    quanttrap_command,
    start_upstream,
)

SHORT, LONG = 8, 208
CONCURRENCY = 16
PROMPT = "Say something."

Body = Callable[[bool], dict[str, Any]]
APIS: dict[str, tuple[str, Body]] = {
    "chat": (
        "/v1/chat/completions",
        lambda stream: {
            "model": "demo",
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        },
    ),
    "responses": (
        "/v1/responses",
        lambda stream: {"model": "demo", "input": PROMPT, "stream": stream},
    ),
    "messages": (
        "/v1/messages",
        lambda stream: {
            "model": "demo",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": stream,
        },
    ),
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _start_proxy(tmp: Path, upstream: str, api: str) -> Process:
    """``quanttrap serve`` pinned to CPU 0 (taskset execs, so the pid is the proxy's)."""
    variant = {"name": "bf16", "bits": 16, "backend": {"kind": "openai", "base_url": upstream}}
    config = tmp / f"{api}.yaml"
    config.write_text(json.dumps({"models": [
        {"name": "demo", "anchor": "bf16", "routing": {"primary": "bf16"}, "variants": [variant]}
    ]}))  # fmt: skip
    port = free_port()
    cmd = ["taskset", "-c", "0", *quanttrap_command(), "serve", "--config", str(config),
           "--port", str(port)]  # fmt: skip
    proc = Process(cmd, port, tmp / f"proxy-{api}.log", env={"PYTHONPATH": str(ROOT)}, cwd=tmp)
    proc.wait_http("/healthz", timeout=60)
    return proc


async def _load(url: str, body: dict[str, Any], n: int) -> None:
    """``n`` requests, ``CONCURRENCY`` at a time; every answer read to its end and checked."""
    queue = iter(range(n))
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            for _ in queue:
                async with client.stream("POST", url, json=body) as resp:
                    data = await resp.aread()
                    if resp.status_code != 200:
                        raise RuntimeError(f"{url}: {resp.status_code} {data[:300]!r}")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _phase(proxy: Process, path: str, body: dict[str, Any], n: int) -> float:
    """CPU µs the proxy spent per request over ``n`` requests."""
    asyncio.run(_load(proxy.url + path, body, min(n, 32)))  # warm-up: connections, caches
    before = _cpu_seconds(proxy.proc.pid)
    asyncio.run(_load(proxy.url + path, body, n))
    return (_cpu_seconds(proxy.proc.pid) - before) / n * 1e6


def _set_words(upstream: Process, words: int) -> None:
    httpx.post(upstream.url + "/_double/config", json={"reply_words": words}).raise_for_status()


def _round(
    proxies: dict[str, Process], upstream: Process, requests: int, streams: int
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for api, (path, body) in APIS.items():
        proxy = proxies[api]
        _set_words(upstream, SHORT)
        per_request = _phase(proxy, path, body(False), requests)
        per_short_stream = _phase(proxy, path, body(True), streams)
        _set_words(upstream, LONG)
        per_long_stream = _phase(proxy, path, body(True), streams)
        out[api] = {
            "cpu_us_per_request": per_request,
            "cpu_us_per_stream": per_short_stream,
            "cpu_us_per_chunk": (per_long_stream - per_short_stream) / (LONG - SHORT),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600, help="non-streaming, per phase")
    parser.add_argument("--streams", type=int, default=120, help="streams, per phase")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 CPUs: the proxy on CPU 0, load and upstream on CPU 1")
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        upstream = start_upstream("bf16", tmp, reply_words=SHORT)
        os.sched_setaffinity(upstream.proc.pid, {1})
        proxies: dict[str, Process] = {}
        try:
            for api in APIS:
                proxies[api] = _start_proxy(tmp, upstream.url + "/v1", api)
            t0 = time.monotonic()
            rounds = [_round(proxies, upstream, args.requests, args.streams)
                      for _ in range(args.rounds)]  # fmt: skip
            elapsed = time.monotonic() - t0
        finally:
            for proc in [*proxies.values(), upstream]:
                proc.stop()
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "requests": args.requests,
        "streams": args.streams,
        "short_words": SHORT,
        "long_words": LONG,
        "concurrency": CONCURRENCY,
        "apis": {},
    }
    print(f"{args.rounds} rounds in {elapsed:.0f} s; median over rounds (min-max)")
    print(f"{'API':<10} {'µs/request':>22} {'µs/stream (8 words)':>24} {'µs/chunk':>18}")
    for api in APIS:
        row: dict[str, Any] = {}
        cells = []
        for key in ("cpu_us_per_request", "cpu_us_per_stream", "cpu_us_per_chunk"):
            values = [r[api][key] for r in rounds]
            row[key] = {"median": statistics.median(values), "min": min(values),
                        "max": max(values)}  # fmt: skip
            cells.append(f"{row[key]['median']:.0f} ({min(values):.0f}-{max(values):.0f})")
        result["apis"][api] = row
        print(f"{api:<10} {cells[0]:>22} {cells[1]:>24} {cells[2]:>18}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
