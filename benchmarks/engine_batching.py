"""Does the engine's continuous batching pay? Tokens/s at concurrency 1 and 16, per precision.

For each precision the engine backend is started on the model (the shipped ``probe`` model by
default, or ``tiny``: the random-weight test double of tests/doubles/tiny_llama.py), warmed up,
then given the same set of chat requests twice:

* **c=1**: one request at a time, as a server without batching would decode them;
* **c=16**: all at once (``max_batch_size`` 16), so up to 16 sequences share every forward.

Throughput is completion tokens (as reported in ``usage``) over wall time; greedy decoding and
the same prompts in both runs, so both decode the same tokens. The two runs alternate
``--repeats`` times and the best of each is kept (a shared machine only ever slows a run down).
The ratio c=16 / c=1 is the gain from batching. The mean batch size actually seen by the
requests is printed too.

Run: ``.venv/bin/python benchmarks/engine_batching.py [--model probe|tiny|PATH]
[--precisions fp32,int8,nf4] [--requests 32] [--max-tokens 48] [--repeats 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import orjson
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.base import BackendRequest  # noqa: E402
from backends.config import EngineBackendConfig  # noqa: E402
from backends.engine import EngineBackend  # noqa: E402

QUESTIONS = [
    "What is {a} + {b}?",
    "Tom has {a} apples and buys {b} more. How many apples does he have?",
    "A box holds {a} pens. How many pens are in {b} boxes?",
    "What is {a} minus {b}?",
]


def _requests(n: int, max_tokens: int) -> list[BackendRequest]:
    out = []
    for i in range(n):
        text = QUESTIONS[i % len(QUESTIONS)].format(a=7 + 3 * i, b=2 + i % 9)
        body = {
            "model": "bench",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens,
        }
        out.append(BackendRequest("chat", body, False, f"bench-{i}"))
    return out


async def _run(
    backend: EngineBackend, requests: list[BackendRequest], concurrency: int
) -> dict[str, float]:
    semaphore = asyncio.Semaphore(concurrency)
    tokens = 0
    batch_means: list[float] = []

    async def one(request: BackendRequest) -> None:
        nonlocal tokens
        async with semaphore:
            response = await backend.send(request)
        tokens += orjson.loads(response.body)["usage"]["completion_tokens"]
        batch_means.append(float(response.info.extra["mean_batch_size"]))

    began = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    wall = time.perf_counter() - began
    return {
        "tokens": tokens,
        "seconds": wall,
        "tokens_per_s": tokens / wall,
        "mean_batch_size": sum(batch_means) / len(batch_means),
    }


async def _bench_precision(model: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    config = EngineBackendConfig(
        kind="engine",
        model=model,
        precision=precision,  # type: ignore[arg-type]
        device=args.device,
        max_batch_size=16,
        batch_wait_ms=5.0,
        max_new_tokens=args.max_tokens,
    )
    backend = EngineBackend.from_config(precision, config)
    await backend.start()
    try:
        await _run(backend, _requests(4, 8), 4)  # warm-up: first-call costs, kernels
        requests = _requests(args.requests, args.max_tokens)
        solos, batches = [], []
        for _ in range(args.repeats):  # alternated, so a noisy neighbour hits both alike
            solos.append(await _run(backend, requests, 1))
            batches.append(await _run(backend, requests, 16))
        solo = max(solos, key=lambda run: run["tokens_per_s"])
        batched = max(batches, key=lambda run: run["tokens_per_s"])
        memory = backend.memory()
    finally:
        await backend.aclose()
    return {
        "precision": precision,
        "c1": solo,
        "c16": batched,
        "ratio": batched["tokens_per_s"] / solo["tokens_per_s"],
        "weights_bytes": memory.weights_bytes,
    }


def _model_path(name: str, scratch: Path) -> str:
    if name != "tiny":
        return name
    from tests.doubles.tiny_llama import build_tiny_llama

    return str(build_tiny_llama(scratch / "tiny"))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="probe", help="probe, tiny, or a model directory")
    parser.add_argument("--precisions", default="fp32,int8,nf4")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    return parser.parse_args()


async def _main() -> None:
    args = _parse()
    # bitsandbytes' int8 path warns once that TorchScript is deprecated: not ours to fix.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    command = "python " + " ".join(
        shlex.quote(a) for a in ["benchmarks/engine_batching.py", *sys.argv[1:]]
    )
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        model = _model_path(args.model, Path(scratch))
        for precision in args.precisions.split(","):
            results.append(await _bench_precision(model, precision, args))
    print(f"command: {command}")
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}"
    )
    print(
        f"model: {args.model}; {args.requests} requests x {args.max_tokens} max tokens, greedy, "
        f"best of {args.repeats}"
    )
    header = (
        f"{'precision':>9} {'c=1 tok/s':>10} {'c=16 tok/s':>11} {'ratio':>6} {'mean batch':>11}"
    )
    print(header)
    for r in results:
        print(
            f"{r['precision']:>9} {r['c1']['tokens_per_s']:>10.1f} "
            f"{r['c16']['tokens_per_s']:>11.1f} {r['ratio']:>6.2f} "
            f"{r['c16']['mean_batch_size']:>11.2f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"command": command, "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(_main())
