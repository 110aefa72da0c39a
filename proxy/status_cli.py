"""``quanttrap status``: the live SI table of a running proxy, in the terminal.

``quanttrap status --url http://127.0.0.1:8000`` prints one row per model, variant and
batch-size bucket (``--json`` prints the status document as the API returns it);
``--wrong nf4`` lists the graded evaluations variant ``nf4`` got wrong (from the proxy's
evaluation log). The API key, when the proxy needs one, comes from ``--api-key`` or the
environment variable ``QUANTTRAP_API_KEY``. Exit status: 0, or 1 when the proxy cannot be
reached or answers with an error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import httpx

__all__ = ["add_commands", "format_status", "format_wrong", "run_status"]

API_KEY_ENV = "QUANTTRAP_API_KEY"


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` sub-parser to the ``quanttrap`` parser."""
    p = subparsers.add_parser(
        "status",
        help="live SI table of a running proxy",
        description="Print a running proxy's live Sustainability Index table (its status "
        "API), or the evaluations a variant got wrong.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the proxy's base URL")
    p.add_argument("--json", action="store_true", help="print the status JSON")
    p.add_argument("--wrong", metavar="VARIANT", help="list evaluations VARIANT got wrong")
    p.add_argument("--model", help="with --wrong: only this model")
    p.add_argument("--limit", type=int, default=20, help="with --wrong: rows (1-1000)")
    p.add_argument("--api-key", help=f"API key (default: ${API_KEY_ENV})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds")
    p.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``quanttrap status``."""
    stream = out if out is not None else sys.stdout
    key = args.api_key or os.environ.get(API_KEY_ENV)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    base = args.url.rstrip("/")
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=args.timeout) as client:
            if args.wrong:
                params: dict[str, Any] = {
                    "variant": args.wrong,
                    "correct": "false",
                    "limit": args.limit,
                }
                if args.model:
                    params["model"] = args.model
                data = _get(client, "/quanttrap/v1/evaluations", params)
            else:
                data = _get(client, "/quanttrap/v1/status", {})
    except _Failure as exc:
        print(f"quanttrap status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(data, stream, indent=2)
        stream.write("\n")
    elif args.wrong:
        stream.write(format_wrong(data["data"], args.wrong))
    else:
        stream.write(format_status(data))
    return 0


class _Failure(Exception):
    pass


def _get(client: httpx.Client, path: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        resp = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise _Failure(f"cannot reach {client.base_url}{path}: {exc}") from None
    if resp.status_code != 200:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:200]
        raise _Failure(f"{path}: HTTP {resp.status_code}: {message}")
    data: dict[str, Any] = resp.json()
    return data


def format_status(status: dict[str, Any]) -> str:
    """The status document as a table, one row per model, variant and bucket."""
    conf = round(status["confidence"] * 100)
    lines = [
        f"window {status['window_s'] / 60:.0f} min, {conf}% intervals "
        "[low-high]; variants compared with the anchor in the same batch-size bucket"
    ]
    header = (
        "model", "variant", "bits", "bucket", "req", "graded", "accuracy", "tok/s", "COR",
        "J/query", "TSI", "ESI", "SSI", "SI", "regime", "trap",
    )  # fmt: skip
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for m in status["models"]:
        for v in m["variants"]:
            name = v["variant"] + (" *" if v["is_anchor"] else "")
            if not v["buckets"]:
                rows.append((m["model"], name, str(v["bits"]), "-", "0", "0", *("n/a",) * 8,
                             "undetermined", "-"))  # fmt: skip
            for r in v["buckets"]:
                e = r["energy"]
                energy = (
                    _iv(e["j_per_query"], 1) + f" {e['method']}"
                    if e["available"]
                    else ("unavailable")
                )
                p = r["pillars"]
                rows.append(
                    (
                        m["model"],
                        name,
                        str(v["bits"]),
                        r["batch_size_bucket"],
                        str(r["samples"]["requests"]),
                        str(r["samples"]["graded"]),
                        _iv(r["accuracy"], 1, 100, "%"),
                        _iv(r["tokens_per_s"], 1),
                        _iv(r["cor"], 2),
                        energy,
                        _pillar(p["trust"]),
                        _pillar(p["economic"]),
                        _pillar(p["energy"]),
                        _iv(r["si"], 3),
                        r["regime"],
                        "TRAP" if r["trap"] else "-",
                    )
                )
                if not v["is_anchor"]:
                    notes += [f"{m['model']}/{v['variant']} [{r['batch_size_bucket']}]: {t}"
                              for t in r["missing"]]  # fmt: skip
    lines.append(_table(header, rows))
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def format_wrong(rows: list[dict[str, Any]], variant: str) -> str:
    """Evaluations a variant got wrong, newest first."""
    if not rows:
        return f"no wrong answers logged for variant {variant!r}\n"
    header = ("time", "model", "variant", "role", "dataset", "question", "extracted", "expected")
    table = [
        (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"])),
            str(r["model"]),
            str(r["variant"]),
            str(r["role"]),
            str(r["dataset"]),
            _question(r),
            str(r["extracted"]) if r["extracted"] is not None else "(none)",
            str(r["expected"]),
        )
        for r in rows
    ]
    return _table(header, table) + "\n"


def _question(row: dict[str, Any]) -> str:
    """The prompt when captured, else the canary item id, else the prompt's hash."""
    if row.get("prompt"):
        text = " ".join(str(row["prompt"]).split())
        return text if len(text) <= 60 else text[:57] + "..."
    if row.get("item_id"):
        return str(row["item_id"])
    digest = row.get("prompt_sha256")
    return f"sha256:{digest[:12]}" if digest else "(unknown)"


def _iv(v: dict[str, float] | None, digits: int, scale: float = 1.0, suffix: str = "") -> str:
    if v is None:
        return "n/a"
    est, lo, hi = (v[k] * scale for k in ("estimate", "low", "high"))
    return f"{est:.{digits}f}{suffix} [{lo:.{digits}f}-{hi:.{digits}f}]"


def _pillar(p: dict[str, Any]) -> str:
    return "n/a" if p["bounded"] is None else f"{p['bounded']:.3f}"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in
              enumerate(header)]  # fmt: skip
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in (header, *rows))
