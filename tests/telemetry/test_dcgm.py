"""Reading DCGM exporter's /metrics text."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from telemetry.remote import DcgmEnergySource, parse_dcgm_metrics

SAMPLE = (Path(__file__).parent / "data" / "dcgm_metrics.txt").read_text()


def test_parse_fields_per_gpu_uuid() -> None:
    gpus = parse_dcgm_metrics(SAMPLE)
    assert set(gpus) == {
        "GPU-5fd4e1c2-3b1e-7c2a-9d0f-2a1b3c4d5e6f",
        "GPU-8a7b6c5d-4e3f-2a1b-0c9d-8e7f6a5b4c3d",
    }
    g0 = gpus["GPU-5fd4e1c2-3b1e-7c2a-9d0f-2a1b3c4d5e6f"]
    assert g0["index"] == 0 and g0["name"] == "NVIDIA H100 80GB HBM3"
    assert g0["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == 8812345678.0
    assert g0["DCGM_FI_DEV_POWER_USAGE"] == 312.45


def test_dcgm_source_reads_counter_power_and_memory() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=SAMPLE)

    src = DcgmEnergySource(
        "http://dcgm:9400/metrics", client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    assert [g.index for g in src.open()] == [0, 1]
    r = {x.uuid: x for x in src.read()}["GPU-5fd4e1c2-3b1e-7c2a-9d0f-2a1b3c4d5e6f"]
    assert r.method == "nvml_counter"
    assert r.energy_mj == 8812345678.0
    assert r.power_mw == pytest.approx(312450.0)
    assert r.memory_used_bytes == 40321 * 1024 * 1024


def test_dcgm_without_energy_field_integrates_power() -> None:
    text = "\n".join(line for line in SAMPLE.splitlines() if "ENERGY" not in line)
    now = [0.0]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=text)

    src = DcgmEnergySource(
        "http://dcgm/metrics",
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        clock=lambda: now[0],
    )
    src.open()
    first = {r.uuid: r for r in src.read()}
    now[0] = 2.0
    second = {r.uuid: r for r in src.read()}
    uuid = "GPU-8a7b6c5d-4e3f-2a1b-0c9d-8e7f6a5b4c3d"
    assert second[uuid].method == "nvml_power"
    assert second[uuid].energy_mj - first[uuid].energy_mj == pytest.approx(88.2 * 1000 * 2.0)
