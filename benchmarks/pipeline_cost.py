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
``.venv/bin/python benchmarks/pipeline_cost.py --baseline 343b139 [--rounds 3] [--duration 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
        path = Path(d) / "baseline"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with _worktree(args.baseline) as baseline, tempfile.TemporaryDirectory() as d:
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
        for name, source in (("baseline", baseline), ("current", ROOT)):
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
    summary: dict[str, Any] = {"baseline_rev": args.baseline, "rounds": rounds}
    print(f"\n{'median of ' + str(args.rounds) + ' rounds':32}{'baseline':>12}{'current':>12}"
          f"{'ratio':>9}   target")  # fmt: skip
    for key in rounds[0]["baseline"]:
        b = statistics.median(r["baseline"][key] for r in rounds)
        c = statistics.median(r["current"][key] for r in rounds)
        summary[key] = {"baseline": b, "current": c, "ratio": c / b}
        print(f"{key:32}{b:12.2f}{c:12.2f}{c / b:9.3f}   <= 1.10")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
