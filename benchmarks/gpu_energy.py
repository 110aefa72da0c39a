"""Per-request GPU energy through the real proxy, and the conservation check (needs a GPU).

``quanttrap serve`` runs as a child process with two in-process engine variants of one model
(bf16 and nf4, random weights of a published shape: nothing is downloaded) and NVML energy
metering on (``telemetry.energy.source: nvml``). Load is sent through the proxy's OpenAI API,
one variant at a time (pinned with ``X-Quanttrap-Variant``), at concurrency 1 and then 16.

Reported, per variant and concurrency, from the proxy's own ``/metrics``:
  * energy per query and per generated token (``quanttrap_request_energy_joules`` histogram;
    method ``nvml_counter``), tokens/s, the batch-size mix the engine recorded;
and for the whole run, the conservation invariant: the energy the proxy booked (attributed to
requests + idle) against the board's own counter read independently by this script over the
same window (their sampling instants differ by up to one period at each end, so they are
expected to agree within about 1%, not exactly).

Per-request energy is an *apportionment* of each 100 ms interval among the requests in flight
(by tokens), not a separate measurement; idle intervals are booked as idle, not to requests.

Run (GPU machine): ``python benchmarks/gpu_energy.py --shape qwen3-0.6b --seconds 25
--json docs/gpu_energy_h100.json``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine_gpu import _build_random, _Energy  # noqa: E402
from tests.doubles.processes import free_port  # noqa: E402

VARIANTS = {"bf16": 16, "nf4": 4}


def _config(model_dir: str, port: int, store: Path) -> dict[str, Any]:
    def engine(precision: str) -> dict[str, Any]:
        return {
            "kind": "engine",
            "model": model_dir,
            "precision": precision,
            "device": "cuda",
            "max_batch_size": 16,
            "max_new_tokens": 256,
        }

    return {
        "server": {"host": "127.0.0.1", "port": port},
        "telemetry": {"energy": {"source": "nvml", "sample_interval_ms": 100}},
        "scoring": {"store": {"path": str(store)}},
        "models": [
            {
                "name": "m",
                "anchor": "bf16",
                "routing": {"primary": "bf16"},
                "variants": [
                    {"name": n, "bits": b, "backend": engine(n)} for n, b in VARIANTS.items()
                ],
            }
        ],
    }


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _delta(before: str, after: str, name: str, variant: str) -> float:
    return _metric(after, name, quanttrap_variant=variant) - _metric(
        before, name, quanttrap_variant=variant
    )


def _batch_mix(text: str, variant: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for line in text.splitlines():
        if (
            line.startswith("quanttrap_requests_total{")
            and f'quanttrap_variant="{variant}"' in line
        ):
            bucket = re.search(r'quanttrap_batch_size_bucket="([^"]*)"', line)
            if bucket:
                mix[bucket.group(1)] = mix.get(bucket.group(1), 0) + float(line.rsplit(" ", 1)[1])
    return mix


async def _load(
    url: str, variant: str, concurrency: int, seconds: float, max_tokens: int
) -> dict[str, Any]:
    done = tokens = errors = 0
    deadline = time.monotonic() + seconds

    async def worker(i: int, client: httpx.AsyncClient) -> None:
        nonlocal done, tokens, errors
        n = 0
        while time.monotonic() < deadline:
            n += 1
            body = {
                "model": "m",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": f"Add {i} and {n}, step by step."}],
            }
            r = await client.post(
                url + "/v1/chat/completions", json=body, headers={"X-Quanttrap-Variant": variant}
            )
            if r.status_code != 200:
                errors += 1
                continue
            done += 1
            tokens += r.json()["usage"]["completion_tokens"]

    began = time.monotonic()
    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(i, client) for i in range(concurrency)))
    wall = time.monotonic() - began
    return {
        "requests": done,
        "errors": errors,
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--shape", default="qwen3-0.6b")
    parser.add_argument("--seconds", type=float, default=25.0, help="per variant and concurrency")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--json")
    args = parser.parse_args()
    meter = _Energy()
    if meter.handle is None:
        sys.exit("no NVML energy counter: this run needs an NVIDIA GPU (Volta or newer)")

    scratch = Path(tempfile.mkdtemp(prefix="qt-energy-"))
    model_dir = _build_random(args.shape, scratch)
    port = free_port()
    config = scratch / "quanttrap.yaml"
    config.write_text(json.dumps(_config(model_dir, port, scratch / "db.sqlite3")))
    log = (scratch / "serve.log").open("wb")
    cmd = [sys.executable, "-m", "quanttrap.cli", "serve", "--config", str(config)]
    proxy = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"shape": args.shape, "max_tokens": args.max_tokens, "runs": []}
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proxy.poll() is not None or time.monotonic() > deadline:
                log.flush()
                sys.exit("proxy did not start:\n" + (scratch / "serve.log").read_text()[-3000:])
            time.sleep(1)
        # Warm both variants (CUDA kernels, bitsandbytes) before anything is counted.
        for variant in VARIANTS:
            asyncio.run(_load(url, variant, 4, 3.0, 8))
        time.sleep(1.0)
        first = httpx.get(url + "/metrics").text
        counter0 = meter.millijoules()
        for variant in VARIANTS:
            for conc in (int(c) for c in args.concurrency.split(",")):
                before = httpx.get(url + "/metrics").text
                print(f"[{variant}] concurrency {conc} for {args.seconds:.0f}s ...", flush=True)
                load = asyncio.run(_load(url, variant, conc, args.seconds, args.max_tokens))
                time.sleep(0.5)  # let the last intervals close (one sample period is 0.1 s)
                after = httpx.get(url + "/metrics").text

                joules = _delta(before, after, "quanttrap_request_energy_joules_sum", variant)
                measured = _delta(before, after, "quanttrap_request_energy_joules_count", variant)
                mix_after, mix_before = _batch_mix(after, variant), _batch_mix(before, variant)
                run = {
                    "variant": variant,
                    "concurrency": conc,
                    **load,
                    "requests_with_energy": measured,
                    "energy_j_per_query": joules / measured if measured else None,
                    "energy_j_per_token": joules / load["tokens"] if load["tokens"] else None,
                    "batch_mix": {
                        b: n - mix_before.get(b, 0)
                        for b, n in mix_after.items()
                        if n - mix_before.get(b, 0)
                    },
                }
                results["runs"].append(run)
                print(json.dumps(run), flush=True)
        time.sleep(1.0)
        last = httpx.get(url + "/metrics").text
        counter1 = meter.millijoules()
        assert counter0 is not None and counter1 is not None
        board = (counter1 - counter0) / 1000

        def booked(name: str) -> float:
            return _metric(last, name) - _metric(first, name)

        attributed = booked("quanttrap_energy_attributed_joules_total")
        idle = booked("quanttrap_energy_idle_joules_total")
        results["conservation"] = {
            "board_counter_delta_j": board,
            "attributed_j": attributed,
            "idle_j": idle,
            "relative_error": (attributed + idle - board) / board,
            "method": "nvml_counter"
            if 'quanttrap_energy_method="nvml_counter"' in last
            else "other",
        }
        print(json.dumps(results["conservation"]), flush=True)
    finally:
        proxy.terminate()
        try:
            proxy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proxy.kill()
        log.close()
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _report(results: dict[str, Any]) -> None:
    print(
        f"\n{results['shape']}, {results['max_tokens']} max tokens per request, through the proxy"
    )
    print(f"{'variant':8}{'conc':>5}{'req':>6}{'tok/s':>9}{'J/query':>10}{'J/token':>9}  batch mix")
    for r in results["runs"]:
        jq = f"{r['energy_j_per_query']:.2f}" if r["energy_j_per_query"] else "n/a"
        jt = f"{r['energy_j_per_token']:.3f}" if r["energy_j_per_token"] else "n/a"
        print(
            f"{r['variant']:8}{r['concurrency']:>5}{r['requests']:>6}{r['tokens_per_s']:>9.1f}"
            f"{jq:>10}{jt:>9}  {r['batch_mix']}"
        )
    c = results["conservation"]
    print(
        f"conservation: board counter {c['board_counter_delta_j']:.1f} J, booked "
        f"{c['attributed_j']:.1f} J to requests + {c['idle_j']:.1f} J idle; relative error "
        f"{100 * c['relative_error']:+.2f}% (method {c['method']})"
    )


if __name__ == "__main__":
    sys.exit(main())
