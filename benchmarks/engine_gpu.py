"""Engine throughput on a CUDA GPU: real model shapes, each precision, batch 1 and 16.

Models: random weights with the published shapes of Qwen3-0.6B and Mistral-7B-v0.1 (configs
written inline below: nothing is downloaded), and the shipped probe model. Random weights
decode at the same speed as trained ones (same matrices, same kernels); only the text is
noise. Each random model is written once to a scratch folder as bf16 safetensors (with the
probe model's tokenizer, so the chat template works) and then loaded by the engine exactly as
a real checkpoint would be: natively for bf16, through bitsandbytes for int8 (LLM.int8()) and
nf4 (double-quantized NF4, bf16 compute).

For every model x precision: the engine backend is started, warmed up (``--warmup-batch``
requests of 4 tokens at once, so the batch-16 code paths run once before timing), then given
``--c1-requests`` chat requests one at a time (batch 1) and ``--c16-requests`` requests with 16
in flight (``max_batch_size`` 16), greedy, ``--max-tokens`` each. Throughput = completion
tokens / wall time. When NVML is available, GPU energy per completion token is read from the
board's energy counter over each run (idle power included: the runs are back to back).
``--budget-s`` stops starting new cells once that much time has passed, and says so.

Needs: a CUDA GPU, torch, transformers, accelerate, and bitsandbytes for int8/nf4 (cells whose
precision cannot load are reported, not dropped).

Run: ``python benchmarks/engine_gpu.py [--models probe,qwen3-0.6b,mistral-7b]
[--precisions bf16,int8,nf4] [--max-tokens 32] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
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
from backends.probe import probe_model_path  # noqa: E402
from bench.models import SHAPES  # noqa: E402  (the published shapes, one copy)


def _build_random(name: str, scratch: Path) -> str:
    """Write a random-weight bf16 checkpoint of ``name``'s shape; returns its folder."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = scratch / name
    if (folder / "config.json").exists():
        return str(folder)
    shape = dict(SHAPES[name])
    config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    tokenizer = AutoTokenizer.from_pretrained(probe_model_path())
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    began = time.perf_counter()
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, dtype=torch.bfloat16
        )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    print(f"built {name}: {time.perf_counter() - began:.1f}s", flush=True)
    return str(folder)


def _requests(n: int, max_tokens: int, tag: str) -> list[BackendRequest]:
    return [
        BackendRequest(
            "chat",
            {
                "model": "bench",
                "messages": [{"role": "user", "content": f"What is {17 + i} + {5 + i % 7}?"}],
                "max_tokens": max_tokens,
            },
            False,
            f"{tag}-{i}",
        )
        for i in range(n)
    ]


class _Energy:
    """Board energy counter (mJ) of the current CUDA device through NVML, if present."""

    def __init__(self) -> None:
        self.handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            uuid = str(torch.cuda.get_device_properties(0).uuid)
            uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
            self.handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
            self._read = pynvml.nvmlDeviceGetTotalEnergyConsumption
            self._read(self.handle)
        except Exception as exc:  # no NVML, no permission, old board: say so, never zero
            print(f"energy: not measured ({exc})", flush=True)
            self.handle = None

    def millijoules(self) -> int | None:
        return int(self._read(self.handle)) if self.handle is not None else None


async def _measure(
    backend: EngineBackend, requests: list[BackendRequest], concurrency: int, energy: _Energy
) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(concurrency)
    tokens, batch = 0, 0.0

    async def one(request: BackendRequest) -> None:
        nonlocal tokens, batch
        async with semaphore:
            response = await backend.send(request)
        tokens += orjson.loads(response.body)["usage"]["completion_tokens"]
        batch += float(response.info.extra["mean_batch_size"])

    torch.cuda.synchronize()
    start_mj, began = energy.millijoules(), time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    torch.cuda.synchronize()
    wall, end_mj = time.perf_counter() - began, energy.millijoules()
    joules = None if start_mj is None or end_mj is None else (end_mj - start_mj) / 1000
    return {
        "tokens": tokens,
        "seconds": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "mean_batch_size": round(batch / len(requests), 2),
        "joules_per_token": None if joules is None else round(joules / tokens, 4),
    }


async def _cell(
    model: str, path: str, precision: str, args: argparse.Namespace, energy: _Energy
) -> dict[str, Any]:
    config = EngineBackendConfig(
        kind="engine",
        model=path,
        precision=precision,  # type: ignore[arg-type]
        device="cuda",
        max_batch_size=16,
        batch_wait_ms=5.0,
        max_new_tokens=args.max_tokens,
    )
    backend = EngineBackend.from_config(f"{model}-{precision}", config)
    began = time.perf_counter()
    try:
        await backend.start()
    except Exception as exc:
        return {"model": model, "precision": precision, "error": f"{type(exc).__name__}: {exc}"}
    load_s = time.perf_counter() - began
    try:
        warm = args.warmup_batch
        await _measure(backend, _requests(warm, 4, "warm"), warm, energy)
        c1 = await _measure(backend, _requests(args.c1_requests, args.max_tokens, "c1"), 1, energy)
        c16 = await _measure(
            backend, _requests(args.c16_requests, args.max_tokens, "c16"), 16, energy
        )
        memory = backend.memory()
    finally:
        await backend.aclose()
        gc.collect()
        torch.cuda.empty_cache()
    return {
        "model": model,
        "precision": precision,
        "load_s": round(load_s, 1),
        "c1": c1,
        "c16": c16,
        "batching_gain": round(c16["tokens_per_s"] / c1["tokens_per_s"], 2),
        "weights_gib": round(memory.weights_bytes / 2**30, 3),
        "peak_gib": round(memory.peak_bytes / 2**30, 3),
    }


def _table(results: list[dict[str, Any]]) -> None:
    print(
        f"{'model':<11} {'prec':<5} {'b1 tok/s':>9} {'b16 tok/s':>10} {'gain':>5} "
        f"{'b1 J/tok':>9} {'b16 J/tok':>10} {'weights GiB':>11}"
    )
    for r in results:
        if "error" in r:
            print(f"{r['model']:<11} {r['precision']:<5} not run: {r['error']}")
            continue

        def joules(run: dict[str, Any]) -> str:
            value = run["joules_per_token"]
            return "n/a" if value is None else f"{value:.3f}"

        print(
            f"{r['model']:<11} {r['precision']:<5} {r['c1']['tokens_per_s']:>9.1f} "
            f"{r['c16']['tokens_per_s']:>10.1f} {r['batching_gain']:>5.1f} "
            f"{joules(r['c1']):>9} {joules(r['c16']):>10} {r['weights_gib']:>11.2f}"
        )


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="probe,qwen3-0.6b,mistral-7b")
    parser.add_argument("--precisions", default="bf16,int8,nf4")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--c1-requests", type=int, default=4)
    parser.add_argument("--c16-requests", type=int, default=32)
    parser.add_argument(
        "--warmup-batch",
        type=int,
        default=16,
        help="warm-up requests (4 tokens each), all in flight at once",
    )
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("engine_gpu.py needs a CUDA GPU")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    energy = _Energy()
    began = time.perf_counter()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        for model in args.models.split(","):
            for precision in args.precisions.split(","):
                if time.perf_counter() - began > args.budget_s:
                    results.append(
                        {
                            "model": model,
                            "precision": precision,
                            "error": f"skipped: --budget-s {args.budget_s:g} spent",
                        }
                    )
                    continue
                if model == "probe":
                    path = str(probe_model_path())
                else:
                    path = _build_random(model, Path(scratch))
                cell = await _cell(model, path, precision, args, energy)
                results.append(cell)
                print(json.dumps(cell), flush=True)
    _table(results)
    if args.json is not None:
        args.json.write_text(json.dumps({"argv": sys.argv, "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(_main())
