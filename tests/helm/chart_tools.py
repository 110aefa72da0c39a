"""Render and check the Helm chart without a helm binary or a cluster.

Rendering and linting go through Helm's own Go SDK (the ``helm-python-sdk`` wheel bundles it as
a shared library); every rendered object of a built-in kind is checked against the Kubernetes
OpenAPI schema of :data:`KUBE_VERSION` (``kubernetes-validate``, strict: unknown fields fail).
Prometheus Operator objects have no bundled schema, so their structure is checked here, and
the rules themselves with ``promtool`` where it is installed. The cross-object checks catch
what no per-object schema can: a Service whose selector matches no pod, a probe on a port the
container does not have, duplicate YAML keys (which the API server rejects, PyYAML ignores).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

try:
    import helm_python as helm
    import kubernetes_validate
except ImportError:  # pragma: no cover - only without the test extras
    if os.environ.get("QUANTTRAP_REQUIRE_INTEGRATION") == "1":
        raise
    pytest.skip(
        "helm-python-sdk / kubernetes-validate not installed (pip install -e '.[test]')",
        allow_module_level=True,
    )

__all__ = [
    "CHART_DIR",
    "FIXTURES",
    "FULL_VALUES",
    "KUBE_VERSION",
    "MONITORING_API",
    "NAMESPACE",
    "PROXY",
    "RELEASE",
    "Rendered",
    "chart_copy",
    "check_all",
    "check_monitoring_object",
    "check_workload_wiring",
    "container_of",
    "dashboards_in",
    "helm",
    "lint_problems",
    "load_yaml_strict",
    "pod_spec",
    "promtool_check",
    "render",
    "validate_builtin",
]

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "quanttrap"
FULL_VALUES = REPO / "helm" / "examples" / "full-values.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
KUBE_VERSION = "1.31"
RELEASE = "quanttrap"
PROXY = RELEASE
"""Name of the proxy's objects: the release name alone, since it contains the chart's name."""
NAMESPACE = "llm"
MONITORING_API = "monitoring.coreos.com/v1"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
# Fields of the Prometheus Operator's CRDs (v0.7x) that this chart may set.
_SERVICE_MONITOR_SPEC = {"selector", "endpoints", "namespaceSelector", "jobLabel"}
_SERVICE_MONITOR_ENDPOINT = {
    "port",
    "path",
    "interval",
    "scrapeTimeout",
    "scheme",
    "relabelings",
    "metricRelabelings",
    "honorLabels",
}
_RULE_GROUP = {"name", "interval", "rules", "limit", "partial_response_strategy"}
_RULE = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys, as the Kubernetes API server does."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(key, deep=True) for key, _ in node.value]
    duplicated = sorted({str(k) for k in keys if keys.count(k) > 1})
    if duplicated:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {duplicated}", node.start_mark
        )
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_yaml_strict(text: str) -> list[dict[str, Any]]:
    """Every non-empty document of ``text``; duplicate keys raise."""
    return [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc]


@dataclass(frozen=True)
class Rendered:
    """One ``helm template``: the objects in render order and the NOTES.txt text."""

    objects: tuple[dict[str, Any], ...]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name!r}, got {self.names(kind)}"
        return found[0]

    def names(self, kind: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.of_kind(kind))


def render(
    chart_dir: Path, values: Mapping[str, Any] | None = None, *, release: str = RELEASE
) -> Rendered:
    """``helm template release chart_dir -n NAMESPACE`` with ``values``, parsed."""
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(
            dict(values or {}), name=release, namespace=NAMESPACE, is_install=True
        )
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        else:
            objects.extend(load_yaml_strict(text))
    return Rendered(objects=tuple(objects), notes=notes)


def lint_problems(chart_dir: Path, values: Mapping[str, Any] | None = None) -> list[str]:
    """``helm lint --strict`` findings of severity warning or error (info is allowed)."""
    report = helm.lint(
        chart_dir, dict(values or {}), strict=True, kube_version=f"v{KUBE_VERSION}.0"
    )
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]


def chart_copy(destination: Path, *, rules: bool, dashboards: bool, files_dir: bool = True) -> Path:
    """The chart copied to ``destination`` with only the test fixtures under files/.

    The real chart's files/ (generated by the project) is left out so that counts are exact;
    ``files_dir=False`` removes files/ altogether.
    """
    chart = destination / CHART_DIR.name
    shutil.copytree(CHART_DIR, chart, ignore=shutil.ignore_patterns("files"))
    if files_dir:
        (chart / "files" / "rules").mkdir(parents=True)
        (chart / "files" / "dashboards").mkdir(parents=True)
        if rules:
            for path in (FIXTURES / "rules").glob("*.yaml"):
                shutil.copy(path, chart / "files" / "rules" / path.name)
        if dashboards:
            for path in (FIXTURES / "dashboards").glob("*.json"):
                shutil.copy(path, chart / "files" / "dashboards" / path.name)
    return chart


def validate_builtin(obj: Mapping[str, Any]) -> None:
    """Check a built-in object against the Kubernetes schema; raises with the failing path."""
    try:
        kubernetes_validate.validate(dict(obj), KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        raise AssertionError(
            f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}"
        ) from None
    name = obj["metadata"]["name"]
    pattern = _DNS_LABEL if obj["kind"] == "Service" else _DNS_SUBDOMAIN
    limit = 63 if obj["kind"] == "Service" else 253
    assert pattern.match(name) and len(name) <= limit, f"{obj['kind']} name {name!r} is invalid"


def check_monitoring_object(obj: Mapping[str, Any]) -> None:
    """Structural check of a ServiceMonitor or PrometheusRule (no CRD schema is bundled)."""
    assert obj["apiVersion"] == MONITORING_API, obj["apiVersion"]
    assert _DNS_SUBDOMAIN.match(obj["metadata"]["name"]), obj["metadata"]["name"]
    spec = obj["spec"]
    if obj["kind"] == "ServiceMonitor":
        assert set(spec) <= _SERVICE_MONITOR_SPEC, (
            f"unknown keys {set(spec) - _SERVICE_MONITOR_SPEC}"
        )
        assert spec["selector"]["matchLabels"], "a ServiceMonitor must select something"
        assert spec["endpoints"], "a ServiceMonitor needs endpoints"
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= _SERVICE_MONITOR_ENDPOINT, f"unknown keys in {endpoint}"
            for key in ("interval", "scrapeTimeout"):
                assert key not in endpoint or _DURATION.match(endpoint[key]), endpoint
    elif obj["kind"] == "PrometheusRule":
        assert set(spec) == {"groups"}, f"PrometheusRule spec keys: {set(spec)}"
        assert isinstance(spec["groups"], list) and spec["groups"], "no rule groups"
        for group in spec["groups"]:
            assert set(group) <= _RULE_GROUP and "name" in group, f"bad group {group}"
            for rule in group["rules"]:
                assert set(rule) <= _RULE, f"unknown keys in rule {rule}"
                assert ("record" in rule) != ("alert" in rule), f"record xor alert: {rule}"
                assert isinstance(rule["expr"], str | int | float), f"no expr: {rule}"
                assert "for" not in rule or _DURATION.match(rule["for"]), rule
    else:
        raise AssertionError(f"unexpected kind {obj['kind']} in {MONITORING_API}")


def promtool_check(groups: list[dict[str, Any]], workdir: Path) -> str | None:
    """``promtool check rules`` on ``groups``; None when promtool is absent (and not required)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        assert os.environ.get("QUANTTRAP_REQUIRE_INTEGRATION") != "1", "promtool is missing"
        return None
    path = workdir / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"promtool check rules failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _pod_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return labels


def check_workload_wiring(rendered: Rendered) -> None:
    """What the API server or the kubelet would reject, or what would silently not connect."""
    seen = [(o["kind"], o["metadata"]["name"]) for o in rendered.objects]
    assert len(seen) == len(set(seen)), f"duplicate objects: {seen}"
    workloads = rendered.of_kind("Deployment") + rendered.of_kind("DaemonSet")
    for w in workloads:
        name = f"{w['kind']}/{w['metadata']['name']}"
        selector = w["spec"]["selector"]["matchLabels"]
        labels = _pod_labels(w)
        assert selector.items() <= labels.items(), f"{name}: selector does not match its pods"
        spec = pod_spec(w)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            sources = set(volume) - {"name"}
            assert len(sources) == 1 and volume[next(iter(sources))] is not None, volume
        for c in spec["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, f"{name}: mount of unknown volume {m['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in c:
                    port = c[probe]["httpGet"]["port"]
                    assert port in ports or port in ports.values(), f"{name}: {probe} port"
    for svc in rendered.of_kind("Service"):
        selector = svc["spec"]["selector"]
        backing = [w for w in workloads if selector.items() <= _pod_labels(w).items()]
        assert backing, f"Service {svc['metadata']['name']} selects no pod"
        for w in backing:
            names = {p["name"] for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                assert port["targetPort"] in names, f"{svc['metadata']['name']}: {port}"


def dashboards_in(rendered: Rendered, label: str, value: str) -> dict[str, Any]:
    """Dashboard JSON by file name, from ConfigMaps labelled ``label: value``."""
    found: dict[str, Any] = {}
    for cm in rendered.of_kind("ConfigMap"):
        if cm["metadata"]["labels"].get(label) == value:
            for key, text in cm["data"].items():
                found[key] = json.loads(text)
    return found


def container_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The one container of a workload's pods."""
    containers: list[dict[str, Any]] = pod_spec(obj)["containers"]
    assert len(containers) == 1, [c["name"] for c in containers]
    return containers[0]


def check_all(rendered: Rendered, workdir: Path) -> None:
    """Every object by its schema (or structure and promtool), then the wiring between them."""
    for obj in rendered.objects:
        if obj["apiVersion"] == MONITORING_API:
            check_monitoring_object(obj)
            if obj["kind"] == "PrometheusRule":
                promtool_check(obj["spec"]["groups"], workdir)
        else:
            validate_builtin(obj)
    check_workload_wiring(rendered)
