"""The alerting rules with ``promtool test rules``: what fires, when, and what it says.

Each test loads the generated recording and alerting rules with a small synthetic fleet and
reads Prometheus's own ``ALERTS`` series (pending / firing) at chosen times, so the ``for:``
durations are exercised; one test expands the full-trap alert's annotations, numbers
included. ``promtool check rules`` runs over the generated files too.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from grafana.alerting import ALERTS
from grafana.options import RuleOptions
from grafana.series import Label, Series
from scoring.config import ScoringConfig
from tests.grafana.conftest import rules_dir
from tests.grafana.promtool_run import run_promtool_tests
from tests.grafana.scenario import ANCHOR, MODEL, expected, input_series

OPTIONS = RuleOptions(scoring=ScoringConfig())


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def _row(variant: str, bucket: str, model: str = MODEL) -> dict[str, str]:
    return {Label.MODEL: model, Label.VARIANT: variant, Label.BUCKET: bucket}


def _alerts(name: str, at: str, *rows: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """``ALERTS{alertname=name}`` at ``at`` is exactly ``rows`` of (state, labels)."""
    severity = "critical" if name == "QuanttrapFullTrap" else "warning"
    samples = []
    for state, labels in rows:
        all_labels = {
            "__name__": "ALERTS",
            "alertname": name,
            "alertstate": state,
            "severity": severity,
            **labels,
        }
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(all_labels.items()))
        samples.append({"labels": "{" + inner + "}", "value": 1})
    return {"expr": f'ALERTS{{alertname="{name}"}}', "eval_time": at, "exp_samples": samples}


def _run(
    promtool: str, tmp: Path, series: list[dict[str, str]], checks: list[dict[str, Any]],
    options: RuleOptions = OPTIONS, alert_tests: list[dict[str, Any]] | None = None,
) -> None:  # fmt: skip
    rules = rules_dir(tmp, options)
    test: dict[str, Any] = {"interval": "1m", "input_series": series, "promql_expr_test": checks}
    if alert_tests:
        test["alert_rule_test"] = alert_tests
    done = run_promtool_tests(
        promtool,
        tmp,
        [rules / "quanttrap-recording.yaml", rules / "quanttrap-alerts.yaml"],
        [test],
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _trap_series() -> list[dict[str, str]]:
    out = []
    flags = {  # (variant, bucket): (trap flag, latched regime) on replica proxy-0
        ("nf4", "1"): ("1", "full_trap"),
        ("int8", "4-7"): ("1", "efficiency_trap"),
        ("int8", "1"): ("0", "efficiency_trap"),  # regime without the significant flag
    }
    for (variant, bucket), (flag, regime) in flags.items():
        row = {**_row(variant, bucket), "instance": "proxy-0"}
        out.append(_series(Series.TRAP, f"{flag}x30", **row))
        for name in ("full_trap", "efficiency_trap"):
            value = "1" if name == regime else "0"
            out.append(_series(Series.REGIME, f"{value}x30", **row, **{Label.REGIME: name}))
    return out


def test_generated_rule_files_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    rules = rules_dir(tmp_path, OPTIONS)
    done = subprocess.run(
        [promtool, "check", "rules", *map(str, sorted(rules.glob("*.yaml")))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_trap_alerts_need_the_significant_flag_and_wait_for_it(
    promtool: str, tmp_path: Path
) -> None:
    series = input_series() + _trap_series()
    _run(
        promtool,
        tmp_path,
        series,
        [
            _alerts("QuanttrapFullTrap", "4m", ("pending", _row("nf4", "1"))),
            _alerts("QuanttrapFullTrap", "10m", ("firing", _row("nf4", "1"))),
            _alerts("QuanttrapEfficiencyTrap", "10m", ("pending", _row("int8", "4-7"))),
            _alerts("QuanttrapEfficiencyTrap", "16m", ("firing", _row("int8", "4-7"))),
        ],
    )


def _verdicts(variant: str, bucket: str, replica: str, **answers: str) -> list[dict[str, str]]:
    row = {**_row(variant, bucket), "instance": replica}
    return [
        _series(Series.VERDICT, values, **row, **{Label.QUESTION: question})
        for question, values in answers.items()
    ]


def test_energy_and_accuracy_alerts_fire_on_the_verdicts_not_on_raw_ratios(
    promtool: str, tmp_path: Path
) -> None:
    # The scenario's raw numbers alone (nf4 at 500/300 J and 50 % vs 75 % in bucket 1, 300/200 J
    # in 4-7, int8 always wrong in 4-7) fired the previous fleet rules; now only the proxies'
    # anytime-valid verdicts do. int8 in bucket 1 is an A/A row: every answer "no" on both
    # replicas, and it must stay silent; nf4 in 4-7 has no verdict yet (unanswered).
    series = input_series()
    for replica in ("proxy-0", "proxy-1"):
        series += _verdicts("int8", "1", replica, less_accurate="0x30", slower="0x30",
                            more_energy="0x30")  # fmt: skip
    # nf4 in bucket 1: replica 0 answers "more energy" from minute 3, replica 1 "less
    # accurate" from minute 4 (each on its own evidence; the fleet takes any replica's).
    series += _verdicts("nf4", "1", "proxy-0", more_energy="0x3 1x27", less_accurate="0x30")
    series += _verdicts("nf4", "1", "proxy-1", more_energy="0x30", less_accurate="0x4 1x26")
    _run(
        promtool,
        tmp_path,
        series,
        [
            _alerts("QuanttrapEnergyInversion", "2m"),
            _alerts("QuanttrapEnergyInversion", "6m", ("pending", _row("nf4", "1"))),
            _alerts("QuanttrapEnergyInversion", "20m", ("firing", _row("nf4", "1"))),
            _alerts("QuanttrapAccuracyDrop", "6m", ("pending", _row("nf4", "1"))),
            _alerts("QuanttrapAccuracyDrop", "25m", ("firing", _row("nf4", "1"))),
        ],
    )


def test_shadow_disagreement(promtool: str, tmp_path: Path) -> None:
    labels = {Label.MODEL: MODEL, Label.PRIMARY: ANCHOR}
    series = [
        _series(Series.SHADOW_COMPARISONS, "0+2x30", **labels, **{Label.VARIANT: "nf4",
                Label.AGREEMENT: "agree"}),
        _series(Series.SHADOW_COMPARISONS, "0+1x30", **labels, **{Label.VARIANT: "nf4",
                Label.AGREEMENT: "disagree"}),
        _series(Series.SHADOW_COMPARISONS, "0+5x30", **labels, **{Label.VARIANT: "nf4",
                Label.AGREEMENT: "unknown"}),
        _series(Series.SHADOW_COMPARISONS, "0+2x30", **labels, **{Label.VARIANT: "int8",
                Label.AGREEMENT: "agree"}),
    ]  # fmt: skip
    shadow = {**labels, Label.VARIANT: "nf4"}
    ratio = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(shadow.items())) + "}"
    _run(
        promtool,
        tmp_path,
        series,
        [
            _alerts("QuanttrapShadowDisagreement", "12m", ("pending", shadow)),
            _alerts("QuanttrapShadowDisagreement", "25m", ("firing", shadow)),
            {  # unknown answers are left out: 1 disagreement in 3 comparable answers
                "expr": f"quanttrap:shadow_disagreement:ratio{ratio} * 3",
                "eval_time": "20m",
                "exp_samples": [{"labels": ratio, "value": 1}],
            },
        ],
    )


def test_shadow_disagreement_by_agent_hop(promtool: str, tmp_path: Path) -> None:
    pair = {Label.MODEL: MODEL, Label.PRIMARY: ANCHOR, Label.VARIANT: "nf4"}

    def comparisons(values: str, hop: str, agreement: str, verdict: str) -> dict[str, str]:
        labels = {Label.HOP_BUCKET: hop, Label.AGREEMENT: agreement, Label.SHADOW_VERDICT: verdict}
        return _series(Series.SHADOW_COMPARISONS, values, **pair, **labels)

    series = [
        comparisons("0+3x30", "0", "agree", "agree"),  # hop 0: 3 a minute, all agree
        comparisons("0+1x30", "1", "agree", "agree"),
        comparisons("0+1x30", "1", "disagree", "wrong_arguments"),
        comparisons("0+1x30", "3-4", "disagree", "wrong_tool"),
        comparisons("0+1x30", "3-4", "disagree", "text_instead_of_call"),
        comparisons("0+4x30", "3-4", "unknown", "unknown"),  # not comparable: left out
    ]

    def ratio(hop: str, value: float) -> dict[str, Any]:
        labels = {**pair, Label.HOP_BUCKET: hop}
        inner = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        return {
            "expr": f"quanttrap:shadow_disagreement_by_hop:ratio{inner}",
            "eval_time": "20m",
            "exp_samples": [{"labels": "quanttrap:shadow_disagreement_by_hop:ratio" + inner,
                             "value": value}],
        }  # fmt: skip

    checks = [ratio("0", 0.0), ratio("1", 0.5), ratio("3-4", 1.0)]
    whole = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pair.items())) + "}"
    checks.append(  # the pair's ratio over every hop is unchanged by the extra labels
        {
            "expr": f"quanttrap:shadow_disagreement:ratio{whole} * 7",
            "eval_time": "20m",
            "exp_samples": [{"labels": whole, "value": 3}],
        }
    )
    _run(promtool, tmp_path, series, checks)


def test_agent_disagreement_grows(promtool: str, tmp_path: Path) -> None:
    pair = {Label.MODEL: MODEL, Label.PRIMARY: ANCHOR}
    nf4, awq = ({**pair, Label.VARIANT: v} for v in ("nf4", "awq"))
    series = [
        # nf4: one replica's trend turns "grows" at minute 5; the other's stays "not shown"
        _series(Series.SHADOW_HOP_TREND, "0x4 1x25", **nf4, instance="proxy-0"),
        _series(Series.SHADOW_HOP_TREND, "0x30", **nf4, instance="proxy-1"),
        _series(Series.SHADOW_HOP_TREND, "0x30", **awq, instance="proxy-0"),
    ]
    name = "QuanttrapAgentDisagreementGrows"
    _run(
        promtool,
        tmp_path,
        series,
        [
            _alerts(name, "4m"),
            _alerts(name, "10m", ("pending", nf4)),
            _alerts(name, "21m", ("firing", nf4)),
        ],
    )


def test_missing_energy_telemetry(promtool: str, tmp_path: Path) -> None:
    info, method = Series.ENERGY_METHOD_INFO, Label.ENERGY_METHOD
    mv = {Label.MODEL: "e"}
    series = [
        # "lost": metered by the NVML counter, then nothing from minute 5
        _series(info, "1x5 0x25", **mv, **{Label.VARIANT: "lost", method: "nvml_counter"}),
        _series(info, "0x5 1x25", **mv, **{Label.VARIANT: "lost", method: "none"}),
        # "silent": a measured method, requests served, but no energy figure at all
        _series(info, "1x30", **mv, **{Label.VARIANT: "silent", method: "nvml_counter"}),
        # "http": never metered (an HTTP upstream without GPUs): not an alert by default
        _series(info, "1x30", **mv, **{Label.VARIANT: "http", method: "none"}),
        # "ok": metered, with energy figures
        _series(info, "1x30", **mv, **{Label.VARIANT: "ok", method: "nvml_counter"}),
        _series(Series.REQUEST_ENERGY + "_count", "0+1x30", **mv, **{Label.VARIANT: "ok",
                method: "nvml_counter"}),
    ]  # fmt: skip
    for variant in ("silent", "ok", "http"):
        series.append(
            _series(Series.REQUESTS, "0+1x30", **mv, **{Label.VARIANT: variant,
                    Label.STATUS_CLASS: "2xx"})
        )  # fmt: skip
    name = "QuanttrapEnergyTelemetryMissing"
    lost, silent, http = ({**mv, Label.VARIANT: v} for v in ("lost", "silent", "http"))
    _run(
        promtool,
        tmp_path / "default",
        series,
        [_alerts(name, "25m", ("firing", lost), ("firing", silent))],
    )
    expecting = RuleOptions(scoring=OPTIONS.scoring, energy_expected="http|other")
    _run(
        promtool,
        tmp_path / "expected",
        series,
        [_alerts(name, "25m", ("firing", http), ("firing", lost), ("firing", silent))],
        options=expecting,
    )


def test_canary_stalled(promtool: str, tmp_path: Path) -> None:
    probes, outcome = Series.CANARY_PROBES, Label.CANARY_OUTCOME
    mv = {Label.MODEL: "c"}
    series = [
        _series(probes, "0+1x5 5x25", **mv, **{Label.VARIANT: "nf4", outcome: "completed"}),
        _series(probes, "0+1x30", **mv, **{Label.VARIANT: "nf4", outcome: "skipped_busy"}),
        _series(probes, "0+1x30", **mv, **{Label.VARIANT: "int8", outcome: "completed"}),
        _series(probes, "0+1x30", **mv, **{Label.VARIANT: "fp8", outcome: "sent"}),
        _series(probes, "0+1x30", **mv, **{Label.VARIANT: "fp8", outcome: "failed"}),
    ]
    nf4, fp8 = ({**mv, Label.VARIANT: v} for v in ("nf4", "fp8"))
    name = "QuanttrapCanaryStalled"
    _run(
        promtool,
        tmp_path,
        series,
        [
            _alerts(name, "19m", ("firing", fp8)),  # nf4 completed one at minute 5
            _alerts(name, "22m", ("firing", fp8), ("pending", nf4)),
            _alerts(name, "27m", ("firing", fp8), ("firing", nf4)),
        ],
    )


def _humanize_percentage(value: float) -> str:
    """Prometheus's ``humanizePercentage`` for |value| < 10 (``%.4g`` of the percentage)."""
    return f"{value * 100:.4g}%"


def test_full_trap_annotations_quote_the_fleet_numbers(promtool: str, tmp_path: Path) -> None:
    cases = {(e.row.variant, e.row.bucket): e for e in expected(OPTIONS.si_config, 20, 10)}
    nf4, anchor = cases["nf4", "1"].score, cases[ANCHOR, "1"].score
    assert nf4.raw.ssi is not None and nf4.si is not None
    assert nf4.measurement.accuracy is not None and anchor.measurement.accuracy is not None
    numbers = [
        _humanize_percentage(nf4.measurement.accuracy - anchor.measurement.accuracy),
        f"{nf4.cor:.2f}",
        f"{1 / nf4.raw.ssi:.2f}x",
        f"{nf4.si:.3f}",
    ]
    rules = yaml.safe_load((rules_dir(tmp_path / "read", OPTIONS) / "quanttrap-alerts.yaml")
                           .read_text())  # fmt: skip
    rule = next(r for r in rules["groups"][0]["rules"] if r["alert"] == "QuanttrapFullTrap")
    snippets = re.findall(r"\{\{ with .*?\{\{ end \}\}", rule["annotations"]["description"])
    assert len(snippets) == len(numbers)
    description = rule["annotations"]["description"]
    for snippet, number in zip(snippets, numbers, strict=True):
        description = description.replace(snippet, number, 1)
    alert = {
        "eval_time": "10m",
        "alertname": "QuanttrapFullTrap",
        "exp_alerts": [
            {
                "exp_labels": {"severity": "critical", **_row("nf4", "1")},
                "exp_annotations": {
                    "summary": "nf4 of m (batch bucket 1) is in a full quantization trap",
                    "description": description,
                    "runbook_url": f"{OPTIONS.runbook_base}/QuanttrapFullTrap.md",
                },
            }
        ],
    }
    _run(promtool, tmp_path / "run", input_series() + _trap_series(), [], alert_tests=[alert])


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_is_documented(alert: str) -> None:
    rules = yaml.safe_load(
        __import__("grafana.export", fromlist=["render_all"]).render_all()[
            "rules/quanttrap-alerts.yaml"
        ]
    )
    rule = next(r for r in rules["groups"][0]["rules"] if r["alert"] == alert)
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["for"] != "0s"
    runbook = Path(__file__).resolve().parents[2] / "docs" / "runbooks" / f"{alert}.md"
    assert rule["annotations"]["runbook_url"].endswith(f"/docs/runbooks/{alert}.md")
    assert runbook.is_file(), f"no runbook for {alert}"
    text = runbook.read_text(encoding="utf-8")
    for section in (
        "## Symptoms",
        "## Meaning",
        "## Checks",
        "## Mitigation",
        "## False positives",
    ):
        assert section in text, f"{runbook.name} lacks {section}"
