"""Load a Hugging Face causal LM and its tokenizer once, at one precision.

Precisions: ``fp32`` / ``fp16`` / ``bf16`` load natively; ``int8`` is bitsandbytes LLM.int8()
and ``nf4`` is bitsandbytes 4-bit NF4 with double quantization, computing in the device's native
dtype (bf16 on CUDA, fp32 on CPU), as in the paper. Loading blocks for seconds to minutes: the
backend calls :func:`load_model` from a thread, never on the event loop.

Where the model comes from: the name ``probe`` is the small model shipped with quanttrap; an
existing directory is loaded from disk; anything else is a hub id, looked up in the local
Hugging Face cache first and downloaded only when the hub is reachable and not switched off
(``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``). A failure names every place that was tried.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from backends.base import BackendError

__all__ = [
    "EngineLoadError",
    "LoadedModel",
    "Precision",
    "load_model",
    "resolve_device",
    "resolve_model_source",
]

Precision = Literal["fp32", "fp16", "bf16", "int8", "nf4"]

_NATIVE_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
_PROBE = "probe"


class EngineLoadError(BackendError):
    """The model or tokenizer could not be loaded; the message says what was tried."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready for inference, with what the scheduler needs to know about it."""

    model: Any
    """The ``transformers`` causal LM, in eval mode, on ``device``."""
    tokenizer: Any
    device: torch.device
    precision: Precision
    compute_dtype: torch.dtype
    """Dtype of activations and logits (bitsandbytes layers compute in it too)."""
    source: str
    """Where it was loaded from: a directory or a hub id."""
    max_context_tokens: int | None
    """``max_position_embeddings`` of the config, when it has one."""
    eos_token_ids: frozenset[int]
    pad_token_id: int


def resolve_device(device: Literal["auto", "cpu", "cuda"]) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise EngineLoadError("device 'cuda' was asked for but torch sees no CUDA device")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def resolve_model_source(name: str) -> tuple[str, bool]:
    """``(where, is_local)``: a directory to load from, or a hub id to look up."""
    if name == _PROBE:
        try:
            from backends.probe import probe_model_path
        except ImportError as exc:
            raise EngineLoadError(
                f"model 'probe': the shipped probe model is not available ({exc})"
            ) from exc
        try:
            path = Path(probe_model_path())
        except OSError as exc:  # the package was installed without its data files
            raise EngineLoadError(f"model 'probe': {exc}") from exc
        return str(path), True
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name:
        # A path, not an ``org/name`` hub id: asking the hub about it would only add confusion.
        raise EngineLoadError(
            f"model {name!r}: no such directory ({path.resolve()}); "
            "give an existing local model directory or a Hugging Face hub id"
        )
    return name, False


def _hub_offline() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(flag.strip().lower() in {"1", "true", "yes", "on"} for flag in flags)


def _quantization(precision: Precision, compute: torch.dtype) -> BitsAndBytesConfig | None:
    # transformers leaves BitsAndBytesConfig.__init__ unannotated.
    if precision == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    if precision == "nf4":
        return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    return None


def _compute_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    if precision in _NATIVE_DTYPES:
        return _NATIVE_DTYPES[precision]
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _from_pretrained(where: str, is_local: bool, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """Tokenizer and model; a hub id is tried in the local cache before the network."""
    attempts = [True] if is_local or _hub_offline() else [True, False]
    failures: list[str] = []
    for local_only in attempts:
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
            model = AutoModelForCausalLM.from_pretrained(
                where, local_files_only=local_only, **kwargs
            )
        except OSError as exc:
            failures.append(f"{'local cache' if local_only else 'download'}: {exc}")
            continue
        return tokenizer, model
    if is_local:
        raise EngineLoadError(f"model directory {where} could not be loaded: {failures[0]}")
    how = (
        "downloads are switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)"
        if _hub_offline()
        else "the download failed too (is this machine offline?)"
    )
    raise EngineLoadError(
        f"model {where!r}: not a local directory ({Path(where).resolve()}) and not in the "
        f"Hugging Face cache ({_hub_cache()}); {how}. Tried: " + " | ".join(failures)
    )


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


class _OnceFilter(logging.Filter):
    """Let a repeated log message through once.

    bitsandbytes logs "MatMul8bitLt: inputs will be cast ..." on every int8 matmul whose input
    is not fp16: once per layer per decode step, which would drown the server's log.
    """

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix
        self._seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self._prefix):
            return True
        seen, self._seen = self._seen, True
        return not seen


_INT8_CAST_FILTER = _OnceFilter("MatMul8bitLt: inputs will be cast")


def _quiet_int8_cast_log() -> None:
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if _INT8_CAST_FILTER not in logger.filters:
        logger.addFilter(_INT8_CAST_FILTER)


def load_model(
    name: str, precision: Precision, device: Literal["auto", "cpu", "cuda"] = "auto"
) -> LoadedModel:
    """Load ``name`` at ``precision`` on ``device``; raises :class:`EngineLoadError`."""
    where, is_local = resolve_model_source(name)
    target = resolve_device(device)
    compute = _compute_dtype(precision, target)
    kwargs: dict[str, Any] = {"dtype": compute}
    quantization = _quantization(precision, compute)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        # bitsandbytes quantizes while placing the weights: they must go straight to the device.
        kwargs["device_map"] = {"": target.index if target.type == "cuda" else "cpu"}
        _quiet_int8_cast_log()
    try:
        tokenizer, model = _from_pretrained(where, is_local, kwargs)
        if quantization is None:
            model = model.to(target)
    except EngineLoadError:
        raise
    except (ValueError, RuntimeError, ImportError, KeyError) as exc:
        raise EngineLoadError(f"model {where!r} at {precision} on {target}: {exc}") from exc
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=target,
        precision=precision,
        compute_dtype=compute,
        source=where,
        max_context_tokens=getattr(model.config, "max_position_embeddings", None),
        eos_token_ids=_eos_ids(model, tokenizer),
        pad_token_id=_pad_id(model, tokenizer),
    )


def _as_ids(value: object) -> set[int]:
    if isinstance(value, int):
        return {value}
    if isinstance(value, list | tuple):
        return {v for v in value if isinstance(v, int)}
    return set()


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids = _as_ids(getattr(tokenizer, "eos_token_id", None))
    ids |= _as_ids(getattr(model.config, "eos_token_id", None))
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        ids |= _as_ids(getattr(generation, "eos_token_id", None))
    return frozenset(ids)


def _pad_id(model: Any, tokenizer: Any) -> int:
    """Any valid id works: padded positions are masked out. Prefer the declared pad token."""
    for candidate in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(model.config, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if isinstance(candidate, int):
            return candidate
    return 0
