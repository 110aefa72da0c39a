"""The sampler thread and the energy meter's start-up choices."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from telemetry.attribution import EnergyAttributor, IntervalReport
from telemetry.energy_meter import EnergyMeter, GroupEnergy
from telemetry.energy_source import EmptyEnergySource, GpuInfo
from telemetry.errors import ErrorReporter, TelemetryConfigError
from telemetry.fake_energy import FakeEnergySource
from telemetry.sampler import EnergySampler


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_thread_samples_periodically_and_stop_resolves_finished_requests() -> None:
    source = FakeEnergySource(power_w=50.0)
    source.open()
    attributor = EnergyAttributor({"v": source.gpus})
    reports: list[IntervalReport] = []

    def on_sample(readings: object, report: IntervalReport) -> None:
        reports.append(report)

    sampler = EnergySampler(
        source, attributor, interval_s=0.01, reporter=ErrorReporter(), on_sample=on_sample
    )
    sampler.start()
    attributor.request_started("r", "v")
    wait_until(lambda: sampler.ticks >= 5)
    ticket = attributor.request_finished("r")
    sampler.stop()
    share = ticket.result()
    assert share is not None and share.energy_j is not None and share.energy_j > 0
    assert source.closed
    measured = sum(r.measured_mj for r in reports)
    booked = sum(sum(r.attributed_mj.values()) + sum(r.idle_mj.values()) for r in reports)
    assert booked == pytest.approx(measured)


def test_counters_are_updated_before_a_finished_request_resolves() -> None:
    source = FakeEnergySource(power_w=50.0)
    source.open()
    attributor = EnergyAttributor({"v": source.gpus})
    booked_mj = 0.0
    seen_at_resolve: list[float] = []

    def on_sample(readings: object, report: IntervalReport) -> None:
        nonlocal booked_mj
        booked_mj += report.attributed_mj["v"]

    sampler = EnergySampler(
        source, attributor, interval_s=3600, reporter=ErrorReporter(), on_sample=on_sample
    )
    sampler.tick()
    attributor.request_started("r", "v")
    time.sleep(0.02)
    ticket = attributor.request_finished("r")
    ticket.add_done_callback(lambda share: seen_at_resolve.append(booked_mj))
    sampler.tick()
    share = ticket.result()
    assert share is not None and share.energy_j is not None and share.energy_j > 0
    assert seen_at_resolve == [pytest.approx(share.energy_j * 1000)]


def test_read_failures_are_counted_and_the_thread_keeps_going() -> None:
    counted: list[str] = []
    source = FakeEnergySource()
    source.open()
    source.fail_reads = 3
    sampler = EnergySampler(
        source,
        EnergyAttributor({"v": source.gpus}),
        interval_s=0.005,
        reporter=ErrorReporter(counted.append),
    )
    sampler.start()
    wait_until(lambda: sampler.ticks >= 6)
    sampler.stop()
    assert counted == ["energy_source"] * 3


def test_meter_places_variants_and_picks_methods() -> None:
    source = FakeEnergySource(gpus=("GPU-aaaa", "GPU-bbbb"))
    meter = EnergyMeter(
        source,
        {
            "engine": GroupEnergy("all"),
            "tp": GroupEnergy((1,)),
            "remote-hli": GroupEnergy((), rated_power_w=300.0),
            "nothing": GroupEnergy(),
        },
        interval_s=0.01,
        reporter=ErrorReporter(),
    )
    meter.open()
    assert meter.gpu_uuids("engine") == ("GPU-aaaa", "GPU-bbbb")
    assert meter.gpu_uuids("tp") == ("GPU-bbbb",)
    assert [meter.method(g) for g in ("engine", "tp", "remote-hli", "nothing")] == [
        "nvml_counter",
        "nvml_counter",
        "hli",
        "none",
    ]
    meter.stop()


def test_meter_rejects_a_gpu_the_source_does_not_have() -> None:
    meter = EnergyMeter(
        FakeEnergySource(gpus=("GPU-aaaa",)),
        {"v": GroupEnergy((3,))},
        interval_s=0.01,
        reporter=ErrorReporter(),
    )
    with pytest.raises(TelemetryConfigError, match="variant 'v'"):
        meter.open()


def test_meter_without_gpus_falls_back_to_hli_or_none() -> None:
    meter = EnergyMeter(
        EmptyEnergySource(),
        {"a": GroupEnergy("all", rated_power_w=200.0), "b": GroupEnergy("all")},
        interval_s=0.01,
        reporter=ErrorReporter(),
    )
    meter.open()
    meter.start()
    assert meter.sampler is None
    assert (meter.method("a"), meter.method("b")) == ("hli", "none")
    meter.request_started("x", "a")
    share = meter.request_finished("x", "a", duration_s=2.0, batch_size=2).result()
    assert share is not None and (share.energy_j, share.method) == (200.0, "hli")


class Unopenable(FakeEnergySource):
    def open(self) -> Sequence[GpuInfo]:
        from telemetry.energy_source import EnergySourceError

        raise EnergySourceError("no driver")


def test_required_source_that_cannot_open_fails_start_up() -> None:
    groups = {"v": GroupEnergy("all", rated_power_w=100.0)}
    meter = EnergyMeter(
        Unopenable(), groups, interval_s=0.01, reporter=ErrorReporter(), required=True
    )
    with pytest.raises(TelemetryConfigError, match="no driver"):
        meter.open()
    optional = EnergyMeter(Unopenable(), groups, interval_s=0.01, reporter=ErrorReporter())
    optional.open()
    assert optional.method("v") == "hli"
