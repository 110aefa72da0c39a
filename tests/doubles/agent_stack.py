"""Helpers for the end-to-end agent-client tests: proxy configs, the doubles' request logs,
and reading ``/metrics`` with the real Prometheus text parser (``prometheus_client``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.doubles.processes import Process

__all__ = [
    "configure",
    "metric_sum",
    "model",
    "upstream_log",
    "variant",
    "wait_for",
]

T = TypeVar("T")


def variant(name: str, bits: int, url: str, **backend: Any) -> dict[str, Any]:
    return {
        "name": name,
        "bits": bits,
        "backend": {"kind": "openai", "base_url": url + "/v1", **backend},
    }


def model(name: str, *variants: dict[str, Any], shadow: str | None = None) -> dict[str, Any]:
    """A model whose first variant is anchor and primary; ``shadow`` mirrors every request."""
    cfg: dict[str, Any] = {
        "name": name,
        "anchor": variants[0]["name"],
        "variants": list(variants),
        "routing": {"primary": variants[0]["name"]},
    }
    if shadow is not None:
        cfg["shadow"] = {"variants": [shadow], "sample_rate": 1.0}
    return cfg


def configure(proc: Process, **config: Any) -> None:
    httpx.post(proc.url + "/_double/config", json=config).raise_for_status()


def upstream_log(proc: Process) -> list[dict[str, Any]]:
    """What the double received: ``[{"path", "headers", "body"}, ...]``, oldest first."""
    return httpx.get(proc.url + "/_double/requests").json()  # type: ignore[no-any-return]


def metric_sum(proxy: Process, sample: str, **labels: str) -> float:
    """The sum of every ``/metrics`` sample named ``sample`` whose labels include ``labels``
    (label names with dots written as underscores, as Prometheus does); 0.0 when none."""
    text = httpx.get(proxy.url + "/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy (the proxy records after answering)."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in {timeout}s: {what}")
        time.sleep(0.1)
