"""Telemetry's sub-commands of the ``quanttrap`` CLI (registered by ``quanttrap.cli``)."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from telemetry.agent import NvmlAgent
from telemetry.energy_source import EnergySource, EnergySourceError
from telemetry.nvml import NvmlEnergySource

__all__ = ["add_commands", "run_nvml_agent"]

DEFAULT_AGENT_PORT = 9402
"""Next to DCGM exporter's 9400."""


def add_commands(subparsers: Any) -> None:
    """Add ``nvml-agent`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "nvml-agent",
        help="serve this host's GPU energy counters over HTTP for a remote proxy",
        description=(
            "Serve this host's GPU energy, power and memory readings (NVML) at GET /v1/gpus, "
            "for a quanttrap proxy configured with telemetry.energy.source=remote. Respects "
            "CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    p.add_argument("--port", type=int, default=DEFAULT_AGENT_PORT, help="TCP port")
    p.add_argument(
        "--interval-ms",
        type=float,
        default=100.0,
        help="sampling period in milliseconds (NVML's counter refreshes about every 100 ms)",
    )
    p.set_defaults(handler=_nvml_agent_handler)


def _nvml_agent_handler(args: argparse.Namespace) -> int:
    return run_nvml_agent(NvmlEnergySource(), args.host, args.port, args.interval_ms)


def run_nvml_agent(source: EnergySource, host: str, port: int, interval_ms: float) -> int:
    """Serve ``source`` until SIGINT/SIGTERM; the exit code (1 when the source cannot open)."""
    if interval_ms <= 0:
        print(f"nvml-agent: --interval-ms must be > 0, got {interval_ms}", file=sys.stderr)
        return 2
    agent = NvmlAgent(source, host=host, port=port, interval_s=interval_ms / 1000.0)
    try:
        bound_host, bound_port = agent.start()
    except (EnergySourceError, OSError) as exc:
        print(f"nvml-agent: cannot start: {exc}", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(
            f"nvml-agent: serving {source.name} readings at http://{bound_host}:{bound_port}"
            "/v1/gpus",
            file=sys.stderr,
            flush=True,
        )
        while not agent.wait(1.0):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        agent.stop()
    return 0
