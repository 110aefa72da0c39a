"""Local GPUs through NVML (``nvidia-ml-py``, imported as ``pynvml``).

Energy comes from ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver
loaded; Volta and newer). Where a GPU does not support it (``NVMLError_NotSupported``), its
power (``nvmlDeviceGetPowerUsage``, milliwatts) is integrated over the reads with the
trapezoid rule, and the readings say ``nvml_power``. Reading the energy counter costs about
3.4 ms of CPU on a virtualised H100 (power and memory: 0.02 ms), so only the sampler thread
calls :meth:`read`; ctypes releases the GIL during the call, so it does not stall the event
loop.

Only the GPUs this process's CUDA sees are read (see :mod:`telemetry.gpu_visibility`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from telemetry.energy_source import EnergySourceError, GpuInfo, GpuReading, MeasuredMethod
from telemetry.gpu_visibility import AmbiguousGpuOrder, PhysicalGpu, visible_gpus

__all__ = ["NvmlEnergySource"]

_log = logging.getLogger("quanttrap.telemetry")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class _Gpu:
    info: GpuInfo
    handle: Any
    method: MeasuredMethod
    energy_mj: float = 0.0  # integrated, for nvml_power
    last_t: float | None = None
    last_p_mw: float | None = None


class NvmlEnergySource:
    """The visible local GPUs. ``nvml`` and ``environ`` are injectable for tests."""

    name = "nvml"

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        nvml: Any = None,
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._nvml = nvml
        self._on_error = on_error
        self._clock = clock
        self._gpus: list[_Gpu] = []
        self._lock = threading.Lock()
        self._initialised = False

    def open(self) -> Sequence[GpuInfo]:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
                raise EnergySourceError(f"nvidia-ml-py is not installed: {exc}") from None
            self._nvml = pynvml
        nv = self._nvml
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            raise EnergySourceError(f"NVML is not available: {exc}") from None
        self._initialised = True
        try:
            physical = []
            handles = {}
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                uuid = _text(nv.nvmlDeviceGetUUID(h))
                handles[uuid] = h
                physical.append(
                    PhysicalGpu(
                        nvml_index=i,
                        uuid=uuid,
                        name=_text(nv.nvmlDeviceGetName(h)),
                        pci_bus_id=_text(nv.nvmlDeviceGetPciInfo(h).busId),
                    )
                )
            try:
                visible = visible_gpus(
                    physical,
                    self._environ.get("CUDA_VISIBLE_DEVICES"),
                    self._environ.get("CUDA_DEVICE_ORDER"),
                )
            except AmbiguousGpuOrder as exc:
                raise EnergySourceError(str(exc)) from None
            if len({g.name for g in visible}) > 1 and (
                self._environ.get("CUDA_DEVICE_ORDER", "").upper() != "PCI_BUS_ID"
            ):
                _log.warning(
                    "GPUs of different models without CUDA_DEVICE_ORDER=PCI_BUS_ID: CUDA "
                    "indices may not match the order assumed here; refer to GPUs by UUID"
                )
            self._gpus = []
            for cuda_index, g in enumerate(visible):
                method = self._probe(handles[g.uuid])
                if method is None:
                    _log.warning("GPU %s (%s) reports neither energy nor power", g.uuid, g.name)
                    continue
                info = GpuInfo(uuid=g.uuid, index=cuda_index, name=g.name)
                self._gpus.append(_Gpu(info=info, handle=handles[g.uuid], method=method))
        except nv.NVMLError as exc:
            self.close()
            raise EnergySourceError(f"NVML failed while listing GPUs: {exc}") from None
        return tuple(g.info for g in self._gpus)

    def _probe(self, handle: Any) -> MeasuredMethod | None:
        nv = self._nvml
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(handle)
            return "nvml_counter"
        except nv.NVMLError_NotSupported:
            pass
        try:
            nv.nvmlDeviceGetPowerUsage(handle)
            return "nvml_power"
        except nv.NVMLError_NotSupported:
            return None

    def read(self) -> Sequence[GpuReading]:
        with self._lock:
            return tuple(r for r in (self._read_one(g) for g in self._gpus) if r is not None)

    def _read_one(self, gpu: _Gpu) -> GpuReading | None:
        nv = self._nvml
        try:
            power_mw = float(nv.nvmlDeviceGetPowerUsage(gpu.handle))
            if gpu.method == "nvml_counter":
                energy_mj = float(nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
            else:
                energy_mj = self._integrate(gpu, power_mw)
            memory = int(nv.nvmlDeviceGetMemoryInfo(gpu.handle).used)
        except nv.NVMLError as exc:
            self._report(exc)
            return None
        return GpuReading(
            uuid=gpu.info.uuid,
            energy_mj=energy_mj,
            power_mw=power_mw,
            memory_used_bytes=memory,
            method=gpu.method,
            timestamp_s=time.time(),
        )

    def _integrate(self, gpu: _Gpu, power_mw: float) -> float:
        now = self._clock()
        if gpu.last_t is not None and gpu.last_p_mw is not None:
            gpu.energy_mj += (gpu.last_p_mw + power_mw) / 2.0 * (now - gpu.last_t)
        gpu.last_t, gpu.last_p_mw = now, power_mw
        return gpu.energy_mj

    def _report(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(exc)

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            self._gpus = []
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:  # shutting down: report, do not raise
                self._report(exc)
