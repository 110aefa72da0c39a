"""The sweep: every variant at every batch size, repeated, then accuracy and the reference path.

Order of work (one process, one GPU):

1. Build the model if it is a random-weight preset, then load **every variant at once** (so the
   repeats can interleave them: a slow drift such as heating then affects all variants alike
   rather than whichever ran last). Each variant is a real :class:`EngineBackend`.
2. Warm-up: one short wave (4 tokens) per variant and batch size, so first-use kernel costs
   (cuBLAS heuristics, bitsandbytes set-up) stay out of the windows.
3. For each repeat, for each batch size, for each variant (the variants' order rotated every
   repeat): one steady-state window (:mod:`bench.cells`), then ``cooldown_s`` idle. The first
   ``burn_in`` passes (numbered 0, -1, ...) are measured the same way, kept in the results and
   left out of every statistic: on the lent H200 the first pass after the process started ran
   up to 3x slower than the later ones at the same clocks (docs/trap-h200.md), a start-up
   effect that a per-cell warm-up of seconds does not remove.
4. Accuracy (real weights only): the evaluation set through each variant's engine.
5. The reference path: HF ``generate`` on each variant's model at ``reference_batches``.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from backends.config import EngineBackendConfig
from backends.engine import EngineBackend
from bench.cells import CellSpec, TokenCounter, measure_window, run_wave
from bench.evaluation import EvalItem, eval_items, evaluate
from bench.gpu import GpuMeter
from bench.models import materialise
from bench.records import AccuracyItem, GpuState, ReferenceRun, Window
from bench.reference import reference_run

__all__ = ["BenchConfig", "BenchRun", "run_bench"]

Progress = Callable[[str], None]
"""Called once per finished step with a short label (the progress bar advances)."""


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Everything a sweep needs; validated by :mod:`bench.commands` before it gets here."""

    model: str
    variants: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    dataset: str | None
    per_depth: int
    depths: tuple[int, ...]
    max_tokens: int
    answer_tokens: int
    lengths: Literal["fixed", "real"]
    repeats: int
    window_s: float
    warmup_s: float
    cooldown_s: float
    hli_power_w: float | None
    device: Literal["auto", "cpu", "cuda"]
    reference_batches: tuple[int, ...]
    burn_in: int = 1
    """Unscored passes over every cell before the repeats (see the module docstring)."""
    seed: int = 1001
    scratch: Path | None = None

    def steps(self) -> int:
        """Progress steps: warm-ups, windows, evaluations, reference runs."""
        n = len(self.variants)
        evals = n if self.dataset else 0
        return (
            n * len(self.batch_sizes)
            + (self.burn_in + self.repeats) * len(self.batch_sizes) * n
            + evals
            + n * len(self.reference_batches) * self.repeats
        )


@dataclass(frozen=True, slots=True)
class BenchRun:
    """What a sweep measured, before any maths."""

    config: BenchConfig
    environment: dict[str, Any]
    windows: tuple[Window, ...]
    accuracy: tuple[AccuracyItem, ...]
    reference: tuple[ReferenceRun, ...]
    weights_bytes: dict[str, int]
    energy_unavailable: str
    """Why there is no NVML energy ('' when there is)."""
    idle: GpuState | None = None
    """The GPU's state before the first warm-up (clocks and power at idle)."""


async def run_bench(config: BenchConfig, progress: Progress | None = None) -> BenchRun:
    """Run the sweep described in the module docstring."""
    tick = progress if progress is not None else (lambda _label: None)
    device = _device(config.device)
    with tempfile.TemporaryDirectory(dir=config.scratch, prefix="quanttrap-bench-") as scratch:
        source = await asyncio.to_thread(materialise, config.model, Path(scratch), device)
        backends: dict[str, EngineBackend] = {}
        counters: dict[str, TokenCounter] = {}
        try:
            for variant in config.variants:
                counters[variant] = TokenCounter()
                cfg = EngineBackendConfig(
                    kind="engine",
                    model=source,
                    precision=variant,  # type: ignore[arg-type]
                    device=config.device,
                    max_batch_size=max(config.batch_sizes),
                    batch_wait_ms=2.0,
                    max_new_tokens=max(config.max_tokens, config.answer_tokens),
                )
                backend = EngineBackend(variant, cfg)
                await backend.start()
                backends[variant] = backend
            return await _sweep(config, backends, counters, tick)
        finally:
            for backend in backends.values():
                await backend.aclose()
            gc.collect()


async def _sweep(
    config: BenchConfig,
    backends: dict[str, EngineBackend],
    counters: dict[str, TokenCounter],
    tick: Progress,
) -> BenchRun:
    first = next(iter(backends.values())).loaded
    assert first is not None
    uuid = None
    if first.device.type == "cuda":
        props_uuid = str(torch.cuda.get_device_properties(first.device).uuid)
        uuid = props_uuid if props_uuid.startswith("GPU-") else f"GPU-{props_uuid}"
    meter = GpuMeter(uuid)
    try:
        items = _items(config)
        prompts = [list(i.messages) for i in items]
        idle = meter.state()
        for variant, backend in backends.items():
            for size in config.batch_sizes:
                await run_wave(backend, [prompts[i % len(prompts)] for i in range(size)], 4, "warm")
                tick(f"warm-up {variant} b{size}")
        windows: list[Window] = []
        for repeat in range(1 - config.burn_in, config.repeats + 1):
            for size in config.batch_sizes:
                shift = (repeat - 1) % len(config.variants)
                order = config.variants[shift:] + config.variants[:shift]
                for variant in order:
                    spec = CellSpec(
                        variant=variant,
                        batch_size=size,
                        repeat=repeat,
                        max_tokens=config.max_tokens,
                        warmup_s=config.warmup_s,
                        window_s=config.window_s,
                        hli_power_w=config.hli_power_w,
                    )
                    windows.append(
                        await measure_window(
                            backends[variant], counters[variant], prompts, spec, meter
                        )
                    )
                    tick(f"r{repeat} b{size} {variant}")
                    await asyncio.sleep(config.cooldown_s)
        accuracy: list[AccuracyItem] = []
        if config.dataset is not None:
            for variant, backend in backends.items():
                accuracy += await evaluate(
                    backend,
                    variant,
                    config.dataset,
                    items,
                    concurrency=max(config.batch_sizes),
                    max_tokens=config.answer_tokens,
                )
                tick(f"accuracy {variant}")
        reference: list[ReferenceRun] = []
        for variant, backend in backends.items():
            loaded = backend.loaded
            assert loaded is not None
            for size in config.reference_batches:
                await asyncio.to_thread(
                    reference_run,
                    loaded,
                    variant,
                    prompts,
                    batch_size=size,
                    new_tokens=2,
                    repeat=0,
                    meter=meter,
                )  # warm-up of generate's own code path
                for repeat in range(1, config.repeats + 1):
                    run = await asyncio.to_thread(
                        reference_run,
                        loaded,
                        variant,
                        prompts,
                        batch_size=size,
                        new_tokens=config.max_tokens,
                        repeat=repeat,
                        meter=meter,
                    )
                    reference.append(run)
                    tick(f"reference {variant} b{size}")
        weights = {v: b.memory().weights_bytes for v, b in backends.items()}
        return BenchRun(
            config=config,
            environment=_environment(first.device, meter),
            windows=tuple(windows),
            accuracy=tuple(accuracy),
            reference=tuple(reference),
            weights_bytes=weights,
            energy_unavailable=meter.reason if not meter.available else "",
            idle=idle,
        )
    finally:
        meter.close()


def _items(config: BenchConfig) -> list[EvalItem]:
    if config.dataset is not None:
        return eval_items(config.dataset, config.per_depth, config.depths, config.seed)
    # Random weights: the multi-hop questions are still sensible prompts; nothing is graded.
    return eval_items("multihop", max(1, config.per_depth), config.depths, config.seed)


def _device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def _environment(device: torch.device, meter: GpuMeter) -> dict[str, Any]:
    import transformers

    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:
        env["bitsandbytes"] = None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["nvml_gpu"] = meter.name
        try:
            import pynvml

            env["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception:  # a record only
            env["driver"] = None
    return env
