"""NVML on a real GPU (``-m gpu``; skipped where NVML finds no GPU, never run in CI)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from telemetry import NvmlEnergySource, Telemetry, TelemetryConfig, VariantSpec
from telemetry.agent import NvmlAgent
from telemetry.energy_source import EnergySourceError
from telemetry.remote import RemoteEnergySource
from tests.telemetry.helpers import record, start

pytestmark = pytest.mark.gpu


@pytest.fixture
def nvml() -> NvmlEnergySource:
    src = NvmlEnergySource()
    try:
        gpus = src.open()
    except EnergySourceError as exc:
        pytest.skip(f"no NVML: {exc}")
    if not gpus:
        pytest.skip("NVML sees no GPU")
    return src


def _burn(seconds: float) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()


def test_counter_grows_with_work_and_matches_power(nvml: NvmlEnergySource) -> None:
    first = {r.uuid: r for r in nvml.read()}
    t0 = time.monotonic()
    powers: list[float] = []
    deadline = t0 + 2.0
    while time.monotonic() < deadline:
        _burn(0.2)
        powers.extend(r.power_mw for r in nvml.read() if r.power_mw is not None)
    elapsed = time.monotonic() - t0
    last = {r.uuid: r for r in nvml.read()}
    uuid = next(iter(first))
    delta_j = (last[uuid].energy_mj - first[uuid].energy_mj) / 1000.0
    mean_w = sum(powers) / len(powers) / 1000.0
    print(f"{uuid}: {first[uuid].method}, {delta_j:.1f} J in {elapsed:.2f} s, mean {mean_w:.0f} W")
    assert first[uuid].method == "nvml_counter"
    assert delta_j > 0
    # The counter and the mean of the power samples agree to within 35 %.
    assert delta_j == pytest.approx(mean_w * elapsed, rel=0.35)
    nvml.close()


def test_read_cost_is_milliseconds(nvml: NvmlEnergySource) -> None:
    n = 50
    t0 = time.perf_counter()
    for _ in range(n):
        nvml.read()
    per_read_ms = (time.perf_counter() - t0) / n * 1000
    print(f"NVML read of {len(nvml.read())} GPU(s): {per_read_ms:.2f} ms")
    assert per_read_ms < 50
    nvml.close()


async def test_end_to_end_request_energy_on_the_gpu(nvml: NvmlEnergySource) -> None:
    nvml.close()
    cfg = TelemetryConfig.model_validate({"energy": {"source": "nvml"}})
    tel = Telemetry.create(cfg, [VariantSpec("m", "fp16", 16, gpus="all")], environ={})
    await tel.start()
    h = start(tel, model="m", variant="fp16")
    for _ in range(10):
        await asyncio.to_thread(_burn, 0.1)
        h.tokens(1)
    done = await h.finish(record(duration_s=1.0))
    await tel.aclose()
    print(f"request energy {done.energy_j} J ({done.energy_method})")
    assert done.energy_method == "nvml_counter"
    assert done.energy_j is not None and done.energy_j > 10.0


def test_agent_serves_real_readings(nvml: NvmlEnergySource) -> None:
    agent = NvmlAgent(nvml, port=0, interval_s=0.05)
    host, port = agent.start()
    try:
        remote = RemoteEnergySource(f"http://{host}:{port}")
        gpus = remote.open()
        readings = remote.read()
        assert [g.uuid for g in gpus] == [r.uuid for r in readings]
        assert all(r.energy_mj > 0 and r.method == "nvml_counter" for r in readings)
        assert httpx.get(f"http://{host}:{port}/healthz").text == "ok"
        remote.close()
    finally:
        agent.stop()
