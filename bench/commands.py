"""The ``quanttrap bench`` sub-command: the paper's experiment as a tool.

``proxy/cli.py`` calls :func:`add_commands`; the handler returns the exit status: 0 on success,
2 on bad arguments (one line on stderr naming the option; no traceback), 1 when the model
cannot be loaded. Progress goes to stderr (tqdm), the table to stdout (or JSON with ``--json``),
and the files to ``--out``:

- ``bench.json``: everything (config, environment, every window, spreads, COR, SI tables,
  B* verdicts, accuracy by depth, the reference path);
- ``si-b<B>.json`` (and ``si-b<B>-hli.json`` with ``--energy both|hli``): the rows
  ``quanttrap si --input`` reads, one file per batch size, energies never mixed;
- PNG plots (:mod:`bench.plots`) unless ``--no-plots``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bench.analysis import BITS
from bench.evaluation import DATASETS

__all__ = ["add_commands", "run_bench_command"]


class _BadArgument(Exception):
    pass


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` sub-parser to the ``quanttrap`` parser."""
    p = subparsers.add_parser(
        "bench",
        help="offline sweep of precisions x batch sizes (the paper's experiment), with plots",
        description="Measure each precision variant at each batch size through the in-process "
        "engine: tokens/s, energy per query and per token (NVML), peak GPU memory, accuracy by "
        "depth (real weights), COR, the SI pillars, SI, regime and B*. Steady-state windows, "
        "warm-up, cool-down, repeats with their spread; HF generate as a reference path.",
    )
    p.add_argument(
        "--model",
        default="probe",
        help="hub id, local path, 'probe', or random:qwen3-0.6b|mistral-7b|tiny",
    )
    p.add_argument(
        "--variants",
        default=None,
        help="comma list of fp32,fp16,bf16,int8,nf4 (default: bf16,int8,nf4 on CUDA, "
        "fp32,int8,nf4 on CPU)",
    )
    p.add_argument("--anchor", default=None, help="anchor variant (default: the most bits)")
    p.add_argument("--batch-sizes", default="1,4,16,64")
    p.add_argument(
        "--dataset",
        default=None,
        choices=(*DATASETS, "none"),
        help="evaluation set (default: multihop for real weights, none for random)",
    )
    p.add_argument("--per-depth", type=int, default=25, help="problems per depth")
    p.add_argument("--depths", default="1-8", help="e.g. 1-8 or 1,2,4")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=64,
        help="new tokens per query in the windows (the fixed budget)",
    )
    p.add_argument(
        "--answer-tokens", type=int, default=256, help="token budget of the graded answers"
    )
    p.add_argument(
        "--lengths",
        choices=("fixed", "real"),
        default=None,
        help="energy per query from the fixed budget or the real answer lengths "
        "(default: fixed for random weights, real otherwise)",
    )
    p.add_argument("--repeats", type=int, default=3, help="scored repeats")
    p.add_argument(
        "--burn-in",
        type=int,
        default=1,
        help="unscored passes over every cell first (kept in the JSON, left out of the maths)",
    )
    p.add_argument("--window-s", type=float, default=5.0, help="steady-state window per cell")
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--cooldown-s", type=float, default=2.0)
    p.add_argument(
        "--energy",
        choices=("nvml", "hli", "both"),
        default="nvml",
        help="hli adds the paper's rated-power x time estimate, labelled, never mixed",
    )
    p.add_argument(
        "--rated-power-w",
        type=float,
        default=None,
        help="power for HLI (default: the GPU's enforced power limit)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--reference-batches",
        default="1",
        help="batch sizes for the HF generate reference path ('' for none)",
    )
    p.add_argument("--seed", type=int, default=1001)
    p.add_argument("--out", type=Path, default=Path("bench-results"))
    p.add_argument("--scratch", type=Path, default=None, help="folder for random-weight models")
    p.add_argument("--json", action="store_true", help="print the results JSON, not the table")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="re-analyse a saved bench.json instead of measuring (other options but --anchor, "
        "--skip-repeats, --out, --json and --no-plots are ignored)",
    )
    p.add_argument("--skip-repeats", default="", help="repeats to leave out of the maths, e.g. 1")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_bench_command)


def run_bench_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``quanttrap bench``."""
    stream = out if out is not None else sys.stdout
    try:
        skip = frozenset(_ints(args.skip_repeats, "--skip-repeats")) if args.skip_repeats else None
        config = None if args.replay is not None else _config(args)
    except _BadArgument as exc:
        print(f"quanttrap bench: {exc}", file=sys.stderr)
        return 2
    from bench.report import analyse, results_json, si_rows, table

    if config is None:
        from bench.replay import ReplayError, load_run

        try:
            run = load_run(args.replay)
        except ReplayError as exc:
            print(f"quanttrap bench: --replay: {exc}", file=sys.stderr)
            return 2
    else:
        from backends.engine import EngineLoadError
        from bench.sweep import run_bench

        bar = _progress(config.steps(), args.quiet)
        try:
            run = asyncio.run(run_bench(config, bar))
        except EngineLoadError as exc:
            print(f"quanttrap bench: cannot load {config.model!r}: {exc}", file=sys.stderr)
            return 1
        finally:
            bar.close()
    try:
        analysis = analyse(run, args.anchor, skip or frozenset())
    except ValueError as exc:
        print(f"quanttrap bench: --anchor/--skip-repeats: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result = results_json(analysis)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    for energy, cards in analysis.cards.items():
        suffix = "" if energy == "nvml" else f"-{energy}"
        for size in cards:
            rows = si_rows(analysis, size, energy)
            (args.out / f"si-b{size}{suffix}.json").write_text(json.dumps(rows, indent=1) + "\n")
    if not args.no_plots:
        from bench.plots import write_plots

        write_plots(analysis, args.out)
    if args.json:
        json.dump(result, stream, indent=1)
        stream.write("\n")
    else:
        stream.write(table(analysis))
        stream.write(f"results in {args.out}/\n")
    return 0


def _config(args: argparse.Namespace) -> Any:
    from bench.models import RANDOM_PREFIX, SHAPES, has_real_weights
    from bench.sweep import BenchConfig

    preset = args.model[len(RANDOM_PREFIX) :] if args.model.startswith(RANDOM_PREFIX) else None
    if preset is not None and preset not in SHAPES:
        known = ", ".join(RANDOM_PREFIX + s for s in SHAPES)
        raise _BadArgument(f"--model: unknown random-weight preset {args.model!r}; known: {known}")

    cuda = _cuda(args.device)
    default_variants = "bf16,int8,nf4" if cuda else "fp32,int8,nf4"
    variants = tuple(_names(args.variants or default_variants, "--variants"))
    unknown = [v for v in variants if v not in BITS]
    if unknown or not variants or len(set(variants)) != len(variants):
        raise _BadArgument(
            f"--variants: {args.variants!r}: give distinct names of {', '.join(BITS)}"
        )
    if args.anchor is not None and args.anchor not in variants:
        raise _BadArgument(f"--anchor: {args.anchor!r} is not one of --variants {list(variants)}")
    sizes = _ints(args.batch_sizes, "--batch-sizes")
    refs = _ints(args.reference_batches, "--reference-batches") if args.reference_batches else ()
    depths = _depths(args.depths)
    real = has_real_weights(args.model)
    dataset = args.dataset if args.dataset is not None else ("multihop" if real else "none")
    if dataset != "none" and not real:
        raise _BadArgument("--dataset: random weights answer noise; use --dataset none")
    for name, value in (
        ("--per-depth", args.per_depth),
        ("--max-tokens", args.max_tokens),
        ("--answer-tokens", args.answer_tokens),
        ("--repeats", args.repeats),
    ):
        if value < 1:
            raise _BadArgument(f"{name}: must be >= 1, got {value}")
    if args.burn_in < 0:
        raise _BadArgument(f"--burn-in: must be >= 0, got {args.burn_in}")
    if args.window_s <= 0 or args.warmup_s < 0 or args.cooldown_s < 0:
        raise _BadArgument("--window-s must be > 0, --warmup-s and --cooldown-s >= 0")
    power = args.rated_power_w
    if args.energy in ("hli", "both"):
        if power is None:
            power = _power_limit_w() if cuda else None
        if power is None or power <= 0:
            raise _BadArgument("--energy hli: give --rated-power-w (no GPU power limit to read)")
    elif power is not None:
        raise _BadArgument("--rated-power-w is used only with --energy hli or both")
    return BenchConfig(
        model=args.model,
        variants=variants,
        batch_sizes=sizes,
        dataset=None if dataset == "none" else dataset,
        per_depth=args.per_depth,
        depths=depths,
        max_tokens=args.max_tokens,
        answer_tokens=args.answer_tokens,
        lengths=args.lengths or ("real" if real and dataset != "none" else "fixed"),
        repeats=args.repeats,
        window_s=args.window_s,
        warmup_s=args.warmup_s,
        cooldown_s=args.cooldown_s,
        hli_power_w=power,
        device=args.device,
        reference_batches=refs,
        burn_in=args.burn_in,
        seed=args.seed,
        scratch=args.scratch,
    )


def _names(text: str, option: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise _BadArgument(f"{option}: empty")
    return names


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in _names(text, option))
    except ValueError:
        raise _BadArgument(f"{option}: expected whole numbers, got {text!r}") from None
    if any(v < 1 for v in values) or len(set(values)) != len(values):
        raise _BadArgument(f"{option}: expected distinct numbers >= 1, got {text!r}")
    return tuple(sorted(values))


def _depths(text: str) -> tuple[int, ...]:
    if "-" in text and "," not in text:
        lo, _, hi = text.partition("-")
        try:
            values = tuple(range(int(lo), int(hi) + 1))
        except ValueError:
            raise _BadArgument(f"--depths: expected e.g. 1-8 or 1,2,4, got {text!r}") from None
    else:
        values = _ints(text, "--depths")
    if not values or min(values) < 1 or max(values) > 25:
        raise _BadArgument(f"--depths: depths must be in 1..25, got {text!r}")
    return values


def _cuda(device: str) -> bool:
    if device == "cpu":
        return False
    import torch

    return bool(torch.cuda.is_available())


def _power_limit_w() -> float | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return float(pynvml.nvmlDeviceGetEnforcedPowerLimit(handle)) / 1000.0
    except Exception:  # no NVML: the caller asks for --rated-power-w
        return None


class _Bar:
    """tqdm on stderr, or nothing with --quiet. Called with a label after each step."""

    def __init__(self, total: int, quiet: bool) -> None:
        self._bar: Any = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True)

    def __call__(self, label: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _progress(total: int, quiet: bool) -> _Bar:
    return _Bar(total, quiet)
