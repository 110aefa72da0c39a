"""Read a saved ``bench.json`` back into a :class:`~bench.sweep.BenchRun` (no measuring).

``quanttrap bench --replay bench.json`` re-applies the maths to a run measured elsewhere (the
GPU machine) - to leave out repeats, score against another anchor, or redraw the plots - from
its raw windows, so the figures it prints are the saved measurements, not new ones. Runs saved
before ``burn_in`` existed read as having none.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.records import AccuracyItem, GpuState, ReferenceRun, Window
from bench.sweep import BenchConfig, BenchRun

__all__ = ["ReplayError", "load_run"]


class ReplayError(Exception):
    """The file is not a bench result this version can read; the message says why."""


def load_run(path: Path) -> BenchRun:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BenchRun(
            config=_config(data["config"]),
            environment=dict(data["environment"]),
            windows=tuple(_window(w) for w in data["windows"]),
            accuracy=tuple(_accuracy(data)),
            reference=tuple(
                ReferenceRun(**_fields(ReferenceRun, r)) for r in data["reference_runs"]
            ),
            weights_bytes={k: int(v) for k, v in data["weights_bytes"].items()},
            energy_unavailable=_unavailable(data["method"]["energy"]),
            idle=_state(data.get("idle_gpu_state")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReplayError(f"{path}: not a readable bench result: {exc!r}") from None


def _config(raw: dict[str, Any]) -> BenchConfig:
    values = _fields(BenchConfig, raw)
    for key in ("variants", "batch_sizes", "depths", "reference_batches"):
        values[key] = tuple(values[key])
    values["scratch"] = None if values.get("scratch") is None else Path(values["scratch"])
    values.setdefault("burn_in", 0)
    return BenchConfig(**values)


def _window(raw: dict[str, Any]) -> Window:
    values = _fields(Window, raw)
    values["completed_tokens"] = tuple(values["completed_tokens"])
    values["state_start"] = _state(values.get("state_start"))
    values["state_end"] = _state(values.get("state_end"))
    return Window(**values)


def _accuracy(data: dict[str, Any]) -> list[AccuracyItem]:
    if "accuracy_items" in data:
        return [AccuracyItem(**_fields(AccuracyItem, i)) for i in data["accuracy_items"]]
    # Older files keep per-depth counts only: rebuild items with those counts (lengths rounded).
    items = []
    for variant, table in data["accuracy"].items():
        length = round(table["mean_completion_tokens"])
        for depth, cell in table["by_depth"].items():
            right, n = int(cell["correct"]), int(cell["n"])
            items += [AccuracyItem(variant, int(depth), i < right, length) for i in range(n)]
    return items


def _state(raw: dict[str, Any] | None) -> GpuState | None:
    return None if raw is None else GpuState(**_fields(GpuState, raw))


def _fields(cls: Any, raw: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in raw.items() if k in names}


def _unavailable(energy: str) -> str:
    prefix = "unavailable: "
    return energy[len(prefix) :] if energy.startswith(prefix) else ""
