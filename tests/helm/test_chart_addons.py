"""The chart's optional parts: vLLM variants, the nvml-agent DaemonSet, the ServiceMonitor,
the PrometheusRules and the Grafana dashboard ConfigMaps (files/ read with .Files.Glob).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart_tools import (
    CHART_DIR,
    FIXTURES,
    PROXY,
    Rendered,
    chart_copy,
    check_all,
    container_of,
    dashboards_in,
    helm,
    lint_problems,
    pod_spec,
    promtool_check,
    render,
)

# --- vLLM and the nvml-agent -----------------------------------------------------------------


def test_vllm_variant_command_line_and_gpus(tmp_path: Path) -> None:
    variant = {"name": "fp8", "model": "org/m", "dtype": "bfloat16", "quantization": "fp8"}
    rendered = render(
        CHART_DIR,
        {"vllm": {"enabled": True, "variants": [{**variant, "gpus": 2, "extraArgs": ["--x"]}]}},
    )
    check_all(rendered, tmp_path)
    deployment = rendered.one("Deployment", f"{PROXY}-vllm-fp8")
    container = container_of(deployment)
    assert container["command"] == ["vllm"]
    assert container["args"] == [
        "serve", "org/m", "--host", "0.0.0.0", "--port", "8000", "--dtype", "bfloat16",
        "--quantization", "fp8", "--served-model-name", "fp8", "--tensor-parallel-size", "2",
        "--x",
    ]  # fmt: skip
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert rendered.one("Service", f"{PROXY}-vllm-fp8")["spec"]["ports"][0]["port"] == 8000


def test_nvml_agent_reads_every_gpu_without_taking_one(full: Rendered) -> None:
    daemonset = full.one("DaemonSet", f"{PROXY}-nvml-agent")
    container = container_of(daemonset)
    assert container["args"][:1] == ["nvml-agent"]
    assert container["args"][container["args"].index("--port") + 1] == "9402"
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    spec = pod_spec(daemonset)
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "hostPID" not in spec
    service = full.one("Service", f"{PROXY}-nvml-agent")
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    with_host_port = render(CHART_DIR, {"nvmlAgent": {"enabled": True, "hostPort": 9402}})
    port = container_of(with_host_port.one("DaemonSet", f"{PROXY}-nvml-agent"))["ports"][0]
    assert port["hostPort"] == 9402


# --- Prometheus Operator and Grafana -----------------------------------------------------------


def test_service_monitor_scrapes_only_the_proxy_service(full: Rendered) -> None:
    monitor = full.one("ServiceMonitor", PROXY)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        s for s in full.of_kind("Service") if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in selected] == [PROXY]
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}


def test_prometheus_rule_holds_the_rule_file_untouched(full: Rendered, tmp_path: Path) -> None:
    (rule,) = full.of_kind("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load((FIXTURES / "rules" / "quanttrap_si.yaml").read_text("utf-8"))
    assert rule["spec"]["groups"] == source["groups"]  # alert templates ($labels) included
    output = promtool_check(rule["spec"]["groups"], tmp_path)
    assert output is None or "SUCCESS: 2 rules found" in output


def test_release_label_is_configurable(fixture_chart: Path) -> None:
    rendered = render(
        fixture_chart,
        {
            "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        },
    )
    for kind in ("PrometheusRule", "ServiceMonitor"):
        (obj,) = rendered.of_kind(kind)
        assert obj["metadata"]["labels"]["release"] == "prom"


def test_one_labelled_configmap_per_dashboard(fixture_chart: Path, full: Rendered) -> None:
    source = json.loads((FIXTURES / "dashboards" / "quanttrap_overview.json").read_text("utf-8"))
    assert dashboards_in(full, "grafana_dashboard", "1") == {"quanttrap_overview.json": source}
    (configmap,) = [
        c for c in full.of_kind("ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "quanttrap"}
    relabelled = render(
        fixture_chart, {"dashboards": {"enabled": True, "label": "dash", "labelValue": "yes"}}
    )
    assert dashboards_in(relabelled, "dash", "yes") == {"quanttrap_overview.json": source}
    assert dashboards_in(relabelled, "grafana_dashboard", "1") == {}


@pytest.mark.parametrize("files_dir", [True, False], ids=["empty-files", "no-files"])
def test_no_rule_or_dashboard_files_render_no_objects(
    tmp_path: Path, files_dir: bool, full_values: dict[str, Any]
) -> None:
    chart = chart_copy(tmp_path, rules=False, dashboards=False, files_dir=files_dir)
    rendered = render(chart, full_values)
    assert rendered.of_kind("PrometheusRule") == []
    assert dashboards_in(rendered, "grafana_dashboard", "1") == {}
    assert "no files/rules/*.yaml" in rendered.notes
    assert "no files/dashboards/*.json" in rendered.notes
    assert lint_problems(chart, full_values) == []


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("rules/broken.yaml", "groups: [\n", "files/rules/broken.yaml: not valid YAML"),
        ("rules/flat.yaml", "rules: []\n", "files/rules/flat.yaml: a rule file needs a list"),
        ("dashboards/broken.json", '{"title": ', "files/dashboards/broken.json: not valid JSON"),
    ],
)
def test_a_broken_file_fails_the_render_with_its_name(
    tmp_path: Path, full_values: dict[str, Any], relative: str, text: str, expected: str
) -> None:
    chart = chart_copy(tmp_path, rules=True, dashboards=True)
    (chart / "files" / relative).write_text(text, encoding="utf-8")
    with pytest.raises(helm.HelmRenderError, match=expected):
        render(chart, full_values)
