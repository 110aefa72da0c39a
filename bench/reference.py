"""The reference decoding path: Hugging Face ``generate`` on the very model the engine loaded.

One call decodes ``batch_size`` left-padded prompts for exactly ``new_tokens`` tokens each
(``min_new_tokens`` = ``max_new_tokens``, greedy), so its throughput has no length confound. It
is timed with CUDA synchronisation and metered with the same NVML counter as the engine's
windows. Each call is one measurement (not a ≥5 s steady-state window): it is a cross-check
of the engine's figures, not the headline. Called only while the variant's engine is idle.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from backends.engine import LoadedModel
from bench.gpu import GpuMeter
from bench.records import ReferenceRun

__all__ = ["reference_run"]


def reference_run(
    loaded: LoadedModel,
    variant: str,
    prompts: Sequence[Sequence[dict[str, str]]],
    *,
    batch_size: int,
    new_tokens: int,
    repeat: int,
    meter: GpuMeter,
) -> ReferenceRun:
    """Time one ``generate`` call (blocking: run it in a thread)."""
    tok = loaded.tokenizer
    texts = [
        tok.apply_chat_template(
            list(prompts[i % len(prompts)]), tokenize=False, add_generation_prompt=True
        )
        for i in range(batch_size)
    ]
    side = tok.padding_side
    tok.padding_side = "left"  # decoder-only: pad on the left so every row continues its prompt
    try:
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    enc = {k: v.to(loaded.device) for k, v in enc.items()}
    cuda = loaded.device.type == "cuda"
    with torch.inference_mode():
        if cuda:
            torch.cuda.synchronize(loaded.device)
        e0, t0 = meter.energy_j(), time.perf_counter()
        out = loaded.model.generate(
            **enc,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=loaded.pad_token_id,
        )
        if cuda:
            torch.cuda.synchronize(loaded.device)
        t1, e1 = time.perf_counter(), meter.energy_j()
    generated = int(out.shape[1] - enc["input_ids"].shape[1])
    if generated != new_tokens:
        raise RuntimeError(f"{variant}: generate produced {generated} tokens, not {new_tokens}")
    return ReferenceRun(
        variant=variant,
        batch_size=batch_size,
        repeat=repeat,
        seconds=t1 - t0,
        new_tokens=new_tokens,
        energy_j=None if e0 is None or e1 is None else e1 - e0,
    )
