"""The recording rules against the in-process maths, with ``promtool test rules``.

The rules are rendered from the code (two scoring configurations), loaded by promtool with
the synthetic fleet of :mod:`tests.grafana.scenario`, and every recorded pillar, SI and COR
is compared with :func:`scoring.scorecard.score_variants` on the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grafana.options import RuleOptions
from grafana.series import Label, Record, Series
from scoring.config import ScoringConfig
from tests.grafana.conftest import rules_dir
from tests.grafana.promtool_run import close_to, run_promtool_tests
from tests.grafana.scenario import (
    MEMORY_GB,
    MODEL,
    Expected,
    expected,
    input_series,
    memory_series,
)

CONFIGS = {  # no memory declared: the rules read the proxies' memory gauge
    "default": ScoringConfig(),
    "geometric": ScoringConfig(
        policy="geometric",
        trust_weight=2.0,
        economic_lambda=0.8,
    ),
}


def _row(e: Expected, **extra: str) -> str:
    labels = {
        Label.MODEL: MODEL,
        Label.VARIANT: e.row.variant,
        Label.BUCKET: e.row.bucket,
        **extra,
    }
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _check(expr: str, labels: str, value: float | None) -> dict[str, Any]:
    """A promql_expr_test: ``expr{labels}`` equals ``value``, or has no sample (``None``)."""
    selector = expr + labels
    if value is None:
        return {"expr": selector, "eval_time": "20m", "exp_samples": []}
    return {
        "expr": close_to(selector, value),
        "eval_time": "20m",
        "exp_samples": [{"labels": labels, "value": 1}],
    }


def _pillar(e: Expected, name: str, bounded: bool, value: float | None) -> dict[str, Any]:
    extra = {Label.PILLAR: name, Label.BOUNDED: "true" if bounded else "false"}
    test = _check(Record.PILLAR, _row(e, **extra), value)
    if value is not None:  # `abs(...) < bool` keeps every label but the name
        test["exp_samples"][0]["labels"] = _row(e, **extra)
    return test


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_recorded_si_equals_the_in_process_maths(name: str, promtool: str, tmp_path: Path) -> None:
    scoring = CONFIGS[name]
    options = RuleOptions(scoring=scoring)
    rules = rules_dir(tmp_path, options)
    gates = scoring.trap
    cases = expected(options.si_config, gates.min_graded, gates.min_requests)
    tests: list[dict[str, Any]] = []
    for e in cases:
        s = e.score
        tsi = s.raw.tsi if e.trust_gated else None
        si = s.si if e.trust_gated else None
        tests += [
            _check(Record.ACCURACY, _row(e), s.measurement.accuracy),
            _check(Record.TOKENS_PER_SECOND, _row(e), s.measurement.tokens_per_s),
            _check(Record.COR, _row(e), s.cor),
            _pillar(e, "trust", False, tsi),
            _pillar(e, "economic", False, s.raw.esi),
            _pillar(e, "energy", False, s.raw.ssi),
            _pillar(e, "trust", True, None if tsi is None else s.bounded.tsi),
            _pillar(e, "economic", True, s.bounded.esi),
            _check(Record.SI, _row(e), si),
            _check(Record.SI_RAW, _row(e), s.si_raw if e.trust_gated else None),
        ]
        if e.energy_method is not None:
            method = _row(e, **{Label.ENERGY_METHOD: e.energy_method})
            tests.append(_check(Record.ENERGY_COMPARED, method, s.measurement.energy_j_per_query))
    done = run_promtool_tests(
        promtool,
        tmp_path,
        [rules / "quanttrap-recording.yaml"],
        [{"interval": "1m", "input_series": input_series(), "promql_expr_test": tests}],
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_memory_is_read_from_the_proxies_gauge(promtool: str, tmp_path: Path) -> None:
    """Memory comes from ``quanttrap_variant_memory_bytes`` (largest replica), never the config.

    Without nf4's gauge, nf4 has no economic pillar and no SI (unknown, not 0 or a guess),
    while int8, whose memory is exported, keeps both.
    """
    series = [s for s in input_series() if not s["series"].startswith(Series.VARIANT_MEMORY)]
    series += memory_series(("bf16", "int8"))
    cases = {(e.row.variant, e.row.bucket): e for e in expected(RuleOptions().si_config, 20, 10)}
    nf4, int8 = cases["nf4", "1"], cases["int8", "1"]
    mv = "{" + f'{Label.MODEL}="{MODEL}",{Label.VARIANT}="bf16"' + "}"
    tests = [
        _check(Record.MEMORY, mv, MEMORY_GB["bf16"]),
        _pillar(nf4, "economic", False, None),
        _check(Record.SI, _row(nf4), None),
        _pillar(int8, "economic", False, int8.score.raw.esi),
        _check(Record.SI, _row(int8), int8.score.si),
    ]
    rules = rules_dir(tmp_path, RuleOptions())
    done = run_promtool_tests(
        promtool,
        tmp_path,
        [rules / "quanttrap-recording.yaml"],
        [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_scenario_exercises_every_branch() -> None:
    """The synthetic fleet covers what the rules must handle (else the test above is weak)."""
    cases = expected(RuleOptions().si_config, 20, 10)
    by_key = {(e.row.variant, e.row.bucket): e for e in cases}
    assert by_key["nf4", "1"].score.verdict.regime == "full_trap"
    assert by_key["int8", "1"].energy_method == "hli"  # its NVML counter is too sparse
    assert not by_key["nf4", "4-7"].trust_gated  # too few graded: no SI
    assert by_key["int8", "4-7"].score.raw.tsi == 0.0  # zero correct, not "absent"
    assert by_key["int8", "1"].score.raw.esi is not None and by_key["int8", "1"].score.raw.esi > 1
    assert all(e.score.si is not None for e in cases)


def test_a_series_born_inside_the_window_is_counted_from_zero(
    promtool: str, tmp_path: Path
) -> None:
    """A counter that appears mid-window (a new pod, a first wrong answer) counts fully.

    Plain ``increase()`` would lose the value it had at its first scrape (3 here) and
    extrapolate; the rules count 3 + 8 = 11 for it, plus the old series' 15 x 2.
    """
    row = {Label.MODEL: MODEL, Label.VARIANT: "nf4", Label.BUCKET: "1", Label.ROLE: "primary"}
    old = {**row, "instance": "proxy-0", Label.OUTCOME: "correct"}
    new = {**row, "instance": "proxy-1", Label.OUTCOME: "incorrect"}

    def series(labels: dict[str, str], values: str) -> dict[str, str]:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return {"series": f"quanttrap_eval_graded_total{{{inner}}}", "values": values}

    labels = "{" + ",".join(
        f'{k}="{v}"' for k, v in ((Label.MODEL, MODEL), (Label.VARIANT, "nf4"), (Label.BUCKET, "1"))
    ) + "}"  # fmt: skip
    tests = [
        {"expr": f"{record} * 1", "eval_time": "20m",
         "exp_samples": [{"labels": labels, "value": value}]}
        for record, value in ((Record.GRADED, 41), (Record.CORRECT, 30))
    ]  # fmt: skip
    rules = rules_dir(tmp_path, RuleOptions())
    done = run_promtool_tests(
        promtool,
        tmp_path,
        [rules / "quanttrap-recording.yaml"],
        [
            {
                "interval": "1m",
                "input_series": [series(old, "0+2x30"), series(new, "_x12 3+1x18")],
                "promql_expr_test": tests,
            }
        ],
    )
    assert done.returncode == 0, done.stdout + done.stderr
