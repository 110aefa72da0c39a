"""Where GPU energy readings come from: a small protocol and its empty implementation.

Implementations: :class:`telemetry.nvml.NvmlEnergySource` (local GPUs),
:class:`telemetry.remote.RemoteEnergySource` (a ``quanttrap nvml-agent`` on the GPU host),
:class:`telemetry.remote.DcgmEnergySource` (NVIDIA's DCGM exporter),
:class:`EmptyEnergySource` (no GPU) and :class:`telemetry.fake_energy.FakeEnergySource` (the
test double). All calls block (an NVML read takes milliseconds): only the sampler thread and
start-up code (in a worker thread) call them, never the event loop.

Readings are *cumulative* energy per GPU: attribution works on differences between two
reads, so the origin does not matter, only that it stays fixed while the source is open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

__all__ = [
    "ENERGY_METHODS",
    "EmptyEnergySource",
    "EnergyMethod",
    "EnergySource",
    "EnergySourceError",
    "GpuInfo",
    "GpuReading",
    "MeasuredMethod",
]

EnergyMethod = Literal["nvml_counter", "nvml_power", "hli", "none"]
"""How an energy figure was obtained: NVML's energy counter, NVML power integrated over time
(trapezoid), the paper's hardware-latency integration (rated power x latency / batch size),
or not at all."""
MeasuredMethod = Literal["nvml_counter", "nvml_power"]
ENERGY_METHODS: Final[tuple[EnergyMethod, ...]] = ("nvml_counter", "nvml_power", "hli", "none")


class EnergySourceError(Exception):
    """A source could not be opened or read."""


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One GPU a source reads. ``index`` is its CUDA index as the serving process sees it
    (after ``CUDA_VISIBLE_DEVICES``), which is what a variant's config refers to."""

    uuid: str
    index: int
    name: str


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One read of one GPU.

    ``energy_mj`` is cumulative energy in millijoules since an origin fixed for the life of
    the source; ``power_mw`` the instantaneous board power in milliwatts and
    ``memory_used_bytes`` the device memory in use, each ``None`` if unavailable;
    ``timestamp_s`` the Unix time of the read.
    """

    uuid: str
    energy_mj: float
    power_mw: float | None
    memory_used_bytes: int | None
    method: MeasuredMethod
    timestamp_s: float


@runtime_checkable
class EnergySource(Protocol):
    """A blocking source of cumulative per-GPU energy readings."""

    name: str

    def open(self) -> Sequence[GpuInfo]:
        """Connect and list the GPUs (raises :class:`EnergySourceError`)."""
        ...

    def read(self) -> Sequence[GpuReading]:
        """One reading per GPU that could be read now; a GPU that failed is left out."""
        ...

    def close(self) -> None: ...


class EmptyEnergySource:
    """No GPU: nothing to read. Energy is then ``hli`` or ``none``, never a silent zero."""

    name = "none"

    def open(self) -> Sequence[GpuInfo]:
        return ()

    def read(self) -> Sequence[GpuReading]:
        return ()

    def close(self) -> None:
        return None
