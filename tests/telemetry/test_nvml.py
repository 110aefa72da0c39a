"""NvmlEnergySource against a fake ``pynvml`` (no GPU needed)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from telemetry.energy_source import EnergySourceError
from telemetry.nvml import NvmlEnergySource


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


@dataclass
class FakeDevice:
    uuid: str
    name: str
    bus: str
    energy_mj: int | None  # None: counter not supported
    power_mw: int = 100_000
    memory: int = 2 << 30
    fail: bool = False


class FakeNvml:
    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported

    def __init__(self, devices: list[FakeDevice], *, init_fails: bool = False) -> None:
        self.devices = devices
        self.init_fails = init_fails
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_fails:
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeDevice:
        return self.devices[i]

    def nvmlDeviceGetUUID(self, d: FakeDevice) -> bytes:
        return d.uuid.encode()  # old versions return bytes

    def nvmlDeviceGetName(self, d: FakeDevice) -> str:
        return d.name

    def nvmlDeviceGetPciInfo(self, d: FakeDevice) -> Any:
        return SimpleNamespace(busId=d.bus)

    def nvmlDeviceGetTotalEnergyConsumption(self, d: FakeDevice) -> int:
        if d.fail:
            raise NVMLError("GPU is lost")
        if d.energy_mj is None:
            raise NVMLError_NotSupported("Not Supported")
        return d.energy_mj

    def nvmlDeviceGetPowerUsage(self, d: FakeDevice) -> int:
        if d.fail:
            raise NVMLError("GPU is lost")
        return d.power_mw

    def nvmlDeviceGetMemoryInfo(self, d: FakeDevice) -> Any:
        return SimpleNamespace(used=d.memory, total=80 << 30)


def devices() -> list[FakeDevice]:
    return [
        FakeDevice("GPU-1111", "NVIDIA H100", "00000000:18:00.0", energy_mj=5_000_000),
        FakeDevice("GPU-2222", "NVIDIA H100", "00000000:2A:00.0", energy_mj=None),
    ]


def test_counter_where_supported_power_integration_elsewhere() -> None:
    devs = devices()
    now = [0.0]
    src = NvmlEnergySource(environ={}, nvml=FakeNvml(devs), clock=lambda: now[0])
    gpus = src.open()
    assert [(g.uuid, g.index) for g in gpus] == [("GPU-1111", 0), ("GPU-2222", 1)]
    first = {r.uuid: r for r in src.read()}
    assert first["GPU-1111"].method == "nvml_counter"
    assert first["GPU-1111"].energy_mj == 5_000_000
    assert first["GPU-2222"].method == "nvml_power"
    assert first["GPU-2222"].memory_used_bytes == 2 << 30
    devs[0].energy_mj = 5_000_000 + 12_345
    devs[1].power_mw = 300_000
    now[0] = 2.0
    second = {r.uuid: r for r in src.read()}
    assert second["GPU-1111"].energy_mj - first["GPU-1111"].energy_mj == 12_345
    # trapezoid: (100 W + 300 W) / 2 x 2 s = 400 J
    assert second["GPU-2222"].energy_mj - first["GPU-2222"].energy_mj == pytest.approx(400_000)
    assert second["GPU-2222"].power_mw == 300_000


def test_only_cuda_visible_gpus_are_read() -> None:
    src = NvmlEnergySource(environ={"CUDA_VISIBLE_DEVICES": "1"}, nvml=FakeNvml(devices()))
    assert [(g.uuid, g.index) for g in src.open()] == [("GPU-2222", 0)]
    assert [r.uuid for r in src.read()] == ["GPU-2222"]


def test_a_failing_gpu_is_left_out_and_reported() -> None:
    devs = devices()
    errors: list[BaseException] = []
    src = NvmlEnergySource(environ={}, nvml=FakeNvml(devs), on_error=errors.append)
    src.open()
    devs[0].fail = True
    assert [r.uuid for r in src.read()] == ["GPU-2222"]
    assert len(errors) == 1 and "GPU is lost" in str(errors[0])


def test_no_driver_is_an_energy_source_error_and_close_shuts_down() -> None:
    with pytest.raises(EnergySourceError, match="NVML is not available"):
        NvmlEnergySource(environ={}, nvml=FakeNvml([], init_fails=True)).open()
    nv = FakeNvml(devices())
    src = NvmlEnergySource(environ={}, nvml=nv)
    src.open()
    src.close()
    src.close()
    assert nv.shutdowns == 1
