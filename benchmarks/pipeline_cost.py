"""What a change to the request path costs: two revisions of quanttrap side by side, one run.

Runs ``quanttrap serve`` from a baseline git revision (checked out into a temporary worktree)
and from the working tree, each as one process pinned to CPU 0, in front of the same upstreams
(nginx answering canned OpenAI responses, a burst of 100 chunks per stream; and the paced
fake_upstream test double, a chunk every 2 ms, on CPU 1), and measures for each, in
interleaved rounds so that drift on the machine hits both alike:

  * CPU µs per non-streaming request (wrk, 64 connections);
  * CPU µs per streamed chunk, burst (per-request cost subtracted);
  * CPU µs per streamed chunk, paced (16 streams at once).

CPU time is the proxy process's user+system time from ``/proc/PID/stat``. Reported: the median
over rounds for each revision and the ratio working tree / baseline (target: within +10%).

Needs Debian's ``wrk`` and ``nginx-light``. Run:
``.venv/bin/python benchmarks/pipeline_cost.py --baseline 343b139 [--current REV] [--rounds 3]
[--duration 5]`` (without ``--current``, the working tree is measured).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from proxy_overhead import (  # noqa: E402
    BODY,
    CHUNKS,
    PACED_WORDS,
    STREAM_BODY,
    _canned_upstream,
    _cpu_seconds,
    _start_nginx,
    _two_free_ports,
    _wait,
    _wrk,
)

from tests.doubles.processes import free_port, start_upstream  # noqa: E402


def _config(path: Path, base_url: str) -> None:
    variant = {"name": "bf16", "bits": 16, "backend": {"kind": "openai", "base_url": base_url}}
    model = {"name": "demo", "anchor": "bf16", "routing": {"primary": "bf16"},
             "variants": [variant]}  # fmt: skip
    path.write_text(json.dumps({"models": [model]}))


def _serve(source: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``quanttrap serve`` with the packages of ``source`` (a checkout), pinned to CPU 0."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(source)}
    # Revisions before the composition root (quanttrap/) ran the CLI from proxy/.
    module = "quanttrap.cli" if (source / "quanttrap" / "cli.py").exists() else "proxy.cli"
    code = f"import sys; from {module} import main; sys.exit(main())"
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-c", code,
         "serve", "--config", str(config), "--port", str(port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=source,
    )  # fmt: skip
    proc.port = port  # type: ignore[attr-defined]
    _wait(f"http://127.0.0.1:{port}/healthz")
    return proc


@contextmanager
def _worktree(rev: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "checkout"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path),
                        rev], check=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                           check=False)  # fmt: skip


def _cpu_us(pid: int, url: str, body: str, conns: int, duration: float, tmp: Path) -> float:
    before = _cpu_seconds([pid])
    done = _wrk(url, body, conns, duration, tmp)
    return (_cpu_seconds([pid]) - before) / done["requests"] * 1e6


def _round(procs: dict[str, dict[str, Any]], duration: float, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in procs.items():
        base = f"http://127.0.0.1:{p['plain'].port}/v1/chat/completions"
        per_request = _cpu_us(p["plain"].pid, base, BODY, 64, duration, tmp)
        stream = f"http://127.0.0.1:{p['stream'].port}/v1/chat/completions"
        per_stream = _cpu_us(p["stream"].pid, stream, STREAM_BODY, 16, duration / 2, tmp)
        paced = f"http://127.0.0.1:{p['paced'].port}/v1/chat/completions"
        per_paced = _cpu_us(p["paced"].pid, paced, STREAM_BODY, 16, duration / 2, tmp)
        out[name] = {
            "cpu_us_per_request": per_request,
            "cpu_us_per_chunk_burst": (per_stream - per_request) / CHUNKS,
            "cpu_us_per_chunk_paced": (per_paced - per_request) / (PACED_WORDS + 3),
        }
        print(f"  {name:9} " + "  ".join(f"{k} {v:8.2f}" for k, v in out[name].items()),
              flush=True)  # fmt: skip
    return out


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of ``values`` (sorted): the order statistics
    whose binomial(n, 1/2) coverage is at least ``level``; the whole range when n is too small.

    Rounds on a shared 2-core VM vary by tens of percent (other tenants, cache, frequency), so
    one ratio of medians says little without it.
    """
    n = len(values)
    cdf = 0.0
    for k in range(n // 2 + 1):
        # X ~ Binomial(n, 1/2): the interval [x_(k+1), x_(n-k)] (1-based) misses the median
        # with probability 2 * P(X <= k); the first k where that exceeds 1 - level is one
        # too far, so the interval is [x_(k), x_(n-k+1)].
        cdf += math.comb(n, k) / 2**n
        if 2 * cdf > 1 - level:
            return values[max(k - 1, 0)], values[min(n - k, n - 1)]
    return values[0], values[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--current", help="git revision to measure instead of the working tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with ExitStack() as stack:
        baseline = stack.enter_context(_worktree(args.baseline))
        current = stack.enter_context(_worktree(args.current)) if args.current else ROOT
        d = stack.enter_context(tempfile.TemporaryDirectory())
        tmp = Path(d)
        up_port = _two_free_ports()
        upstream_nginx = _start_nginx(tmp, "upstream", 1, _canned_upstream(up_port, tmp))
        upstream = f"http://127.0.0.1:{up_port}"
        _wait(upstream + "/v1/models")
        paced = start_upstream("paced", tmp, reply_words=PACED_WORDS)
        httpx.post(paced.url + "/_double/config",
                   json={"chunk_delay_ms": 2, "reply_words": PACED_WORDS})  # fmt: skip
        subprocess.run(["taskset", "-p", "-c", "1", str(paced.proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
        procs: dict[str, dict[str, Any]] = {}
        for name, source in (("baseline", baseline), ("current", current)):
            procs[name] = {}
            for kind, url in (("plain", upstream + "/v1"), ("stream", upstream + "/s/v1"),
                              ("paced", paced.url + "/v1")):  # fmt: skip
                config = tmp / f"{name}-{kind}.yaml"
                _config(config, url)
                procs[name][kind] = _serve(source, config, tmp / f"{name}-{kind}.log")
        try:
            for i in range(args.rounds):
                print(f"round {i + 1}/{args.rounds}", flush=True)
                order = dict(reversed(procs.items())) if i % 2 else procs
                rounds.append(_round(order, args.duration, tmp))
        finally:
            for group in procs.values():
                for proc in group.values():
                    proc.terminate()
                    proc.wait(timeout=10)
            paced.stop()
            upstream_nginx.terminate()
            upstream_nginx.wait(timeout=10)
    current_rev = args.current or "working tree"
    summary: dict[str, Any] = {"baseline_rev": args.baseline, "current_rev": current_rev,
                               "rounds": rounds}  # fmt: skip
    print(f"\n{'median of ' + str(args.rounds) + ' rounds':28}{'baseline':>10}{'current':>10}"
          f"{'ratio':>8}   {'round ratios: median [95% CI]':>30}   target")  # fmt: skip
    for key in rounds[0]["baseline"]:
        b = statistics.median(r["baseline"][key] for r in rounds)
        c = statistics.median(r["current"][key] for r in rounds)
        per_round = sorted(r["current"][key] / r["baseline"][key] for r in rounds)
        low, high = median_interval(per_round)
        mid = statistics.median(per_round)
        summary[key] = {"baseline": b, "current": c, "ratio": c / b,
                        "round_ratio_median": mid, "round_ratio_ci95": [low, high]}  # fmt: skip
        print(f"{key:28}{b:10.2f}{c:10.2f}{c / b:8.3f}   {mid:12.3f} [{low:.3f}, {high:.3f}]"
              f"      <= 1.10")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
