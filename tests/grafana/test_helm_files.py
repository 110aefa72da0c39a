"""The chart ships the generated files: one PrometheusRule and one ConfigMap per file.

Renders the real chart (Helm's Go SDK, as ``tests/helm`` does) with rules and dashboards on,
and checks that the objects hold the generated files untouched: alert templates such as
``{{ $labels.quanttrap_variant }}`` must reach Prometheus as written.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from grafana.export import render_all


def test_the_chart_carries_every_generated_file_untouched(tmp_path: Path) -> None:
    from tests.helm.chart_tools import CHART_DIR, check_all, dashboards_in, render

    rendered = render(
        CHART_DIR, {"prometheusRule": {"enabled": True}, "dashboards": {"enabled": True}}
    )
    files = render_all()
    rules = {
        r["metadata"]["annotations"]["quanttrap.io/source-file"]: r["spec"]["groups"]
        for r in rendered.of_kind("PrometheusRule")
    }
    assert rules == {
        Path(path).name: yaml.safe_load(text)["groups"]
        for path, text in files.items()
        if path.startswith("rules/")
    }
    assert dashboards_in(rendered, "grafana_dashboard", "1") == {
        Path(path).name: json.loads(text)
        for path, text in files.items()
        if path.startswith("dashboards/")
    }
    check_all(rendered, tmp_path)  # schemas, wiring, and promtool on every PrometheusRule
