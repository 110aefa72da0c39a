"""Greedy accuracy of the probe model by reasoning depth, at each precision, on this machine.

Usage (from the repository root; CPU is fine, about 10 minutes for all three precisions)::

    python -m training.eval_probe --per-depth 100 --precisions fp32 int8 nf4 --json out.json

``int8`` is bitsandbytes LLM.int8() (``BitsAndBytesConfig(load_in_8bit=True)``), ``nf4`` is
bitsandbytes NF4 with double quantization and an fp32 compute dtype: the paper's two weight-only
schemes. The problems are a held-out ``split="eval"`` set from
:func:`scoring.datasets.multihop.generate` (never seen in training), the same problems for every
precision so the accuracies are paired. Each accuracy carries a Wilson 95% interval.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedTokenizerBase,
)

from scoring.datasets.multihop import MultiHopItem, as_chat_messages, generate
from scoring.graders import get_grader
from scoring.stats import mcnemar_exact, wilson_interval

__all__ = [
    "PRECISIONS",
    "accuracy_table",
    "evaluate",
    "format_table",
    "load_probe",
    "main",
    "paired_test",
]

PRECISIONS = ("fp32", "bf16", "int8", "nf4")
_TOKENS_PER_STEP = 18  # the longest step line, "x = 10 + 89 = 99\n", is 17 characters
_TOKENS_FINAL = 12


def load_probe(path: Path, precision: str, device: str = "cpu") -> Any:
    """The probe model at ``precision`` (``fp32``, ``bf16``, ``int8`` or ``nf4``), in eval mode."""
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if precision == "bf16":
        kwargs["dtype"] = torch.bfloat16
    elif precision == "int8":
        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_8bit=True
        )
    elif precision == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32,
        )
    elif precision != "fp32":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if "quantization_config" in kwargs:
        kwargs["device_map"] = device  # bitsandbytes quantizes while placing the weights
    model: Any = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    if "quantization_config" not in kwargs:
        model = model.to(device)
    return model.eval()


@torch.inference_mode()
def evaluate(
    model: Any, tokenizer: PreTrainedTokenizerBase, items: Sequence[MultiHopItem], batch_size: int
) -> list[bool]:
    """Whether greedy decoding answers each item correctly (batched, left-padded, by depth)."""
    order = sorted(range(len(items)), key=lambda i: items[i].depth)
    correct = [False] * len(items)
    device = next(model.parameters()).device
    grader = get_grader("multihop")  # the canaries' grader: strict "#### n", else the last number
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        prompts = [
            tokenizer.apply_chat_template(
                as_chat_messages(items[i]), add_generation_prompt=True, tokenize=False
            )
            for i in chunk
        ]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        depth = max(items[i].depth for i in chunk)
        output = model.generate(
            **encoded.to(device),
            do_sample=False,
            max_new_tokens=_TOKENS_PER_STEP * depth + _TOKENS_FINAL,
        )
        texts = tokenizer.batch_decode(
            output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
        )
        for i, text in zip(chunk, texts, strict=True):
            correct[i] = grader.grade(text, str(items[i].answer)).correct
    return correct


def accuracy_table(
    items: Sequence[MultiHopItem], correct: Sequence[bool]
) -> dict[str, dict[str, float]]:
    """Per depth (and ``"all"``): n, correct, accuracy and its Wilson 95% interval."""
    groups: dict[str, list[bool]] = {}
    for item, ok in zip(items, correct, strict=True):
        groups.setdefault(str(item.depth), []).append(ok)
    groups["all"] = list(correct)
    table: dict[str, dict[str, float]] = {}
    for key, oks in groups.items():
        interval = wilson_interval(sum(oks), len(oks))
        table[key] = {
            "n": len(oks),
            "correct": sum(oks),
            "accuracy": round(interval.estimate, 4),
            "wilson_low": round(interval.low, 4),
            "wilson_high": round(interval.high, 4),
        }
    return table


def paired_test(anchor: Sequence[bool], variant: Sequence[bool]) -> dict[str, float]:
    """McNemar's exact test between two precisions answering the same items."""
    anchor_only = sum(a and not v for a, v in zip(anchor, variant, strict=True))
    variant_only = sum(v and not a for a, v in zip(anchor, variant, strict=True))
    result = mcnemar_exact(anchor_only, variant_only)
    return {"anchor_only": anchor_only, "variant_only": variant_only, "p_value": result.p_value}


def format_table(table: dict[str, dict[str, float]]) -> str:
    lines = ["depth    n  correct  accuracy  wilson95"]
    for key, row in table.items():
        lines.append(
            f"{key:>5} {int(row['n']):4d} {int(row['correct']):8d} {row['accuracy']:9.3f}"
            f"  [{row['wilson_low']:.3f}, {row['wilson_high']:.3f}]"
        )
    return "\n".join(lines)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("backends/probe_model"))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["fp32"])
    parser.add_argument("--per-depth", type=int, default=100)
    parser.add_argument("--depths", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--seed", type=int, default=1001, help="evaluation-set seed")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the tables here")
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    # bitsandbytes logs on every int8 matmul that fp32 inputs are cast to fp16: known, expected.
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    depths = tuple(args.depths)
    items = generate(len(depths) * args.per_depth, seed=args.seed, depths=depths, split="eval")
    results: dict[str, Any] = {"seed": args.seed, "per_depth": args.per_depth, "tables": {}}
    for precision in args.precisions:
        model = load_probe(args.model, precision, args.device)
        started = time.monotonic()
        correct = evaluate(model, tokenizer, items, args.batch)
        seconds = time.monotonic() - started
        table = accuracy_table(items, correct)
        results["tables"][precision] = {
            "seconds": round(seconds, 1),
            "by_depth": table,
            "correct": correct,  # per item, same order for every precision: paired comparisons
        }
        print(f"{precision} ({args.device}, {seconds:.0f} s):\n{format_table(table)}", flush=True)
        anchor = results["tables"][args.precisions[0]]["correct"]
        if precision != args.precisions[0]:
            paired = paired_test(anchor, correct)
            results["tables"][precision]["mcnemar_vs_" + args.precisions[0]] = paired
            print(f"paired with {args.precisions[0]}: {paired}", flush=True)
        del model
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
