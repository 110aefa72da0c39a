"""The one GPU a bench runs on, through NVML: its energy counter, clocks and power limit.

Energy comes from :class:`telemetry.nvml.NvmlEnergySource` (the proxy's own meter: the board's
cumulative energy counter, or power integrated over reads where the counter is missing, with
the method named). Clocks, power limit, temperature and power are read with ``pynvml`` directly
for the record of each window. On a machine without NVML, or on CPU, :class:`GpuMeter` says why
energy is unavailable instead of reporting zeros.
"""

from __future__ import annotations

from typing import Any

from bench.records import GpuState
from telemetry.energy_source import EnergySourceError
from telemetry.nvml import NvmlEnergySource

__all__ = ["GpuMeter"]


class GpuMeter:
    """Energy and state of the GPU with NVML UUID ``uuid``; unavailable when ``uuid`` is None."""

    def __init__(self, uuid: str | None) -> None:
        self.uuid = uuid
        self.method = "none"
        self.reason = "" if uuid is not None else "no GPU (the engine runs on CPU)"
        self.name: str | None = None
        self._source: NvmlEnergySource | None = None
        self._handle: Any = None
        self._nvml: Any = None
        if uuid is None:
            return
        source = NvmlEnergySource()
        try:
            gpus = source.open()
        except EnergySourceError as exc:
            self.reason = f"NVML unavailable: {exc}"
            return
        if not any(g.uuid == uuid for g in gpus):
            source.close()
            self.reason = f"NVML does not list the engine's GPU {uuid}"
            return
        reading = next((r for r in source.read() if r.uuid == uuid), None)
        if reading is None:
            source.close()
            self.reason = f"NVML could not read GPU {uuid}"
            return
        self._source, self.method = source, reading.method
        try:
            import pynvml

            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
            self.name = _text(pynvml.nvmlDeviceGetName(self._handle))
        except Exception:  # the state is a record, not a measurement: absent, not fatal
            self._handle = None

    @property
    def available(self) -> bool:
        return self._source is not None

    def energy_j(self) -> float | None:
        """Cumulative energy of the GPU in joules (origin fixed while open), or ``None``."""
        if self._source is None:
            return None
        reading = next((r for r in self._source.read() if r.uuid == self.uuid), None)
        return None if reading is None else reading.energy_mj / 1000.0

    def state(self) -> GpuState | None:
        """Clocks (MHz), power limit (W), temperature (C), power (W); ``None`` without NVML."""
        if self._handle is None:
            return None
        nv, h = self._nvml, self._handle
        return GpuState(
            sm_clock_mhz=_try(lambda: int(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
            memory_clock_mhz=_try(lambda: int(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM))),
            power_limit_w=_try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
            default_power_limit_w=_try(
                lambda: nv.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000.0
            ),
            temperature_c=_try(
                lambda: int(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
            ),
            power_w=_try(lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
        )

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
            self._handle = None


def _try(read: Any) -> Any:
    try:
        return read()
    except Exception:  # one unsupported query (e.g. clocks on a vGPU) leaves that field None
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
