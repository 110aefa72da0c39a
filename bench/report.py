"""From a :class:`~bench.sweep.BenchRun` to numbers: the results JSON, the SI inputs, the table.

``analyse`` applies :mod:`bench.analysis` once; everything printed, written or plotted reads its
result, so the table, the JSON and the plots cannot disagree. ``si_rows`` are exactly the
columns ``quanttrap si --input`` reads (one file per batch size and energy method).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.analysis import (
    BITS,
    AccuracyTable,
    BatchVerdict,
    CellSummary,
    EnergyKind,
    Spread,
    accuracy_table,
    batch_verdict,
    cor_by_batch,
    scorecards,
    summarise_cells,
)
from bench.sweep import BenchRun
from scoring.scorecard import Scorecard
from scoring.stats import Interval

__all__ = ["Analysis", "analyse", "results_json", "si_rows", "table"]

METHOD_WINDOW_S = 5.0
METHOD_REPEATS = 3


@dataclass(frozen=True, slots=True)
class Analysis:
    run: BenchRun
    anchor: str
    cells: tuple[CellSummary, ...]
    accuracy: Mapping[str, AccuracyTable]
    cor: Mapping[str, Mapping[int, Spread]]
    cards: Mapping[EnergyKind, Mapping[int, Scorecard]]
    """SI tables by energy method (``nvml``, ``hli`` when asked) and batch size."""
    verdicts: Mapping[EnergyKind, tuple[BatchVerdict, ...]]
    reference: Mapping[tuple[str, int], Spread]
    """HF ``generate`` tokens/s by (variant, batch size)."""
    scored_repeats: tuple[int, ...]
    warnings: tuple[str, ...]


def analyse(
    run: BenchRun, anchor: str | None = None, skip_repeats: frozenset[int] = frozenset()
) -> Analysis:
    """Apply the maths to ``run``'s scored windows: burn-in passes (repeat <= 0) and the
    repeats in ``skip_repeats`` are left out (they stay in the JSON's raw windows)."""
    cfg = run.config
    scored = tuple(w for w in run.windows if w.repeat >= 1 and w.repeat not in skip_repeats)
    if not scored:
        raise ValueError("no repeats left to analyse")
    ref = anchor or max(cfg.variants, key=lambda v: BITS[v])
    if ref not in cfg.variants:
        raise ValueError(f"anchor {ref!r} is not one of the variants {cfg.variants}")
    cells = summarise_cells(scored, lengths=cfg.lengths, fixed_tokens=cfg.max_tokens)
    tables = {v: t for v in cfg.variants if (t := accuracy_table(run.accuracy, v)) is not None}
    acc = {v: t.overall.estimate for v, t in tables.items()} or None
    others = [v for v in cfg.variants if v != ref]
    energies: list[EnergyKind] = ["nvml"]
    if cfg.hli_power_w is not None:
        energies.append("hli")
    cards = {e: scorecards(cells, ref, accuracy=acc, energy=e) for e in energies}
    verdicts = {
        e: tuple(v for v in (batch_verdict(scored, cells, ref, o, energy=e) for o in others) if v)
        for e in energies
    }
    reference: dict[tuple[str, int], Spread] = {}
    for key in sorted({(r.variant, r.batch_size) for r in run.reference}):
        reference[key] = Spread.of(
            r.tokens_per_s for r in run.reference if (r.variant, r.batch_size) == key
        )
    return Analysis(
        run=run,
        anchor=ref,
        cells=cells,
        accuracy=tables,
        cor={o: cor_by_batch(scored, ref, o) for o in others},
        cards=cards,
        verdicts=verdicts,
        reference=reference,
        scored_repeats=tuple(sorted({w.repeat for w in scored})),
        warnings=_warnings(run, cells, len({w.repeat for w in scored})),
    )


def si_rows(a: Analysis, batch_size: int, energy: EnergyKind = "nvml") -> list[dict[str, Any]]:
    """The ``quanttrap si --input`` rows at one batch size (columns of scoring's reader)."""
    card = a.cards[energy][batch_size]
    return [
        {
            "variant": s.name,
            "bits": s.bits,
            "accuracy": s.measurement.accuracy,
            "tokens_per_s": s.measurement.tokens_per_s,
            "vram_gb": s.measurement.vram_gb,
            "energy_j": s.measurement.energy_j_per_query,
            "completion_tokens": s.measurement.completion_tokens_per_query,
        }
        for s in card.scores
    ]


def results_json(a: Analysis) -> dict[str, Any]:
    """Everything, raw windows included, as plain JSON types."""
    run, cfg = a.run, a.run.config
    return {
        "model": cfg.model,
        "config": {k: _plain(v) for k, v in dataclasses.asdict(cfg).items()},
        "environment": run.environment,
        "anchor": a.anchor,
        "method": {
            "window_s": cfg.window_s,
            "warmup_s": cfg.warmup_s,
            "cooldown_s": cfg.cooldown_s,
            "repeats": cfg.repeats,
            "burn_in_passes": cfg.burn_in,
            "scored_repeats": list(a.scored_repeats),
            "lengths": cfg.lengths,
            "new_tokens": cfg.max_tokens,
            "energy": "nvml counter delta over each window, idle power included"
            if not run.energy_unavailable
            else f"unavailable: {run.energy_unavailable}",
            "hli_power_w": cfg.hli_power_w,
            "path": "quanttrap in-process engine (continuous batching), greedy; "
            "reference: HF generate",
            "warnings": list(a.warnings),
        },
        "idle_gpu_state": _plain(run.idle),
        "weights_bytes": run.weights_bytes,
        "cells": [_plain(c) for c in a.cells],
        "cor": {v: {str(b): _plain(s) for b, s in by.items()} for v, by in a.cor.items()},
        "si": {
            e: {str(b): [_score(s) for s in card.scores] for b, card in by.items()}
            for e, by in a.cards.items()
        },
        "b_star": {e: [dict(_plain(v), text=v.text) for v in vs] for e, vs in a.verdicts.items()},
        "accuracy": {v: _accuracy(t) for v, t in a.accuracy.items()},
        "reference": [
            {"variant": v, "batch_size": b, "tokens_per_s": _plain(s)}
            for (v, b), s in a.reference.items()
        ],
        "windows": [_plain(w) for w in run.windows],
        "reference_runs": [_plain(r) for r in run.reference],
        "accuracy_items": [_plain(i) for i in run.accuracy],
    }


def table(a: Analysis) -> str:
    """The printed summary: one line per cell, then B*, accuracy and the caveats."""
    run, cfg = a.run, a.run.config
    lines = [
        f"{cfg.model} on {run.environment.get('gpu') or run.environment['device']}; anchor "
        f"{a.anchor}; repeats {_repeats(a.scored_repeats)} scored x {cfg.window_s:g} s windows "
        f"({cfg.burn_in} burn-in pass(es) not scored); "
        + (
            f"fixed {cfg.max_tokens} new tokens per query"
            if cfg.lengths == "fixed"
            else "real answer lengths"
        ),
        "",
    ]
    header: tuple[str, ...] = ("variant", "B", "tok/s", "J/token", "J/query", "peak GB", "COR")
    header += ("TSI", "ESI")
    header += ("SSI", "SI", "regime")
    rows: list[tuple[str, ...]] = [header]
    for c in sorted(a.cells, key=lambda c: (c.batch_size, -BITS[c.variant])):
        card = a.cards["nvml"][c.batch_size]
        s = card.score(c.variant)
        cor = a.cor.get(c.variant, {}).get(c.batch_size)
        regime = s.verdict.regime + (" +memory-only" if s.verdict.memory_only_victory else "")
        rows.append(
            (
                c.variant + (" *" if c.variant == a.anchor else ""),
                str(c.batch_size),
                _pm(c.tokens_per_s, "{:.1f}"),
                _pm(c.j_per_token, "{:.3f}"),
                _pm(c.j_per_query, "{:.1f}"),
                "n/a" if c.peak_bytes is None else f"{c.peak_bytes / 1e9:.2f}",
                "0" if c.variant == a.anchor else _pm(cor, "{:+.2f}"),
                _opt(s.bounded.tsi),
                _opt(s.bounded.esi),
                _opt(s.bounded.ssi),
                _opt(s.si),
                regime,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append(
            "  ".join(
                cell.ljust(w) if i in (0, len(header) - 1) else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    lines.append("")
    lines.append(
        "mean ± sample sd over repeats; * anchor; pillars clipped to [0, 1]; "
        "peak GB = weights + the cell's allocator peak increase (CUDA) or weights (CPU)"
    )
    for energy, verdicts in a.verdicts.items():
        for v in verdicts:
            lines.append(f"B* ({energy}) {v.variant} vs {v.anchor}: {v.text}")
    if not any(a.verdicts.values()):
        lines.append(f"B*: energy not measured ({run.energy_unavailable or 'no energy'})")
    for (variant, size), spread in a.reference.items():
        lines.append(
            f"reference (HF generate, {cfg.max_tokens} tokens): {variant} B={size} "
            f"{_pm(spread, '{:.1f}')} tok/s"
        )
    for variant, t in a.accuracy.items():
        depths = ", ".join(f"{d}: {right}/{n}" for d, (right, n, _) in t.by_depth.items())
        lines.append(
            f"accuracy {variant}: {t.overall.estimate:.3f} [{t.overall.low:.3f}, "
            f"{t.overall.high:.3f}] (n={t.n}); by depth {depths}"
        )
    if not a.accuracy:
        lines.append(
            "accuracy: not measured (random weights or no --dataset): TSI, SI and the "
            "regime are unavailable"
        )
    lines.extend(f"warning: {w}" for w in a.warnings)
    return "\n".join(lines) + "\n"


def _repeats(repeats: Sequence[int]) -> str:
    return ",".join(str(r) for r in repeats)


def _warnings(run: BenchRun, cells: Sequence[CellSummary], repeats: int) -> tuple[str, ...]:
    cfg = run.config
    out = []
    if cfg.window_s < METHOD_WINDOW_S:
        out.append(
            f"windows of {cfg.window_s:g} s are below the {METHOD_WINDOW_S:g} s "
            "steady-state minimum: not the method's figures"
        )
    if repeats < METHOD_REPEATS:
        out.append(f"{repeats} scored repeat(s): the method asks for at least {METHOD_REPEATS}")
    if run.energy_unavailable:
        out.append(f"energy unavailable: {run.energy_unavailable}")
    if cfg.lengths == "fixed":
        for c in cells:
            if c.mean_real_length is not None and c.mean_real_length < 0.98 * cfg.max_tokens:
                out.append(
                    f"{c.variant} B={c.batch_size}: answers averaged {c.mean_real_length:.1f} "
                    f"tokens, under the fixed {cfg.max_tokens} (end-of-sequence): energy per "
                    "query assumes the fixed budget"
                )
    return tuple(out)


def _score(s: Any) -> dict[str, Any]:
    return {
        "variant": s.name,
        "bits": s.bits,
        "anchor": s.is_anchor,
        "tokens_per_s": s.measurement.tokens_per_s,
        "accuracy": s.measurement.accuracy,
        "vram_gb": s.measurement.vram_gb,
        "energy_j_per_query": s.measurement.energy_j_per_query,
        "cor": s.cor,
        "tsi": s.bounded.tsi,
        "esi": s.bounded.esi,
        "ssi": s.bounded.ssi,
        "tsi_raw": s.raw.tsi,
        "esi_raw": s.raw.esi,
        "ssi_raw": s.raw.ssi,
        "si": s.si,
        "si_raw": s.si_raw,
        "regime": s.verdict.regime,
        "slower": s.verdict.slower,
        "more_energy": s.verdict.more_energy,
        "less_accurate": s.verdict.less_accurate,
        "memory_only_victory": s.verdict.memory_only_victory,
        "missing": list(s.missing),
    }


def _accuracy(t: AccuracyTable) -> dict[str, Any]:
    def cell(right: int, n: int, i: Interval) -> dict[str, Any]:
        return {"correct": right, "n": n, "accuracy": i.estimate, "low": i.low, "high": i.high}

    return {
        "overall": cell(round(t.overall.estimate * t.n), t.n, t.overall),
        "by_depth": {str(d): cell(*v) for d, v in t.by_depth.items()},
        "by_bucket": {b: cell(*v) for b, v in t.by_bucket.items()},
        "mean_completion_tokens": t.mean_completion_tokens,
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def _pm(spread: Spread | None, fmt: str) -> str:
    if spread is None:
        return "n/a"
    return f"{fmt.format(spread.mean)}±{fmt.format(spread.sd).lstrip('+')}"


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
