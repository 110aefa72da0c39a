"""The seams of one request, tested through the app with real telemetry (``seams.py``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from telemetry.core import ActiveTelemetry
from telemetry.semconv import Key
from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import chat
from tests.proxy.seams import seams
from tests.telemetry.helpers import value

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_the_configured_session_header_reaches_telemetry_and_the_span() -> None:
    backends = {"bf16": ScriptedBackend("bf16")}
    async with seams(backends, telemetry={"session_header": "X-Agent-Session"}) as s:
        for _ in range(3):
            resp = await s.client.post(
                "/v1/chat/completions", json=chat(), headers={"x-agent-session": "task-42"}
            )
            assert resp.status_code == 200
        # The default header name means nothing when another one is configured.
        await s.client.post("/v1/chat/completions", json=chat(), headers={"x-session-id": "x"})
        await _until(lambda: len(s.records) == 4)
    positions = [r.agent_chain_position for r in s.records]
    assert positions == [0, 1, 2, 0]
    assert [r.session_id for r in s.records] == ["task-42"] * 3 + [None]
    spans = [sp for sp in s.spans.get_finished_spans() if sp.name.startswith("chat")]
    assert [(sp.attributes or {}).get(Key.CONVERSATION_ID) for sp in spans] == [
        "task-42", "task-42", "task-42", None
    ]  # fmt: skip
    assert [(sp.attributes or {}).get(Key.AGENT_CHAIN_POSITION) for sp in spans] == [0, 1, 2, 0]


async def test_shadow_copies_never_advance_an_agent_chain() -> None:
    backends = {n: ScriptedBackend(n) for n in ("bf16", "int8", "nf4")}
    shadow = {"variants": ["int8", "nf4"], "sample_rate": 1.0}
    async with seams(backends, shadow=shadow) as s:
        for i in range(3):
            parent = f"{i + 1:016x}"
            headers = {"traceparent": f"00-{TRACE}-{parent}-01"}
            assert (await s.client.post("/v1/chat/completions", json=chat(),
                                        headers=headers)).status_code == 200  # fmt: skip
        await _until(lambda: len(s.pairs) == 6)
    primaries = [r for r in s.records if r.role == "primary"]
    assert [r.agent_chain_position for r in primaries] == [0, 1, 2]  # not 0, 2, 4
    copies = [p.shadow for p in s.pairs]
    assert all(c is not None and c.agent_chain_position == 0 for c in copies)
    assert all(c is not None and c.trace_id == TRACE for c in copies)


async def test_two_shadow_variants_of_one_request_each_get_energy_and_the_books_balance() -> None:
    words = tuple(f"w{i}" for i in range(8))
    backends = {n: ScriptedBackend(n, words=words, chunk_delay_s=0.01) for n in
                ("bf16", "int8", "nf4")}  # fmt: skip
    shadow = {"variants": ["int8", "nf4"], "sample_rate": 1.0}
    gpu_clock = [0.0]  # the fake GPU's own clock: its counter advances only when we say

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.005)
            gpu_clock[0] += 0.005

    async with seams(backends, shadow=shadow, clock=lambda: gpu_clock[0]) as s:
        ticking = asyncio.create_task(tick())
        sends = [
            s.client.post("/v1/chat/completions", json=chat(stream=True),
                          headers={"x-request-id": "same-id"})  # clients reuse ids too
            for _ in range(4)
        ]  # fmt: skip
        assert all(r.status_code == 200 for r in await asyncio.gather(*sends))
        await _until(lambda: len(s.pairs) == 8 and len(s.records) == 4)
        tel = s.telemetry
        assert isinstance(tel, ActiveTelemetry)
        await _until(lambda: tel.energy_meter.metering == 0)
        ticking.cancel()  # the GPU's counter stops here
        await asyncio.sleep(0.1)  # several samples: the last intervals are booked
        measured = 200.0 * gpu_clock[0]  # opened (and first read) at 0
        attributed = value(s.registry, "quanttrap_energy_attributed_joules_total")
        idle = value(s.registry, "quanttrap_energy_idle_joules_total")
    copies = [p.shadow for p in s.pairs]
    assert {c.variant for c in copies if c} == {"int8", "nf4"}
    # Every copy has its own attempt id and its own measured share (none took another's slot).
    attempts = {r.attempt_id for r in s.records} | {c.attempt_id for c in copies if c}
    assert len(attempts) == 12
    assert all(c is not None and c.energy_method == "nvml_counter" for c in copies)
    assert all(c is not None and c.energy_j is not None and c.energy_j > 0 for c in copies)
    everyone = [*s.records, *(c for c in copies if c)]
    assert all(r.request_id == "same-id" for r in everyone)
    booked = sum(r.energy_j or 0.0 for r in everyone)
    assert attributed is not None and idle is not None
    assert booked == pytest.approx(attributed, rel=1e-6)
    assert attributed + idle == pytest.approx(measured, rel=1e-6)


async def test_a_client_hanging_up_mid_stream_frees_everything_and_is_recorded() -> None:
    words = tuple(f"w{i}" for i in range(200))
    backend = ScriptedBackend("bf16", words=words, chunk_delay_s=0.01)
    async with seams({"bf16": backend}) as s:
        sent: list[dict[str, Any]] = []
        hang_up = asyncio.Event()
        body = orjson.dumps(chat(stream=True))
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and len(sent) >= 4:
                hang_up.set()  # the client goes away after a few chunks

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": [(b"content-type", b"application/json")],
            "query_string": b"",
        }
        await asyncio.wait_for(s.app(scope, receive, send), timeout=5)
        await _until(lambda: len(s.records) == 1)
        tel = s.telemetry
        assert isinstance(tel, ActiveTelemetry)
        assert tel.energy_meter.metering == 0  # no energy slot left open
        assert s.app.service.in_flight["demo", "bf16"] == 0
        in_flight = value(s.registry, "quanttrap_requests_in_flight", quanttrap_variant="bf16")
        assert in_flight == 0
    assert backend.streams_closed == 1  # the upstream stream was closed, not drained
    (record,) = s.records
    assert (record.status, record.error_type) == (499, "client_disconnected")
    assert sent[0]["status"] == 200 and sent[-1].get("more_body", True) is not False
