"""Train the probe model: a 4-layer Llama that solves synthetic multi-hop arithmetic.

Usage (from the repository root; about 5 minutes on one H100, far longer on a CPU)::

    python -m training.train_probe --out backends/probe_model

Reproducible: the model's initial weights come from ``--seed`` and the training batches from
:func:`scoring.datasets.multihop.generate` with seeds derived from ``--seed`` and the step number,
``split="train"`` only. (Bitwise equality across GPUs and library versions is not promised:
CUDA reductions are not deterministic.) At the end the model is evaluated with greedy decoding
on a held-out ``split="eval"`` set, per depth, and saved in Hugging Face format together with
its tokenizer.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from scoring.datasets.multihop import generate, reference_completion
from training.eval_probe import accuracy_table, evaluate, format_table
from training.probe_tokenizer import ChatEncoder, build_tokenizer, save_tokenizer

__all__ = ["main", "make_config"]

_IGNORE = -100
_VOCAB_SIZE = 128  # 103 tokens used; padded to a multiple of 128 like every other width


def make_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """The architecture: every matrix width a multiple of 128 (bitsandbytes NF4 on CPU needs it)."""
    return LlamaConfig(
        vocab_size=_VOCAB_SIZE,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


class _Batches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Batch ``step`` of training: fresh problems drawn with a seed derived from the step."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, batch: int, seed: int, steps: int):
        self._encoder = ChatEncoder(tokenizer)
        self._pad = int(tokenizer.pad_token_id)
        self._batch = batch
        self._seed = seed
        self._steps = steps

    def __len__(self) -> int:
        return self._steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        items = generate(self._batch, seed=self._seed * 1_000_003 + step, split="train")
        encoded = [self._encoder.encode(i.question, reference_completion(i)) for i in items]
        length = max(len(ids) for ids, _ in encoded)
        # Right padding without an attention mask: causal attention never lets a real token see
        # the pads after it, and pads carry no loss.
        inputs = torch.full((len(encoded), length), self._pad, dtype=torch.long)
        labels = torch.full((len(encoded), length), _IGNORE, dtype=torch.long)
        for row, (ids, start) in enumerate(encoded):
            inputs[row, : len(ids)] = torch.tensor(ids)
            labels[row, start : len(ids)] = torch.tensor(ids[start:])
        return inputs, labels


def _check_encoder(tokenizer: PreTrainedTokenizerFast) -> None:
    """The fast training encoding must equal what the chat template gives at inference."""
    item = generate(1, seed=0, depths=(3,), split="train")[0]
    answer = reference_completion(item)
    ids, start = ChatEncoder(tokenizer).encode(item.question, answer)
    messages = [{"role": "user", "content": item.question}]
    prompt = str(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    )
    expected = tokenizer(prompt + answer + str(tokenizer.eos_token), add_special_tokens=False)
    if ids != expected["input_ids"] or ids[:start] != tokenizer(prompt)["input_ids"]:
        raise RuntimeError("ChatEncoder disagrees with the chat template")


def _learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to save the model to")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20260213)
    parser.add_argument("--eval-per-depth", type=int, default=100)
    parser.add_argument("--eval-seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument(
        "--fit-minutes",
        type=float,
        default=None,
        help="after 100 steps, lower --steps so that training fits in this time (prints it)",
    )
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = build_tokenizer()
    _check_encoder(tokenizer)
    model: Any = LlamaForCausalLM(make_config(tokenizer))
    model = model.to(device)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"device={device} parameters={parameters:,}", flush=True)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.lr,
        betas=(0.9, 0.98),
        weight_decay=0.1,
        fused=device.type == "cuda",
    )
    loader = DataLoader(
        _Batches(tokenizer, args.batch, args.seed, args.steps),
        batch_size=None,
        num_workers=args.workers,
        prefetch_factor=4 if args.workers else None,
        pin_memory=device.type == "cuda",
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    model.train()
    started = time.monotonic()
    steps = args.steps
    marks: list[float] = []
    for step, (inputs, labels) in enumerate(loader):
        if step == steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, steps, args.lr, args.warmup)
        with autocast:
            loss = model(
                input_ids=inputs.to(device, non_blocking=True),
                labels=labels.to(device, non_blocking=True),
            ).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 200 == 0 or step + 1 == steps:
            elapsed = time.monotonic() - started
            print(f"step {step:5d} loss {loss.item():.4f} elapsed {elapsed:6.1f}s", flush=True)
        if args.fit_minutes is not None and step in (50, 150):
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks.append(time.monotonic())
            if len(marks) == 2:  # steady-state speed, start-up excluded
                per_step = (marks[1] - marks[0]) / 100
                steps = min(steps, int((args.fit_minutes * 60 - (marks[1] - started)) / per_step))
                print(f"{per_step * 1000:.1f} ms/step: training for {steps} steps", flush=True)
    train_seconds = time.monotonic() - started
    model.eval()
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        do_sample=False,
        max_new_tokens=200,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float32).save_pretrained(str(args.out))
    save_tokenizer(tokenizer, args.out)
    items = generate(8 * args.eval_per_depth, seed=args.eval_seed, split="eval")
    correct = evaluate(model, tokenizer, items, batch_size=args.eval_per_depth)
    table = accuracy_table(items, correct)
    print(f"held-out greedy accuracy ({device}, fp32 weights):\n{format_table(table)}", flush=True)
    summary = {
        "steps": steps,
        "train_seconds": round(train_seconds, 1),
        "parameters": parameters,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "eval_seed": args.eval_seed,
        "accuracy_by_depth": table,
    }
    (args.out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
