"""Which HTTP client should the proxy use towards its upstreams? httpx, aiohttp and quanttrap's
own ``backends.http1`` side by side, in one run, doing the same work against the same upstream.

The upstream is the ``fake_upstream`` test double (an aiohttp server) pinned to CPU 1; the
clients run in this process, pinned to CPU 0, on uvloop (as the proxy does). Rounds are
interleaved (httpx, aiohttp, http1, httpx, ...) so that a noisy neighbour hits every client
alike; the median over rounds is reported. CPU time is this process's user + system time
(``os.times``), so it counts the kernel's share of every read and write too.

Measured per client:
  * CPU µs per non-streaming request, 64 requests in flight;
  * CPU µs per streamed chunk: 16 streams at once, each 103 SSE events one every 2 ms (as a
    model decodes), read as they arrive; the per-request cost is subtracted.

Run: ``.venv/bin/python benchmarks/upstream_client.py [--rounds 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.http1 import ConnectionPool  # noqa: E402
from tests.doubles.processes import start_upstream  # noqa: E402

WORDS = 100
EVENTS = WORDS + 3  # role chunk, one per word, finish chunk, usage chunk (then [DONE])
BODY = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "What is 2+2?"}]})
STREAM_BODY = json.dumps(
    {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "Count."}]}
).encode()
HEADERS = {"Content-Type": "application/json"}


class _Httpx:
    name = "httpx"

    async def __aenter__(self) -> _Httpx:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.client = httpx.AsyncClient(limits=limits, timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def fetch(self, url: str, body: bytes) -> int:
        n = 0
        async with self.client.stream("POST", url, content=body, headers=HEADERS) as resp:
            async for data in resp.aiter_raw():
                n += len(data)
        return n


class _Aiohttp:
    name = "aiohttp"

    async def __aenter__(self) -> _Aiohttp:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def fetch(self, url: str, body: bytes) -> int:
        n = 0
        async with self.session.post(url, data=body, headers=HEADERS) as resp:
            while data := await resp.content.readany():
                n += len(data)
        return n


class _Http1:
    name = "http1 (quanttrap)"

    async def __aenter__(self) -> _Http1:
        self.pools: dict[str, ConnectionPool] = {}  # one per upstream, as the proxy keeps
        return self

    async def __aexit__(self, *exc: object) -> None:
        for pool in self.pools.values():
            await pool.aclose()

    async def fetch(self, url: str, body: bytes) -> int:
        origin, _, path = url.partition("/v1")
        pool = self.pools.get(origin)
        if pool is None:
            pool = self.pools[origin] = ConnectionPool(
                origin, max_connections=64, connect_timeout=5, read_timeout=30
            )
        resp = await pool.request("POST", "/v1" + path, list(HEADERS.items()), body)
        n = 0
        while data := await resp.receive():
            n += len(data)
        return n


async def _cpu_per_call(
    fetch: Callable[[str, bytes], Awaitable[int]],
    url: str,
    body: bytes,
    total: int,
    concurrency: int,
) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            if await fetch(url, body) == 0:
                raise RuntimeError(f"empty response from {url}")

    await worker(concurrency)  # warm the pool
    t0 = sum(os.times()[:2])
    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
    return (sum(os.times()[:2]) - t0) / (total // concurrency * concurrency) * 1e6


async def _round(
    client: Any, plain_url: str, paced_url: str, requests: int, streams: int
) -> dict[str, float]:
    async with client:
        per_request = await _cpu_per_call(client.fetch, plain_url, BODY.encode(), requests, 64)
        per_stream = await _cpu_per_call(client.fetch, paced_url, STREAM_BODY, streams, 16)
    return {
        "cpu_us_per_request": per_request,
        "cpu_us_per_chunk": (per_stream - per_request) / EVENTS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6400, help="per round and client")
    parser.add_argument("--streams", type=int, default=160, help="per round and client")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as d:
        plain = start_upstream("plain", Path(d), reply_words=8)
        paced = start_upstream("paced", Path(d), reply_words=WORDS)
        try:
            for up in (plain, paced):
                up.wait_http("/v1/models")
                subprocess.run(
                    ["taskset", "-p", "-c", "1", str(up.proc.pid)], check=True, capture_output=True
                )
            httpx.post(
                paced.url + "/_double/config", json={"chunk_delay_ms": 2, "reply_words": WORDS}
            )
            plain_url = plain.url + "/v1/chat/completions"
            paced_url = paced.url + "/v1/chat/completions"
            for r in range(args.rounds):
                for client in (_Httpx(), _Aiohttp(), _Http1()):
                    t = time.perf_counter()
                    res = uvloop.run(
                        _round(client, plain_url, paced_url, args.requests, args.streams)
                    )
                    results.setdefault(client.name, []).append(res)
                    print(
                        f"round {r + 1}/{args.rounds} {client.name:18} "
                        f"{res['cpu_us_per_request']:7.1f} µs/request "
                        f"{res['cpu_us_per_chunk']:6.2f} µs/chunk "
                        f"({time.perf_counter() - t:.1f} s)",
                        flush=True,
                    )
        finally:
            plain.stop()
            paced.stop()

    summary = {
        name: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        for name, rounds in results.items()
    }
    base = summary["http1 (quanttrap)"]
    print(f"\nmedian of {args.rounds} rounds (client CPU, user + system):")
    print(f"{'client':20}{'µs/request':>12}{'× http1':>9}{'µs/chunk':>11}{'× http1':>9}")
    for name, s in summary.items():
        print(
            f"{name:20}{s['cpu_us_per_request']:12.1f}"
            f"{s['cpu_us_per_request'] / base['cpu_us_per_request']:9.2f}"
            f"{s['cpu_us_per_chunk']:11.2f}"
            f"{s['cpu_us_per_chunk'] / base['cpu_us_per_chunk']:9.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": results, "median": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
