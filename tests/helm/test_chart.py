"""The Helm chart helm/quanttrap: lint, render and validate with Helm's Go SDK (no binary).

Rendered for the default values and for helm/examples/full-values.yaml (everything on): every
object checked against the Kubernetes 1.31 schemas, the values schema's refusals, the proxy's
Deployment, and its config file read by quanttrap's own loader. vLLM, the nvml-agent and the
monitoring objects are in test_chart_addons.py.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from proxy.config import OpenAIBackendConfig
from quanttrap.defaults import embedded_default
from quanttrap.settings import load_settings, settings_from_mapping
from tests.helm.chart_tools import (
    CHART_DIR,
    FULL_VALUES,
    PROXY,
    Rendered,
    check_all,
    container_of,
    dashboards_in,
    helm,
    lint_problems,
    pod_spec,
    render,
)

# --- the two reference renders -----------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, FULL_VALUES], ids=["default", "full"])
def test_lint_is_clean_on_the_chart_as_shipped(values_file: Path | None) -> None:
    values = yaml.safe_load(values_file.read_text(encoding="utf-8")) if values_file else None
    assert lint_problems(CHART_DIR, values) == []


def test_lint_is_clean_with_rule_and_dashboard_files(
    fixture_chart: Path, full_values: dict[str, Any]
) -> None:
    assert lint_problems(fixture_chart, full_values) == []


def test_default_render_is_valid(default: Rendered, tmp_path: Path) -> None:
    check_all(default, tmp_path)
    kinds = sorted(o["kind"] for o in default.objects)
    assert kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]


def test_full_render_is_valid_and_has_every_feature(full: Rendered, tmp_path: Path) -> None:
    check_all(full, tmp_path)
    assert full.names("Deployment") == [PROXY, f"{PROXY}-vllm-bf16", f"{PROXY}-vllm-nf4"]
    assert full.names("DaemonSet") == [f"{PROXY}-nvml-agent"]
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"):
        assert full.names(kind) == [PROXY]
    assert len(full.of_kind("PrometheusRule")) == 1
    assert len(dashboards_in(full, "grafana_dashboard", "1")) == 1


def test_full_values_with_the_real_files_folder_are_valid(
    full_values: dict[str, Any], tmp_path: Path
) -> None:
    """Whatever rule and dashboard files the chart ships render into valid objects."""
    rendered = render(CHART_DIR, full_values)
    check_all(rendered, tmp_path)
    shipped_rules = sorted((CHART_DIR / "files" / "rules").glob("*.yaml"))
    shipped_dashboards = sorted((CHART_DIR / "files" / "dashboards").glob("*.json"))
    assert len(rendered.of_kind("PrometheusRule")) == len(shipped_rules)
    assert sorted(dashboards_in(rendered, "grafana_dashboard", "1")) == [
        p.name for p in shipped_dashboards
    ]


# --- values.schema.json and the template's own refusals -----------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
        ({"replicaCont": 2}, "additional properties 'replicaCont' not allowed"),
        ({"service": {"type": "Ingress"}}, "/service/type"),
        ({"config": {"models": None}}, "at '/config': missing property 'models'"),
        ({"vllm": {"variants": [{"name": "BF_16", "model": "m"}]}}, "/vllm/variants/0/name"),
        ({"serviceMonitor": {"interval": "15 seconds"}}, "/serviceMonitor/interval"),
        ({"nvmlAgent": {"service": {"internalTrafficPolicy": "Node"}}}, "internalTrafficPolicy"),
    ],
)
def test_schema_rejects_bad_values(override: dict[str, Any], expected: str) -> None:
    with pytest.raises(helm.HelmValuesError, match="schema") as raised:
        render(CHART_DIR, override)
    assert expected in str(raised.value)
    assert any(expected in problem for problem in lint_problems(CHART_DIR, override))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"config": {"server": {"protect_metrics": True}}}, "kubelet probes cannot send"),
        ({"autoscaling": {"enabled": True}, "resources": {"requests": None}}, "requests.cpu"),
        (
            {"vllm": {"enabled": True, "variants": [{"name": "a", "model": "m"}] * 2}},
            'the name "a" is used twice',
        ),
    ],
)
def test_unworkable_settings_fail_with_the_reason(override: dict[str, Any], expected: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=expected):
        render(CHART_DIR, override)


# --- the proxy -----------------------------------------------------------------------------


def test_default_config_is_the_embedded_default(default: Rendered) -> None:
    text = default.one("ConfigMap", PROXY)["data"]["quanttrap.yaml"]
    settings = settings_from_mapping(yaml.safe_load(text))
    assert settings.models == settings_from_mapping(embedded_default()).models


def test_pod_reads_the_rendered_config_with_its_env_overrides(
    full: Rendered, tmp_path: Path
) -> None:
    """What the container runs: --config at the ConfigMap's mount, overridden by its env."""
    deployment = full.one("Deployment", PROXY)
    container = container_of(deployment)
    config_path = container["args"][container["args"].index("--config") + 1]
    mount = next(m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"]))
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
    configmap = full.one("ConfigMap", volume["configMap"]["name"])
    key = config_path.removeprefix(mount["mountPath"]).strip("/")
    (tmp_path / key).write_text(configmap["data"][key], encoding="utf-8")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = load_settings(tmp_path / key, environ=env)
    model = settings.models[0]
    assert [v.name for v in model.variants] == ["bf16", "nf4"]
    assert model.shadow.sample_rate == pytest.approx(0.2)  # from extraEnv, not the file's 0.25
    assert container["args"][-4:] == ["--host", "0.0.0.0", "--port", "8000"]


def test_config_urls_point_at_the_charts_services(full_values: dict[str, Any]) -> None:
    """With a release name that is not the chart's, tpl still names the right Services."""
    rendered = render(CHART_DIR, full_values, release="prod")
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in rendered.of_kind("Service")
    }
    settings = settings_from_mapping(
        yaml.safe_load(rendered.one("ConfigMap", "prod-quanttrap")["data"]["quanttrap.yaml"])
    )
    backends = [v.backend for m in settings.models for v in m.variants]
    urls = [b.base_url for b in backends if isinstance(b, OpenAIBackendConfig)]
    assert len(urls) == len(backends) == 2
    assert settings.telemetry.energy.url is not None
    urls.append(settings.telemetry.energy.url)
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname in services, f"{url}: no such Service in {sorted(services)}"
        assert parts.port in services[parts.hostname], url
    assert "http://prod-quanttrap-vllm-nf4:8000/v1" in rendered.notes


def test_proxy_runs_locked_down_with_writable_emptydirs(default: Rendered) -> None:
    deployment = default.one("Deployment", PROXY)
    spec = pod_spec(deployment)
    sc = container_of(deployment)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == spec["securityContext"]["seccompProfile"]["type"]
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    volumes = {v["name"]: v for v in spec["volumes"]}
    writable = {
        m["mountPath"]: volumes[m["name"]]
        for m in container_of(deployment)["volumeMounts"]
        if not m.get("readOnly")
    }
    assert set(writable) == {"/var/lib/quanttrap", "/tmp"}
    assert all("emptyDir" in v for v in writable.values())
    env = {e["name"]: e.get("value") for e in container_of(deployment)["env"]}
    assert env["QUANTTRAP_SCORING__STORE__PATH"].startswith("/var/lib/quanttrap/")


def test_probes_hit_the_health_routes_on_the_http_port(default: Rendered) -> None:
    container = container_of(default.one("Deployment", PROXY))
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    paths = {p: container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe")}
    assert paths == {"startupProbe": "/healthz", "livenessProbe": "/healthz"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # model loading
    service = default.one("Service", PROXY)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["name"] == "http"
    assert service["spec"]["ports"][0]["port"] == 8000


def test_a_config_change_rolls_the_pods_and_nothing_else_does() -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = render(CHART_DIR, values).one("Deployment", PROXY)["spec"]["template"]
        return str(annotations["metadata"]["annotations"]["checksum/config"])

    base = checksum({})
    assert checksum({"replicaCount": 3}) == base
    assert checksum({"config": {"server": {"log_level": "debug"}}}) != base


def test_api_keys_from_a_chart_secret_or_an_existing_one() -> None:
    created = render(CHART_DIR, {"apiKeys": {"keys": ["k1", "k2"]}})
    secret = created.one("Secret", f"{PROXY}-api-keys")
    assert base64.b64decode(secret["data"]["api-keys"]).decode() == "k1,k2"
    env = {e["name"]: e for e in container_of(created.one("Deployment", PROXY))["env"]}
    ref = env["QUANTTRAP_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{PROXY}-api-keys", "key": "api-keys"}

    existing = render(
        CHART_DIR,
        {
            "apiKeys": {"existingSecret": "keys", "secretKey": "list"},
            "config": {"server": {"api_keys_env": "CLIENT_KEYS"}},
        },
    )
    assert existing.of_kind("Secret") == []
    env = {e["name"]: e for e in container_of(existing.one("Deployment", PROXY))["env"]}
    assert env["CLIENT_KEYS"]["valueFrom"]["secretKeyRef"] == {"name": "keys", "key": "list"}
    assert "QUANTTRAP_API_KEYS" not in env


def test_hpa_owns_the_replica_count(default: Rendered, full: Rendered) -> None:
    assert default.one("Deployment", PROXY)["spec"]["replicas"] == 1
    assert default.of_kind("HorizontalPodAutoscaler") == []
    assert "replicas" not in full.one("Deployment", PROXY)["spec"]
    hpa = full.one("HorizontalPodAutoscaler", PROXY)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": PROXY}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    pdb = full.one("PodDisruptionBudget", PROXY)["spec"]
    assert pdb == {
        "maxUnavailable": 1,
        "selector": full.one("Deployment", PROXY)["spec"]["selector"],
    }
