"""TEST DOUBLE: a ``quanttrap nvml-agent`` whose GPUs are fake (constant power, no NVML).

The real agent code (:class:`telemetry.agent.NvmlAgent`, via ``run_nvml_agent``) serves
:class:`telemetry.fake_energy.FakeEnergySource` readings, one fake GPU per ``--power-w``
value, so a proxy configured with ``telemetry.energy.source: remote`` meters its variants as
it would on a GPU host: NVML counter method, energy apportioned to requests, power gauges.
GPUs may draw different powers, so that a test can make one variant's energy per query
clearly higher (a fake GPU draws the same power busy or idle: with overlapping requests the
energy per query would otherwise depend on concurrency more than on speed).

Run it: ``python -m tests.integration.fake_gpu_agent --port 9402 --power-w 300 900``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from telemetry.commands import run_nvml_agent
from telemetry.energy_source import GpuInfo, GpuReading
from telemetry.fake_energy import FakeEnergySource

__all__ = ["FakeGpus", "fake_uuid", "main"]


def fake_uuid(index: int) -> str:
    return f"GPU-{index:08d}-fake-0000-0000-000000000000"


class FakeGpus:
    """Several single-GPU fake sources as one :class:`~telemetry.energy_source.EnergySource`."""

    name = "fake"

    def __init__(self, powers_w: Sequence[float]) -> None:
        self._sources = [
            FakeEnergySource((fake_uuid(i),), power_w=p) for i, p in enumerate(powers_w)
        ]

    def open(self) -> Sequence[GpuInfo]:
        return tuple(
            GpuInfo(g.uuid, i, g.name) for i, s in enumerate(self._sources) for g in s.open()
        )

    def read(self) -> Sequence[GpuReading]:
        return tuple(r for s in self._sources for r in s.read())

    def close(self) -> None:
        for s in self._sources:
            s.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nvml-agent over fake GPUs (TEST DOUBLE)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--power-w", type=float, nargs="+", default=[300.0], help="per GPU")
    args = parser.parse_args(argv)
    return run_nvml_agent(FakeGpus(args.power_w), "127.0.0.1", args.port, 100.0)


if __name__ == "__main__":
    sys.exit(main())
