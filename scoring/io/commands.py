"""The ``quanttrap si`` and ``quanttrap grade`` sub-commands (the CLI edge of ``scoring``).

``quanttrap/cli.py`` builds the ``quanttrap`` parser and calls :func:`add_commands`; each
sub-parser sets ``handler``, a function of the parsed arguments returning the exit status:
0 on success, 2 on bad input (one line on stderr naming the file, row and field; no
traceback). This module reads files and prints; the maths stays in the pure modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from scoring.graders import GRADERS, GradeResult, get_grader
from scoring.hops import DEPTH_BUCKETS, depth_bucket
from scoring.io.measurements_file import InputError, read_measurements
from scoring.pillars import SIConfig
from scoring.regimes import Tolerances
from scoring.scorecard import Scorecard, VariantScore, score_variants
from scoring.stats import wilson_interval

__all__ = ["add_commands", "run_grade", "run_si"]


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``si`` and ``grade`` sub-parsers to the ``quanttrap`` parser."""
    si = subparsers.add_parser(
        "si",
        help="offline SI table from per-variant measurements",
        description="Score each precision variant against the anchor: COR, the trust, "
        "economic and energy pillars, SI, regime and scaling-law divergences.",
    )
    si.add_argument("--input", required=True, type=Path, help="JSON list or CSV of variants")
    si.add_argument("--anchor", help="anchor variant (default: the one with the most bits)")
    si.add_argument("--json", action="store_true", help="print JSON instead of a table")
    si.add_argument("--weights", type=_weights, default=(1.0, 1.0, 1.0), help="T,E,S (normalised)")
    si.add_argument("--lambda", dest="economic_lambda", type=_fraction, default=0.5)
    si.add_argument("--policy", choices=("linear", "geometric"), default="linear")
    si.add_argument(
        "--tolerance", type=_fraction, default=0.01, help="accuracy δ as a fraction (0.01)"
    )
    si.add_argument("--speed-tolerance", type=_fraction, default=0.0, help="relative")
    si.add_argument("--energy-tolerance", type=_fraction, default=0.0, help="relative")
    si.set_defaults(handler=run_si)

    grade = subparsers.add_parser(
        "grade",
        help="grade completions against references",
        description="Each JSONL line holds 'completion' and 'reference' (the dataset's "
        "answer text), optionally 'depth' and 'id'.",
    )
    grade.add_argument("--dataset", required=True, choices=sorted(GRADERS))
    grade.add_argument("--input", required=True, type=Path, help="JSONL file")
    grade.add_argument("--json", action="store_true", help="print JSON instead of text")
    grade.set_defaults(handler=run_grade)


def run_si(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``quanttrap si``."""
    stream = out if out is not None else sys.stdout
    try:
        measurements = read_measurements(args.input)
        trust, economic, energy = args.weights
        config = SIConfig(trust, economic, energy, args.economic_lambda, args.policy)
        tolerances = Tolerances(
            accuracy=args.tolerance, speed=args.speed_tolerance, energy=args.energy_tolerance
        )
        card = score_variants(
            measurements, anchor=args.anchor, config=config, tolerances=tolerances
        )
    except (InputError, ValueError) as exc:
        return _fail("si", str(exc))
    if args.json:
        json.dump([_score_json(card, s) for s in card.scores], stream, indent=2)
        stream.write("\n")
    else:
        stream.write(_si_table(card))
    return 0


def run_grade(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``quanttrap grade``."""
    stream = out if out is not None else sys.stdout
    grader = get_grader(args.dataset)
    items: list[dict[str, Any]] = []
    try:
        for line_no, row in _jsonl_rows(args.input):
            where = f"{args.input}: line {line_no}"
            completion = _text_field(where, row, "completion")
            reference = _text_field(where, row, "reference")
            try:
                result = grader.grade(completion, reference)
                depth = row.get("depth", grader.depth(reference))
            except ValueError as exc:
                raise InputError(f"{where}: field 'reference': {exc}") from None
            if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool)):
                raise InputError(f"{where}: field 'depth': must be an integer, got {depth!r}")
            items.append(_item_json(line_no, row.get("id"), result, depth))
    except InputError as exc:
        return _fail("grade", str(exc))
    if not items:
        return _fail("grade", f"{args.input}: no lines to grade")
    summary = _grade_summary(args.dataset, items)
    if args.json:
        json.dump(summary, stream, indent=2)
        stream.write("\n")
    else:
        stream.write(_grade_text(summary))
    return 0


# --- si output ---------------------------------------------------------------------------


def _score_json(card: Scorecard, s: VariantScore) -> dict[str, Any]:
    m = s.measurement
    return {
        "variant": s.name,
        "bits": s.bits,
        "anchor": s.is_anchor,
        "accuracy": m.accuracy,
        "tokens_per_s": m.tokens_per_s,
        "vram_gb": m.vram_gb,
        "energy_j_per_query": m.energy_j_per_query,
        "energy_j_per_token": s.energy_j_per_token,
        "latency_per_hop_s": s.latency_per_hop_s,
        "cor": s.cor,
        "throughput_gain": s.throughput_gain,
        "residency_gain": s.residency_gain,
        "tsi": s.bounded.tsi,
        "esi": s.bounded.esi,
        "ssi": s.bounded.ssi,
        "tsi_raw": s.raw.tsi,
        "esi_raw": s.raw.esi,
        "ssi_raw": s.raw.ssi,
        "si": s.si,
        "si_raw": s.si_raw,
        "regime": s.verdict.regime,
        "less_accurate": s.verdict.less_accurate,
        "slower": s.verdict.slower,
        "more_energy": s.verdict.more_energy,
        "memory_only_victory": s.verdict.memory_only_victory,
        "diverges_below": [d.higher for d in card.divergences if d.lower == s.name],
        "missing": list(s.missing),
    }


def _si_table(card: Scorecard) -> str:
    header: tuple[str, ...] = ("variant", "bits", "acc", "tok/s", "VRAM GB", "J/query")
    header += ("J/token", "COR", "TSI", "ESI", "SSI", "SI", "regime")
    rows = [header]
    for s in card.scores:
        m = s.measurement
        regime = s.verdict.regime + (" +memory-only" if s.verdict.memory_only_victory else "")
        rows.append(
            (
                s.name + (" *" if s.is_anchor else ""),
                str(s.bits),
                _fmt(m.accuracy, "{:.2%}"),
                _fmt(m.tokens_per_s, "{:.1f}"),
                _fmt(m.vram_gb, "{:.1f}"),
                _fmt(m.energy_j_per_query, "{:.1f}"),
                _fmt(s.energy_j_per_token, "{:.3f}"),
                f"{s.cor:+.3f}",
                *map(_pillar, s.bounded.as_tuple(), s.raw.as_tuple()),
                _fmt(s.si, "{:.3f}"),
                regime,
            )
        )
    lines = _align(rows, left=(0, len(header) - 1))
    cfg, tol = card.config, card.tolerances
    w = ", ".join(f"{x:.3g}" for x in cfg.weights)
    lines.append("")
    lines.append(
        f"* anchor {card.anchor}. SI: {cfg.policy}, weights T,E,S = {w}, "
        f"λ = {cfg.economic_lambda:g}; pillars clipped to [0, 1] (raw in brackets)."
    )
    lines.append(
        f"  Tolerances: accuracy δ = {tol.accuracy:g} (absolute), speed {tol.speed:g}, "
        f"energy {tol.energy:g} (relative)."
    )
    for d in card.divergences:
        lines.append(
            f"scaling-law divergence: {d.lower} ({d.lower_bits} bit, SI {d.lower_si:.3f}) "
            f"< {d.higher} ({d.higher_bits} bit, SI {d.higher_si:.3f})"
        )
    for s in card.scores:
        lines.extend(f"{s.name}: {reason}" for reason in s.missing)
    return "\n".join(lines) + "\n"


def _align(rows: list[tuple[str, ...]], left: tuple[int, ...]) -> list[str]:
    """Columns padded to their widest cell: text columns left-aligned, numbers right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _pillar(bounded: float | None, raw: float | None) -> str:
    if bounded is None or raw is None:
        return "n/a"
    return f"{bounded:.3f}" if bounded == raw else f"{bounded:.3f} ({raw:.3f})"


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


# --- grade input and output --------------------------------------------------------------


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {line_no}: not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}: line {line_no}: expected a JSON object")
        rows.append((line_no, row))
    return rows


def _text_field(where: str, row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and name == "reference":
        return str(value)  # a multi-hop reference may be a bare JSON number
    if not isinstance(value, str):
        raise InputError(f"{where}: field {name!r}: expected a string, got {value!r}")
    return value


def _item_json(
    line_no: int, item_id: Any, result: GradeResult, depth: int | None
) -> dict[str, Any]:
    item = {
        "line": line_no,
        "correct": result.correct,
        "extracted": result.extracted,
        "expected": result.expected,
        "method": result.method,
        "depth": depth,
    }
    if item_id is not None:
        item["id"] = item_id
    return item


def _accuracy(items: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(items)
    correct = sum(1 for i in items if i["correct"])
    ci = wilson_interval(correct, n)
    return {
        "n": n,
        "correct": correct,
        "accuracy": ci.estimate,
        "ci_low": ci.low,
        "ci_high": ci.high,
        "confidence": ci.confidence,
    }


def _grade_summary(dataset: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_bucket.setdefault(depth_bucket(item["depth"]), []).append(item)
    return {
        "dataset": dataset,
        "items": items,
        "overall": _accuracy(items),
        "by_depth": [
            {"bucket": b, **_accuracy(by_bucket[b])} for b in DEPTH_BUCKETS if b in by_bucket
        ],
    }


def _grade_text(summary: dict[str, Any]) -> str:
    lines = []
    for it in summary["items"]:
        verdict = "correct" if it["correct"] else "wrong  "
        label = f"line {it['line']}" + (f" ({it['id']})" if "id" in it else "")
        depth = "?" if it["depth"] is None else it["depth"]
        lines.append(
            f"{label}: {verdict} extracted={it['extracted']!s} expected={it['expected']} "
            f"[{it['method']}] depth={depth}"
        )
    lines.append("")
    lines.append(_accuracy_line(f"{summary['dataset']} overall", summary["overall"]))
    lines.extend(_accuracy_line(f"  depth {b['bucket']}", b) for b in summary["by_depth"])
    return "\n".join(lines) + "\n"


def _accuracy_line(label: str, acc: dict[str, Any]) -> str:
    return (
        f"{label:<20} {acc['correct']:>5}/{acc['n']:<5} {acc['accuracy']:7.2%}  "
        f"(95% Wilson {acc['ci_low']:.2%}–{acc['ci_high']:.2%})"
    )


# --- argument types ----------------------------------------------------------------------


def _weights(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers T,E,S, got {text!r}") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected three non-negative numbers T,E,S, not all 0, got {text!r}"
        )
    return values[0], values[1], values[2]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _fail(command: str, message: str) -> int:
    sys.stderr.write(f"quanttrap {command}: error: {message}\n")
    return 2
