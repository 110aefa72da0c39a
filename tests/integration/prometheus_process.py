"""A real ``prometheus`` process for integration tests: temp data dir, loopback, 1 s cadence."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.doubles.processes import Process, free_port

__all__ = ["PrometheusProcess", "prometheus_binary"]


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class PrometheusProcess:
    """Scrapes ``targets`` every second and evaluates ``rule_files`` every second."""

    def __init__(self, binary: str, workdir: Path, targets: list[str], rule_files: list[Path]):
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "900ms",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "quanttrap", "static_configs": [{"targets": targets}]}],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        self.process = Process(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            port,
            workdir / "prometheus.log",
        )
        self.url = self.process.url
        self.process.wait_http("/-/ready", timeout=30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """``/api/v1/query`` at now: the result vector (raises on a query error)."""
        resp = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        if body.get("status") != "success":
            raise AssertionError(f"query failed: {expr}\n{body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (``None`` when empty)."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, f"{expr}: {len(result)} series, expected one: {result}"
        return float(result[0]["value"][1])

    def label_values(self, label: str, match: str) -> list[str]:
        resp = httpx.get(
            self.url + f"/api/v1/label/{label}/values", params={"match[]": match}, timeout=10
        )
        body = resp.json()
        assert body.get("status") == "success", body
        values: list[str] = body["data"]
        return values

    def alerts(self) -> list[dict[str, Any]]:
        body = httpx.get(self.url + "/api/v1/alerts", timeout=10).json()
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts

    def wait_for(self, expr: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns something."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)

    def stop(self) -> None:
        self.process.stop()
