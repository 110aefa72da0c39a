"""Hostile values never grow the metric series: thousands of model names, pinned variants,
session ids, request ids and traceparents through the app, and the series count stays put."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import chat
from tests.proxy.seams import seams


def _series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


async def test_series_stay_bounded_under_thousands_of_distinct_hostile_values() -> None:
    backends = {n: ScriptedBackend(n) for n in ("bf16", "nf4")}
    shadow = {"variants": ["nf4"], "sample_rate": 1.0}
    async with seams(backends, shadow=shadow) as s:

        async def burst(i: int) -> None:
            headers = {
                "x-session-id": f"session-{i}",
                "x-request-id": f"request-{i}",
                "traceparent": f"00-{i:032x}-{i + 1:016x}-01",
                "user-agent": f"agent/{i}",
            }
            await s.client.post("/v1/chat/completions", json=chat(), headers=headers)
            await s.client.post("/v1/chat/completions", json=chat(model=f"model-{i}"))
            await s.client.post("/v1/chat/completions", json=chat(),
                                headers={"x-quanttrap-variant": f"variant-{i}"})  # fmt: skip

        for i in range(50):  # warm up: every legitimate series exists
            await burst(i)
        await asyncio.sleep(0.1)
        before = _series(s.registry)
        for start in range(50, 1050, 100):  # 3,000 hostile requests
            await asyncio.gather(*(burst(i) for i in range(start, start + 100)))
        await asyncio.sleep(0.1)
        after = _series(s.registry)
        text = "\n".join(
            f"{sample.labels}" for family in s.registry.collect() for sample in family.samples
        )
    assert after == before, f"{after - before} new series from hostile values"
    for leaked in ("model-1000", "variant-1000", "session-1000", "request-1000", "agent/1000"):
        assert leaked not in text
