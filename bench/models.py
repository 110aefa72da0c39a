"""Which model a bench runs: a hub id, a local path, ``probe``, or a random-weight preset.

``random:<shape>`` builds a model with a published architecture and random weights (nothing
is downloaded): it decodes at the speed of the trained model of that shape (same matrices, same
kernels) but its text is noise, so it has no accuracy. It is written once to a scratch folder
as safetensors (bf16 on CUDA, fp32 on CPU) with the probe model's tokenizer, then loaded by the
engine exactly as a real checkpoint is: natively, or through bitsandbytes for int8 and nf4.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

__all__ = ["RANDOM_PREFIX", "SHAPES", "has_real_weights", "materialise"]

RANDOM_PREFIX = "random:"

# Published config.json shapes (huggingface.co/Qwen/Qwen3-0.6B, mistralai/Mistral-7B-v0.1), and
# a tiny Llama for CPU checks (widths multiples of 128, as bitsandbytes' CPU NF4 kernel needs).
SHAPES: dict[str, dict[str, Any]] = {
    "qwen3-0.6b": {
        "model_type": "qwen3",
        "vocab_size": 151936,
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "attention_bias": False,
    },
    "mistral-7b": {
        "model_type": "mistral",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "tie_word_embeddings": False,
    },
    "tiny": {
        "model_type": "llama",
        "vocab_size": 128,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
    },
}


def has_real_weights(model: str) -> bool:
    """Everything but a ``random:`` preset is assumed to be trained."""
    return not model.startswith(RANDOM_PREFIX)


def materialise(model: str, scratch: Path, device: str) -> str:
    """The name or folder the engine loads: a preset is built into ``scratch`` first.

    ``device`` is ``cuda`` or ``cpu``: where the random weights are drawn (bf16 on CUDA,
    fp32 on CPU). Raises ValueError naming the known presets for an unknown one.
    """
    if not model.startswith(RANDOM_PREFIX):
        return model
    shape_name = model[len(RANDOM_PREFIX) :]
    if shape_name not in SHAPES:
        known = ", ".join(RANDOM_PREFIX + s for s in SHAPES)
        raise ValueError(f"unknown random-weight preset {model!r}; known: {known}")
    folder = scratch / shape_name
    if (folder / "config.json").exists():
        return str(folder)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from backends.probe import probe_model_path

    shape = dict(SHAPES[shape_name])
    config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    tokenizer = AutoTokenizer.from_pretrained(probe_model_path())
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)  # the same random model on every run
    with torch.device(device):
        built = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    built.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del built
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return str(folder)
