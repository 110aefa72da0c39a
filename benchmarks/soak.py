"""Soak: mixed load on ``quanttrap serve`` for minutes; errors, memory, descriptors, evidence.

Run: ``python benchmarks/soak.py --minutes 10`` (figures in docs/reliability.md);
``--kill-restart`` adds the ``kill -9`` phase; ``--json`` prints the result as JSON.
The 60-s version runs in CI: ``tests/e2e/test_soak.py``.

Method: two fake upstream processes (TEST DOUBLES of an OpenAI-compatible server, in
``solve`` mode: they answer the multi-hop questions, right 90% / 80% of the time) behind one
``quanttrap serve`` process: a model with an anchor (``bf16``) and a 4-bit variant (``nf4``)
shadowing a quarter of the traffic, canaries on. ``--concurrency`` clients send, at
``--rate`` requests a second in all, a rotation of chat (plain; streaming with usage),
text completions (plain; streaming) and, when the proxy's ``/openapi.json`` lists
``/v1/responses``, Responses (plain; streaming). One rotation in ``--tagged-every`` (a
request of every kind) carries an expected answer (``X-Quanttrap-Expected``) and a request
id ``soak-<n>``: graded evaluation traffic. Every ``--sample-s`` seconds the proxy's
resident memory (``VmRSS``) and open descriptors (``/proc/<pid>/fd``) are read. Reported:

- requests and errors (any status but 200, a stream without its terminal event, a transport
  error or a timeout);
- memory growth: the median of the last 5 samples against the median of the first 5 after
  ``--warmup-s``; descriptors: the same, as a difference;
- evaluation records: tagged requests answered 200 against rows with ``role = 'primary'``
  and those ids in the SQLite store, read after the load stops (waiting up to
  ``--settle-s`` for the grading pass);
- with ``--kill-restart``: ``--kill-n`` more tagged requests, SIGKILL the moment the last
  answer is in, restart on the same store, and count their rows (lost = sent - stored).

Caveats: Linux only (``/proc``). The live windows (``scoring.window_s``, 900 s by default)
hold every record of the window in memory, so memory legitimately grows until the first
window is full; ``--window-s`` shortens it. On a shared machine the load generator, the
doubles and the proxy share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.doubles.processes import Process, start_proxy, start_upstream  # noqa: E402

QUESTION = "k = 7. m = k + 5. What is m?"
ANSWER = "12"


@dataclass
class SoakResult:
    """What a soak run sent, what broke, and how the proxy process held."""

    seconds: float = 0.0
    requests: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    responses_route: bool = False
    tagged_sent: int = 0
    tagged_stored: int = 0
    rss_kib: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    rss_growth: float = 0.0
    fd_growth: int = 0
    kill_sent: int | None = None
    kill_stored: int | None = None

    def lines(self) -> list[str]:
        rate = self.requests / max(self.seconds, 1e-9)
        out = [
            f"requests {self.requests} in {self.seconds:.0f} s ({rate:.1f}/s): "
            + ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items())),
            f"errors {sum(self.errors.values())} {dict(self.errors)}",
            f"Responses route {'on' if self.responses_route else 'absent (skipped)'}",
            f"graded evaluations: sent {self.tagged_sent}, stored {self.tagged_stored}, "
            f"lost {self.tagged_sent - self.tagged_stored}",
            f"resident memory after warm-up: {self.rss_kib[0] / 1024:.1f} MiB -> "
            f"{self.rss_kib[-1] / 1024:.1f} MiB, growth {100 * self.rss_growth:+.1f}% "
            f"(first/last 5 samples, medians)"
            if self.rss_kib
            else "no memory samples",
            f"descriptors after warm-up: {self.fds[0]} -> {self.fds[-1]}, "
            f"growth {self.fd_growth:+d}"
            if self.fds
            else "no descriptor samples",
        ]
        if self.kill_sent is not None:
            out.append(
                f"kill -9 phase: sent {self.kill_sent}, stored after restart {self.kill_stored}, "
                f"lost {self.kill_sent - (self.kill_stored or 0)}"
            )
        return out


def config(folder: Path, bf16: str, nf4: str, *, window_s: float) -> Path:
    def variant(name: str, bits: int, url: str) -> dict[str, Any]:
        return {"name": name, "bits": bits, "backend": {"kind": "openai", "base_url": url + "/v1"}}

    path = folder / "soak.yaml"
    model = {
        "name": "demo",
        "anchor": "bf16",
        "routing": {"primary": "bf16"},
        "variants": [variant("bf16", 16, bf16), variant("nf4", 4, nf4)],
        "shadow": {"variants": ["nf4"], "sample_rate": 0.25},
    }
    scoring = {
        "window_s": window_s,
        "store": {"path": str(folder / "log.sqlite3")},
        "canary": {"enabled": True, "rate_per_minute": 30, "cpu_budget": 0.1, "max_tokens": 64},
    }
    path.write_text(json.dumps({"models": [model], "scoring": scoring}))
    return path


def _proc_sample(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _stored(store: Path, prefix: str) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as conn:
        row = conn.execute(
            "SELECT COUNT(DISTINCT request_id) FROM evaluations "
            "WHERE role = 'primary' AND request_id LIKE ?",
            (prefix + "%",),
        ).fetchone()
    return int(row[0])


_KINDS = ("chat", "chat-stream", "completions", "completions-stream")


def _request(kind: str) -> tuple[str, dict[str, Any]]:
    stream = kind.endswith("-stream")
    if kind.startswith("responses"):
        return "/v1/responses", {"model": "demo", "input": QUESTION, "stream": stream}
    if kind.startswith("completions"):
        return "/v1/completions", {"model": "demo", "prompt": QUESTION, "stream": stream,
                                   "max_tokens": 32}  # fmt: skip
    body: dict[str, Any] = {"model": "demo", "stream": stream,
                            "messages": [{"role": "user", "content": QUESTION}]}  # fmt: skip
    if stream:
        body["stream_options"] = {"include_usage": True}
    return "/v1/chat/completions", body


def _complete(kind: str, resp: httpx.Response) -> bool:
    """Whether the response is whole: JSON for plain, the terminal event for streams."""
    if not kind.endswith("-stream"):
        resp.json()
        return True
    if kind.startswith("responses"):
        return "response.completed" in resp.text
    return resp.text.rstrip().endswith("data: [DONE]")


async def _load(
    url: str, result: SoakResult, *, kinds: tuple[str, ...], seconds: float, rate: float,
    concurrency: int, tagged_every: int, prefix: str = "soak-",
) -> None:  # fmt: skip
    counter = iter(range(10**9))
    stop = time.monotonic() + seconds
    interval = concurrency / rate

    async def worker(client: httpx.AsyncClient) -> None:
        next_at = time.monotonic()
        while time.monotonic() < stop:
            n = next(counter)
            kind = kinds[n % len(kinds)]
            path, body = _request(kind)
            tagged = (n // len(kinds)) % tagged_every == 0  # every kind, in turn
            headers = {"X-Request-Id": f"{prefix}{n}"}
            if tagged:
                headers["X-Quanttrap-Expected"] = ANSWER
            try:
                resp = await client.post(path, json=body, headers=headers)
                ok = resp.status_code == 200 and _complete(kind, resp)
                problem = "" if ok else f"{kind} {resp.status_code}"
            except (httpx.HTTPError, ValueError) as exc:
                ok, problem = False, f"{kind} {type(exc).__name__}"
            result.requests += 1
            result.by_kind[kind] += 1
            if not ok:
                result.errors[problem] += 1
            elif tagged:
                result.tagged_sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


async def _sampler(
    pid: int, result: SoakResult, every: float, warmup: float, done: asyncio.Event
) -> None:
    await asyncio.sleep(warmup)
    while not done.is_set():
        rss, fds = _proc_sample(pid)
        result.rss_kib.append(rss)
        result.fds.append(fds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every)


async def _soak(
    proxy: Process, result: SoakResult, args: argparse.Namespace, kinds: tuple[str, ...]
) -> None:
    done = asyncio.Event()
    sampler = asyncio.create_task(
        _sampler(proxy.proc.pid, result, args.sample_s, args.warmup_s, done)
    )
    await _load(proxy.url, result, kinds=kinds, seconds=args.seconds, rate=args.rate,
                concurrency=args.concurrency, tagged_every=args.tagged_every)  # fmt: skip
    rss, fds = _proc_sample(proxy.proc.pid)  # the last sample: at the end of the load
    result.rss_kib.append(rss)
    result.fds.append(fds)
    done.set()
    await sampler


def _growth(result: SoakResult) -> None:
    if len(result.rss_kib) >= 2:
        k = min(5, len(result.rss_kib) // 2)
        first, last = statistics.median(result.rss_kib[:k]), statistics.median(result.rss_kib[-k:])
        result.rss_growth = last / first - 1
        result.fd_growth = int(
            statistics.median(result.fds[-k:]) - statistics.median(result.fds[:k])
        )


def _kill_restart(proxy: Process, cfg: Path, folder: Path, result: SoakResult, n: int) -> Process:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        for i in range(n):
            path, body = _request("chat-stream" if i % 2 else "chat")
            headers = {"X-Request-Id": f"soakkill-{i}", "X-Quanttrap-Expected": ANSWER}
            resp = client.post(path, json=body, headers=headers)
            if resp.status_code != 200:
                result.errors[f"kill-phase {resp.status_code}"] += 1
    proxy.proc.send_signal(signal.SIGKILL)  # the moment the last answer is in
    proxy.proc.wait()
    proxy.stop()
    restarted = start_proxy(cfg, folder)
    result.kill_sent = n
    result.kill_stored = _stored(folder / "log.sqlite3", "soakkill-")
    return restarted


def run_soak(args: argparse.Namespace, folder: Path) -> SoakResult:
    """Start the stack in ``folder``, soak it, stop it; see the module docstring."""
    result = SoakResult()
    procs: list[Process] = []
    try:
        bf16 = start_upstream("bf16", folder, reply_words=6)
        nf4 = start_upstream("nf4", folder, reply_words=6)
        procs += [bf16, nf4]
        for proc, accuracy in ((bf16, 0.9), (nf4, 0.8)):
            solve = {"solve": {"accuracy": accuracy, "seed": 0}, "reply_words": 6}
            httpx.post(proc.url + "/_double/config", json=solve).raise_for_status()
        cfg = config(folder, bf16.url, nf4.url, window_s=args.window_s)
        proxy = start_proxy(cfg, folder)
        procs.append(proxy)
        schema = httpx.get(proxy.url + "/openapi.json", timeout=60).json()  # built on first use
        result.responses_route = "/v1/responses" in schema.get("paths", {})
        kinds = _KINDS + (("responses", "responses-stream") if result.responses_route else ())
        t0 = time.monotonic()
        asyncio.run(_soak(proxy, result, args, kinds))
        result.seconds = time.monotonic() - t0
        _growth(result)
        store = folder / "log.sqlite3"
        deadline = time.monotonic() + args.settle_s
        while time.monotonic() < deadline:
            result.tagged_stored = _stored(store, "soak-")
            if result.tagged_stored >= result.tagged_sent:
                break
            time.sleep(0.5)
        if args.kill_restart:
            procs.append(_kill_restart(proxy, cfg, folder, result, args.kill_n))
    finally:
        for proc in procs:
            proc.stop()
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=20.0, help="requests a second, all clients")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--tagged-every", type=int, default=4)
    p.add_argument("--warmup-s", type=float, default=60.0)
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--settle-s", type=float, default=30.0)
    p.add_argument("--window-s", type=float, default=900.0, help="scoring.window_s")
    p.add_argument("--kill-restart", action="store_true")
    p.add_argument("--kill-n", type=int, default=50)
    p.add_argument("--keep", type=Path, help="run in this folder (kept) instead of a temporary one")
    p.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.seconds = args.minutes * 60
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run_soak(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="quanttrap-soak-") as folder:
            result = run_soak(args, Path(folder))
    if args.json:
        print(json.dumps(asdict(result), indent=1))
    else:
        print("\n".join(result.lines()))


if __name__ == "__main__":
    main()
