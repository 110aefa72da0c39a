"""Shadowing: copies run off the critical path, are bounded, and are paired with the primary."""

from __future__ import annotations

import asyncio
import time

from backends.base import BackendConnectError
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import chat, harness


async def _settle(h, n: int, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while len(h.pairs.pairs) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_shadow_never_delays_the_user_and_is_paired() -> None:
    bf16 = ScriptedBackend("bf16", words=("the", "answer"))
    nf4 = ScriptedBackend("nf4", words=("an", "answer"), delay_s=0.5)
    async with harness(
        {"bf16": bf16, "nf4": nf4}, shadow={"variants": ["nf4"], "sample_rate": 1.0}
    ) as h:
        t0 = time.perf_counter()
        resp = await h.client.post("/v1/chat/completions", json=chat(stream=True))
        elapsed = time.perf_counter() - t0
        assert resp.status_code == 200 and resp.headers["x-quanttrap-variant"] == "bf16"
        assert elapsed < 0.4  # the shadow takes 0.5 s; the user did not wait for it
        await _settle(h, 1)
    (pair,) = h.pairs.pairs
    assert pair.primary.variant == "bf16" and pair.primary.text == "the answer"
    assert pair.shadow is not None and pair.shadow.variant == "nf4"
    assert pair.shadow.role == "shadow" and pair.shadow.text == "an answer"
    assert pair.shadow.stream is True  # same streaming mode as the primary
    assert pair.shadow.completion_tokens == 2
    assert pair.pair_id == pair.primary.pair_id == pair.shadow.pair_id
    assert pair.primary.request_id == pair.shadow.request_id  # the user's request id
    assert pair.primary.attempt_id != pair.shadow.attempt_id  # each attempt its own
    assert nf4.calls[0].headers["x-quanttrap-role"] == "shadow"
    assert [r.role for r in h.records] == ["primary"]  # shadow records go to the pair sinks


async def test_failing_shadow_does_not_harm_the_user() -> None:
    bf16 = ScriptedBackend("bf16")
    nf4 = ScriptedBackend("nf4", fail=BackendConnectError("down"))
    async with harness(
        {"bf16": bf16, "nf4": nf4}, shadow={"variants": ["nf4"], "sample_rate": 1.0}
    ) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat())
        await _settle(h, 1)
    assert resp.status_code == 200
    (pair,) = h.pairs.pairs
    assert pair.shadow is not None and not pair.shadow.ok
    assert pair.shadow.error_type == "upstream_error"
    assert h.app.service.shadows["demo"].counts["nf4", "failed"] == 1


async def test_shadow_copies_are_capped_and_drops_counted() -> None:
    bf16 = ScriptedBackend("bf16")
    nf4 = ScriptedBackend("nf4", delay_s=0.3)
    async with harness(
        {"bf16": bf16, "nf4": nf4},
        shadow={"variants": ["nf4"], "sample_rate": 1.0, "max_concurrency": 2},
    ) as h:
        await asyncio.gather(
            *(h.client.post("/v1/chat/completions", json=chat()) for _ in range(5))
        )
        counts = h.app.service.shadows["demo"].counts
        assert counts["nf4", "sent"] == 2 and counts["nf4", "dropped"] == 3
        await _settle(h, 5)
    dropped = [p for p in h.pairs.pairs if p.shadow is None]
    assert len(dropped) == 3 and all("concurrency cap" in (p.dropped_reason or "") for p in dropped)


async def test_sample_rate_zero_sends_no_copies() -> None:
    nf4 = ScriptedBackend("nf4")
    async with harness(
        {"bf16": ScriptedBackend("bf16"), "nf4": nf4},
        shadow={"variants": ["nf4"], "sample_rate": 0.0},
    ) as h:
        for _ in range(20):
            await h.client.post("/v1/chat/completions", json=chat())
    assert nf4.calls == []


async def test_no_shadow_to_the_variant_that_serves_the_request() -> None:
    nf4 = ScriptedBackend("nf4")
    async with harness(
        {"bf16": ScriptedBackend("bf16"), "nf4": nf4},
        shadow={"variants": ["nf4"], "sample_rate": 1.0},
    ) as h:
        await h.client.post(
            "/v1/chat/completions", json=chat(), headers={"X-Quanttrap-Variant": "nf4"}
        )
    assert len(nf4.calls) == 1  # the pinned request only; no copy to itself
