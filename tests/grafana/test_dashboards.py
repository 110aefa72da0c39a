"""The generated dashboards: variables, datasource, queries that name real series."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from grafana.export import render_all
from grafana.series import Label, Record, Series
from scoring.stats import wilson_interval
from tests.grafana.promtool_run import close_to, run_promtool_tests

BOARDS = {
    path: json.loads(text) for path, text in render_all().items() if path.startswith("dashboards/")
}
_RECORDS = {v for k, v in vars(Record).items() if k.isupper()}
_RECORDED = {Record.anchor(r) for r in _RECORDS} | _RECORDS
_SERIES = {v for k, v in vars(Series).items() if k.isupper()}
_NAME = re.compile(r"\b(quanttrap[:_][a-zA-Z0-9_:]*|gen_ai_[a-z_]+)\b(?=\s*[{\[)]|$)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SUFFIXES = ("_bucket", "_sum", "_count")


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] not in ("row", "text")]


@pytest.mark.parametrize("path", sorted(BOARDS))
def test_variables_and_datasource(path: str) -> None:
    board = BOARDS[path]
    names = [v["name"] for v in board["templating"]["list"]]
    assert names[:3] == ["datasource", "model", "variant"]
    for v in board["templating"]["list"][1:]:
        assert v["datasource"]["uid"] == "${datasource}"
        assert v["includeAll"] and v["allValue"] == ".*" and v["multi"]
    for panel in _panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and "" not in ref_ids
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("path", sorted(BOARDS))
def test_the_like_for_like_note_is_on_every_dashboard(path: str) -> None:
    notes = [p["options"]["content"] for p in BOARDS[path]["panels"] if p["type"] == "text"]
    assert any("within one batch-size bucket" in note for note in notes)


@pytest.mark.parametrize("path", sorted(BOARDS))
def test_queries_name_exported_or_recorded_series_and_use_the_selectors(path: str) -> None:
    for panel in _panels(BOARDS[path]):
        for target in panel["targets"]:
            expr = target["expr"]
            names = _NAME.findall(_GROUPING.sub("", expr))
            assert names, expr
            for name in names:
                base = name
                for suffix in _SUFFIXES:
                    if name.endswith(suffix) and name[: -len(suffix)] in _SERIES:
                        base = name[: -len(suffix)]
                assert base in _SERIES or base in _RECORDED, f"{panel['title']}: {name}"
            if "gpu_power" not in expr:  # GPUs have no model label: they serve several
                assert '"$model"' in expr and '"$variant"' in expr, expr


def test_overview_shows_what_the_issue_asks_for() -> None:
    board = BOARDS["dashboards/quanttrap-overview.json"]
    exprs = " ".join(t["expr"] for p in _panels(board) for t in p["targets"])
    for needed in (
        Record.SI, Record.COR, Record.PILLAR, Record.ENERGY_PER_QUERY, Record.ACCURACY,
        Series.REGIME, Series.TRAP, Series.ENERGY_METHOD_INFO, Series.ACCURACY_LOW,
        Series.WINDOW_SAMPLES, Series.SHADOW_AGREEMENT, Series.REQUESTS,
        Record.SHADOW_DISAGREEMENT_BY_HOP, f'{Label.SHADOW_VERDICT}!="agree"',
    ):  # fmt: skip
        assert needed in exprs, needed
    assert any(v["name"] == "bucket" for v in board["templating"]["list"])
    depth = next(p for p in board["panels"] if p["title"] == "Accuracy by reasoning depth")
    assert depth["type"] == "table" and len(depth["targets"]) == 3
    for target in depth["targets"]:  # accuracy, Wilson low, Wilson high from the counter
        assert Series.EVAL_GRADED in target["expr"] and Label.DEPTH_BUCKET in target["expr"]
        assert target["instant"] and "[$__range]" in target["expr"]


def test_request_dashboard_shows_what_the_issue_asks_for() -> None:
    board = BOARDS["dashboards/quanttrap-requests.json"]
    exprs = " ".join(t["expr"] for p in _panels(board) for t in p["targets"])
    for needed in (
        Series.REQUEST_DURATION, Series.TIME_TO_FIRST_TOKEN, Series.TIME_PER_OUTPUT_TOKEN,
        Series.HOPS_ATOMIC, Series.HOPS_LOGICAL, Series.HOPS_AGENT, Series.GPU_POWER,
        Series.FAILOVERS, Series.SHADOW_COPIES, 'error_type!=""',
    ):  # fmt: skip
        assert needed in exprs, needed


_DEPTHS = {"1-2": (18, 2), "3-4": (9, 6), "7+": (0, 5), "unknown": (4, 0)}
"""depth bucket: (correct, incorrect) per minute, over two replicas; "7+" never right."""


def test_depth_panel_computes_the_wilson_interval_of_the_in_process_maths(
    promtool: str, tmp_path: Path
) -> None:
    """The panel's three queries, run by promtool on graded counters with depth labels, give
    :func:`scoring.stats.wilson_interval` of the counts in the range, per depth bucket."""
    series = []
    for depth, counts in _DEPTHS.items():
        for outcome, per_minute in zip(("correct", "incorrect"), counts, strict=True):
            if not per_minute:
                continue  # no series at all, as the proxy exports it
            for i in range(2):
                labels = {
                    Label.MODEL: "m", Label.VARIANT: "nf4", Label.BUCKET: "1",
                    Label.ROLE: "canary", Label.OUTCOME: outcome, Label.DEPTH_BUCKET: depth,
                    "instance": f"proxy-{i}",
                }  # fmt: skip
                inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                series.append(
                    {"series": f"{Series.EVAL_GRADED}{{{inner}}}",
                     "values": f"0+{per_minute / 2!r}x40"}
                )  # fmt: skip
    panel = next(
        p for p in BOARDS["dashboards/quanttrap-overview.json"]["panels"]
        if p["title"] == "Accuracy by reasoning depth"
    )  # fmt: skip
    exprs = [_substituted(t["expr"]) for t in panel["targets"]]
    tests = []
    for depth, (correct, incorrect) in _DEPTHS.items():
        n = 15 * (correct + incorrect)  # 15 minutes of range
        interval = wilson_interval(15 * correct, n, 0.95)
        row = f'{{{Label.MODEL}="m",{Label.VARIANT}="nf4",{Label.DEPTH_BUCKET}="{depth}"}}'
        for expr, value in zip(
            exprs, (interval.estimate, interval.low, interval.high), strict=True
        ):
            tests.append(
                {"expr": f"({close_to(f'({expr})', value)}) and on ({Label.DEPTH_BUCKET}) "
                 f'label_replace(vector(1), "{Label.DEPTH_BUCKET}", "{depth}", "", "")',
                 "eval_time": "20m",
                 "exp_samples": [{"labels": row, "value": 1}]}
            )  # fmt: skip
    done = run_promtool_tests(
        promtool, tmp_path, [], [{"interval": "1m", "input_series": series,
                                  "promql_expr_test": tests}]
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _substituted(expr: str) -> str:
    for name, value in (("$model", ".*"), ("$variant", ".*"), ("$bucket", ".*"),
                        ("$__range", "15m")):  # fmt: skip
        expr = expr.replace(name, value)
    assert "$" not in expr
    return expr
