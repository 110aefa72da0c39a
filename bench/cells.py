"""One steady-state window: ``batch_size`` requests kept in flight through the engine.

The engine is driven exactly as the proxy drives it (``EngineBackend.send`` with OpenAI chat
bodies, greedy): ``batch_size`` client loops each send a request, wait for its answer and send
the next at once, so the batch stays full. After a warm-up (the batch's first decode step
done and ``warmup_s`` passed) a window of ``window_s`` seconds is timed: tokens are counted by
the engine's per-step hook (``on_tokens``, the one telemetry uses), energy is the GPU's NVML
counter delta over the same instants. The loops are then cancelled (the engine drops their rows
at the next step) so the next cell starts from an idle GPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import torch

from backends.base import BackendRequest
from backends.engine import EngineBackend
from bench.gpu import GpuMeter
from bench.records import Window

__all__ = ["CellSpec", "TokenCounter", "measure_window", "run_wave"]


class TokenCounter:
    """Every request's ``on_tokens`` callback: tokens generated so far by one variant.

    Written only by the variant's worker thread (one writer); read from the event loop.
    """

    def __init__(self) -> None:
        self.tokens = 0

    def __call__(self, n_tokens: int) -> None:
        self.tokens += n_tokens


@dataclass(frozen=True, slots=True)
class CellSpec:
    """What one window measures and how long it takes (seconds)."""

    variant: str
    batch_size: int
    repeat: int
    max_tokens: int
    warmup_s: float
    window_s: float
    hli_power_w: float | None = None


def _body(messages: Sequence[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    return {"model": "bench", "messages": list(messages), "max_tokens": max_tokens}


async def run_wave(
    backend: EngineBackend, prompts: Sequence[Sequence[dict[str, str]]], max_tokens: int, tag: str
) -> list[dict[str, Any]]:
    """Send every prompt at once and return the parsed answers (warm-up and evaluation)."""

    async def one(i: int, messages: Sequence[dict[str, str]]) -> dict[str, Any]:
        response = await backend.send(
            BackendRequest("chat", _body(messages, max_tokens), False, f"{tag}-{i}")
        )
        body: dict[str, Any] = orjson.loads(response.body)
        if response.status != 200:
            raise RuntimeError(f"{backend.name}: the engine answered {response.status}: {body}")
        return body

    return list(await asyncio.gather(*(one(i, m) for i, m in enumerate(prompts))))


async def measure_window(
    backend: EngineBackend,
    counter: TokenCounter,
    prompts: Sequence[Sequence[dict[str, str]]],
    spec: CellSpec,
    meter: GpuMeter,
) -> Window:
    """Run one cell and return its window (see the module docstring for the method)."""
    loaded = backend.loaded
    if loaded is None:
        raise RuntimeError(f"variant {spec.variant!r} is not loaded")
    device = loaded.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    finished: list[tuple[float, int, float | None]] = []
    stop = asyncio.Event()

    async def client(k: int) -> None:
        i = k
        while not stop.is_set():
            messages = prompts[i % len(prompts)]
            request_id = f"{spec.variant}-b{spec.batch_size}-r{spec.repeat}-{k}-{i}"
            response = await backend.send(
                BackendRequest(
                    "chat",
                    _body(messages, spec.max_tokens),
                    False,
                    request_id,
                    on_tokens=counter,  # per decode step, as telemetry's observer gets them
                )
            )
            if response.status != 200:
                raise RuntimeError(f"{spec.variant}: the engine answered {response.status}")
            usage = orjson.loads(response.body)["usage"]["completion_tokens"]
            mean_batch = response.info.extra.get("mean_batch_size")
            finished.append((time.perf_counter(), int(usage), mean_batch))
            i += spec.batch_size

    tasks = [asyncio.create_task(client(k)) for k in range(spec.batch_size)]
    try:
        began, first = time.perf_counter(), counter.tokens
        while (
            counter.tokens - first < spec.batch_size or time.perf_counter() - began < spec.warmup_s
        ):
            _raise_failed(tasks)
            await asyncio.sleep(0.005)
        state_start = meter.state()
        e0, n0, t0 = meter.energy_j(), counter.tokens, time.perf_counter()
        await asyncio.sleep(spec.window_s)
        e1, n1, t1 = meter.energy_j(), counter.tokens, time.perf_counter()
        state_end = meter.state()
        _raise_failed(tasks)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            raise outcome
    peak: int | None = None
    memory_method = "weights only: no per-variant peak on CPU"
    weights = backend.memory().weights_bytes
    if cuda:
        torch.cuda.synchronize(device)
        peak = weights + max(0, torch.cuda.max_memory_allocated(device) - base)
        memory_method = (
            "weights + increase of torch.cuda.max_memory_allocated during the cell "
            "(KV cache, activations, workspaces of this variant at this batch size)"
        )
    else:
        peak = weights
    inside = [(tok, mb) for (t, tok, mb) in finished if t0 <= t <= t1]
    batches = [mb for _, mb in inside if mb is not None]
    seconds = t1 - t0
    return Window(
        variant=spec.variant,
        batch_size=spec.batch_size,
        repeat=spec.repeat,
        seconds=seconds,
        tokens=n1 - n0,
        completed_tokens=tuple(tok for tok, _ in inside),
        mean_batch=sum(batches) / len(batches) if batches else None,
        energy_j=None if e0 is None or e1 is None else e1 - e0,
        energy_method=meter.method,
        hli_j=None if spec.hli_power_w is None else spec.hli_power_w * seconds,
        peak_bytes=peak,
        memory_method=memory_method,
        state_start=state_start,
        state_end=state_end,
    )


def _raise_failed(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
