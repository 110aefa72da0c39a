"""How much memory a variant holds: its weights exactly, and a peak that says what it covers.

Weights are counted from storage, not from parameter shapes: bitsandbytes keeps int8 weights
as ``int8`` tensors with a float scale per row (``SCB``), and NF4 weights as packed ``uint8``
(two 4-bit values per byte) with their quantization state beside the parameter (block absmax,
itself quantized under double quantization, the second-level absmax and the code book). Each
storage is counted once, so tied embeddings and shared code books are not double-counted.

The peak is what the platform can tell per process, and the report's ``method`` says which:
on CUDA, ``torch.cuda.max_memory_allocated`` of the variant's device (every variant on that GPU
and the whole process lifetime, not this variant alone; the CUDA context and the caching
allocator's reserve come on top); on CPU, the process's peak resident set size (every variant,
the proxy and Python itself).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from typing import Any

import torch

from backends.base import MemoryReport

__all__ = ["MemoryReport", "memory_report", "weights_bytes"]


def _tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Tensors reachable from a parameter's attributes (bitsandbytes' state lives there)."""
    if depth > 3:
        return
    if isinstance(value, torch.Tensor):
        yield value
        return
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        for name, item in attributes.items():
            if name != "module":  # Params4bit points back at its module
                yield from _tensors(item, depth + 1)


def weights_bytes(model: torch.nn.Module) -> int:
    """Bytes of distinct storage behind the model's parameters, buffers and quant state."""
    seen: dict[tuple[torch.device, int], int] = {}

    def count(tensor: torch.Tensor) -> None:
        if tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        seen.setdefault((tensor.device, storage.data_ptr()), storage.nbytes())

    for parameter in model.parameters():
        count(parameter)
        for state in _tensors(vars(parameter)):
            count(state)
    for buffer in model.buffers():
        count(buffer)
    return sum(seen.values())


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def memory_report(model: torch.nn.Module, device: torch.device, weights: int) -> MemoryReport:
    """``weights`` is :func:`weights_bytes` taken once after loading (it does not change)."""
    if device.type == "cuda":
        return MemoryReport(
            weights_bytes=weights,
            peak_bytes=int(torch.cuda.max_memory_allocated(device)),
            method=(
                f"weights: parameter+buffer+quantization-state storage; peak: "
                f"torch.cuda.max_memory_allocated({device}), device-wide since process start "
                "(all variants on this GPU; CUDA context and allocator cache not included)"
            ),
        )
    return MemoryReport(
        weights_bytes=weights,
        peak_bytes=_peak_rss_bytes(),
        method=(
            "weights: parameter+buffer+quantization-state storage; peak: process peak RSS "
            "(ru_maxrss), process-wide (all variants, the proxy and Python)"
        ),
    )
