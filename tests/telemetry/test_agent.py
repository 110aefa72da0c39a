"""The nvml-agent served over HTTP and read back by RemoteEnergySource."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence

import httpx
import pytest

from telemetry.agent import NvmlAgent
from telemetry.commands import add_commands
from telemetry.energy_source import EnergySourceError, GpuInfo
from telemetry.fake_energy import FakeEnergySource
from telemetry.remote import RemoteEnergySource


@pytest.fixture
def agent() -> Iterator[tuple[NvmlAgent, str, FakeEnergySource]]:
    now = [0.0]
    source = FakeEnergySource(gpus=("GPU-1", "GPU-2"), power_w=120.0, clock=lambda: now[0])
    a = NvmlAgent(source, host="127.0.0.1", port=0, interval_s=0.01)
    host, port = a.start()
    now[0] = 10.0
    yield a, f"http://{host}:{port}", source
    a.stop()


def test_agent_serves_the_documented_json(agent: tuple[NvmlAgent, str, FakeEnergySource]) -> None:
    _, url, _ = agent
    rows = httpx.get(url + "/v1/gpus").json()
    assert [r["uuid"] for r in rows] == ["GPU-1", "GPU-2"]
    assert set(rows[0]) == {
        "uuid",
        "index",
        "name",
        "energy_mj",
        "power_mw",
        "memory_used_bytes",
        "method",
        "timestamp",
    }
    assert rows[1]["index"] == 1 and rows[0]["method"] == "nvml_counter"
    assert httpx.get(url + "/healthz").text == "ok"
    assert httpx.get(url + "/nope").status_code == 404


def test_remote_source_reads_the_agent(agent: tuple[NvmlAgent, str, FakeEnergySource]) -> None:
    a, url, source = agent
    remote = RemoteEnergySource(url)
    assert [(g.uuid, g.index) for g in remote.open()] == [("GPU-1", 0), ("GPU-2", 1)]
    source.add_energy("GPU-2", 777.0)
    a._sample()
    readings = {r.uuid: r for r in remote.read()}
    assert readings["GPU-1"].energy_mj == pytest.approx(120.0 * 1000 * 10.0)
    assert readings["GPU-2"].energy_mj == pytest.approx(120.0 * 1000 * 10.0 + 777.0)
    assert readings["GPU-2"].power_mw == 120_000
    remote.close()


def test_remote_source_errors_are_energy_source_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps([{"uuid": "x"}]))

    remote = RemoteEnergySource(
        "http://agent", client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    with pytest.raises(EnergySourceError, match="malformed"):
        remote.read()
    down = RemoteEnergySource("http://127.0.0.1:9", timeout_s=0.2)
    with pytest.raises(EnergySourceError, match="GET"):
        down.open()


def test_cli_registers_nvml_agent_with_a_handler() -> None:
    parser = argparse.ArgumentParser(prog="quanttrap")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["nvml-agent", "--host", "0.0.0.0", "--port", "9500", "--interval-ms", "50"]
    )
    assert (args.host, args.port, args.interval_ms) == ("0.0.0.0", 9500, 50.0)
    assert callable(args.handler)


def test_run_nvml_agent_serves_until_sigterm() -> None:
    import os
    import signal
    import threading

    from telemetry.commands import run_nvml_agent

    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert run_nvml_agent(FakeEnergySource(), "127.0.0.1", 0, 50.0) == 0
    finally:
        timer.cancel()


def test_run_nvml_agent_without_a_source_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    from telemetry.commands import run_nvml_agent

    class NoGpu(FakeEnergySource):
        def open(self) -> Sequence[GpuInfo]:
            raise EnergySourceError("NVML is not available: Driver Not Loaded")

    assert run_nvml_agent(NoGpu(), "127.0.0.1", 0, 100.0) == 1
    assert "Driver Not Loaded" in capsys.readouterr().err
