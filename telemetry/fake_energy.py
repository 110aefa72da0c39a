"""A test double for :class:`telemetry.energy_source.EnergySource`.

Its GPUs draw a constant power on a clock the test controls, plus any energy the test adds,
so expected energy figures can be computed exactly. It also serves the benchmark (sampler
CPU cost without a GPU) and the nvml-agent tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from telemetry.energy_source import EnergySourceError, GpuInfo, GpuReading, MeasuredMethod

__all__ = ["FakeEnergySource"]


class FakeEnergySource:
    """Fake GPUs: ``energy_mj = power_w x 1000 x (clock() - opened_at) + added``."""

    name = "fake"

    def __init__(
        self,
        gpus: Sequence[str] = ("GPU-00000000-fake-0000-0000-000000000000",),
        *,
        power_w: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        method: MeasuredMethod = "nvml_counter",
        memory_used_bytes: int = 1 << 30,
    ) -> None:
        self.gpus = tuple(gpus)
        self.power_w = power_w
        self.method: MeasuredMethod = method
        self.memory_used_bytes = memory_used_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._added = dict.fromkeys(self.gpus, 0.0)
        self._opened_at: float | None = None
        self.fail_reads = 0
        """The next ``fail_reads`` reads raise :class:`EnergySourceError`."""
        self.missing: set[str] = set()
        """GPUs left out of reads (as a source does for a GPU it failed to read)."""
        self.reads = 0
        self.closed = False

    def open(self) -> Sequence[GpuInfo]:
        self._opened_at = self._clock()
        return tuple(GpuInfo(uuid, i, "Fake GPU") for i, uuid in enumerate(self.gpus))

    def add_energy(self, uuid: str, mj: float) -> None:
        """Make ``uuid``'s counter jump by ``mj`` millijoules (may be negative: a reset)."""
        with self._lock:
            self._added[uuid] += mj

    def read(self) -> Sequence[GpuReading]:
        if self._opened_at is None:
            raise EnergySourceError("read() before open()")
        with self._lock:
            self.reads += 1
            if self.fail_reads > 0:
                self.fail_reads -= 1
                raise EnergySourceError("fake read failure")
            now = self._clock()
            elapsed = now - self._opened_at
            return tuple(
                GpuReading(
                    uuid=uuid,
                    energy_mj=self.power_w * 1000.0 * elapsed + self._added[uuid],
                    power_mw=self.power_w * 1000.0,
                    memory_used_bytes=self.memory_used_bytes,
                    method=self.method,
                    timestamp_s=time.time(),
                )
                for uuid in self.gpus
                if uuid not in self.missing
            )

    def close(self) -> None:
        self.closed = True
