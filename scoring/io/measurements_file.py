"""Reading per-variant measurements for ``quanttrap si`` from a JSON or CSV file.

The file is a JSON list of objects or a CSV with a header; both have the columns below. An
empty cell (CSV) or ``null`` (JSON) in an optional-value column means "not measured". Every
problem is reported as :class:`InputError` naming the row and the field, so the command can
exit with status 2 and one clear line instead of a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from scoring.pillars import VariantMeasurement

__all__ = ["COLUMNS", "InputError", "read_measurements"]

_REQUIRED = ("variant", "bits", "accuracy", "tokens_per_s", "vram_gb", "energy_j")
_OPTIONAL = ("carbon_g_per_kwh", "completion_tokens")
COLUMNS = _REQUIRED + _OPTIONAL
"""Accepted columns: the first six must be present (values may be empty where unmeasured)."""


class InputError(Exception):
    """The input file cannot be used; the message names the file, row and field."""


def read_measurements(path: Path) -> list[VariantMeasurement]:
    """Parse ``path`` (JSON if it starts with ``[`` or ``{``, else CSV) into measurements."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    is_json = text.lstrip()[:1] in ("[", "{")
    rows = _json_rows(path, text) if is_json else _csv_rows(path, text)
    if not rows:
        raise InputError(f"{path}: no variants in the file")
    out = [_measurement(f"{path}: {where}", row) for where, row in rows]
    with_carbon = [m.name for m in out if m.carbon_g_per_kwh is not None]
    if with_carbon and len(with_carbon) != len(out):
        lacking = ", ".join(m.name for m in out if m.carbon_g_per_kwh is None)
        raise InputError(
            f"{path}: carbon_g_per_kwh is given for some variants but not for {lacking}; "
            "give it for all variants or for none"
        )
    return out


def _json_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of objects")
    rows = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise InputError(f"{path}: item {i}: expected an object, got {type(item).__name__}")
        rows.append((f"item {i}", item))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            if None in row:
                raise InputError(f"{path}: line {reader.line_num}: more cells than columns")
            if not any((v or "").strip() for v in row.values()):
                continue  # blank line
            rows.append((f"line {reader.line_num}", {k.strip(): v for k, v in row.items()}))
    except csv.Error as exc:
        raise InputError(f"{path}: not valid CSV: {exc}") from None
    return rows


def _measurement(where: str, row: dict[str, Any]) -> VariantMeasurement:
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise InputError(f"{where}: unknown column(s) {unknown}; accepted: {list(COLUMNS)}")
    absent = [c for c in _REQUIRED if c not in row]
    if absent:
        raise InputError(f"{where}: missing column(s) {absent}")
    name = row["variant"]
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: field 'variant': must be a non-empty name, got {name!r}")
    name = name.strip()
    bits = _required(where, row, "bits")
    if bits != int(bits) or bits < 1:
        raise InputError(f"{where}: field 'bits': must be a whole number >= 1, got {bits}")
    accuracy = _number(where, row, "accuracy")
    if accuracy is not None and not 0.0 <= accuracy <= 1.0:
        hint = ""
        if 1.0 < accuracy <= 100.0:
            hint = f" (a percentage? give the fraction {accuracy / 100:g})"
        raise InputError(f"{where}: field 'accuracy': must be in [0, 1], got {accuracy}{hint}")
    tps = _required(where, row, "tokens_per_s", positive=True)
    try:
        return VariantMeasurement(
            name=name,
            bits=int(bits),
            tokens_per_s=tps,
            accuracy=accuracy,
            vram_gb=_number(where, row, "vram_gb", positive=True),
            energy_j_per_query=_number(where, row, "energy_j", positive=True),
            carbon_g_per_kwh=_number(where, row, "carbon_g_per_kwh", positive=True),
            completion_tokens_per_query=_number(where, row, "completion_tokens", positive=True),
        )
    except ValueError as exc:  # a check of VariantMeasurement's own, should one be added
        raise InputError(f"{where}: {exc}") from None


def _required(where: str, row: dict[str, Any], field: str, *, positive: bool = False) -> float:
    value = _number(where, row, field, positive=positive)
    if value is None:
        raise InputError(f"{where}: field {field!r}: a value is required")
    return value


def _number(where: str, row: dict[str, Any], field: str, *, positive: bool = False) -> float | None:
    raw = row.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InputError(f"{where}: field {field!r}: expected a number, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{where}: field {field!r}: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: field {field!r}: must be finite, got {raw!r}")
    if positive and value <= 0:
        raise InputError(f"{where}: field {field!r}: must be > 0, got {raw!r}")
    return value
