"""The energy sampler: a background thread that reads the source at a fixed period.

Reads block for milliseconds, so they never run on the event loop. Each tick reads every
GPU once, closes the attribution interval (:meth:`EnergyAttributor.sample`) and hands the
readings and the interval's bookings to ``on_sample`` (which updates the gauges and
counters) before the finished requests' shares resolve, so the counters never lag a
record. A failed read is counted and logged by the :class:`ErrorReporter`; the thread keeps
going. The schedule is fixed-rate: a slow read delays one tick, not all later ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from telemetry.attribution import EnergyAttributor, IntervalReport
from telemetry.energy_source import EnergySource, GpuReading
from telemetry.errors import ErrorReporter

__all__ = ["EnergySampler"]

OnSample = Callable[[Sequence[GpuReading], IntervalReport], None]


class EnergySampler:
    """Runs ``source`` -> ``attributor`` every ``interval_s`` on its own daemon thread."""

    def __init__(
        self,
        source: EnergySource,
        attributor: EnergyAttributor,
        *,
        interval_s: float,
        reporter: ErrorReporter,
        on_sample: OnSample | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._source = source
        self._attributor = attributor
        self._interval = interval_s
        self._reporter = reporter
        self._on_sample = on_sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick_lock = threading.Lock()
        self.ticks = 0
        self.thread_cpu_s = 0.0
        """CPU time the sampler thread has used (``time.thread_time``), for the benchmark."""
        self.latest: Sequence[GpuReading] = ()

    def tick(self) -> None:
        """Take one sample now (the thread does this; start-up and shutdown call it too)."""
        with self._tick_lock:
            try:
                readings = self._source.read()
            except Exception as exc:
                self._reporter.report("energy_source", exc)
                readings = ()
            on_sample = self._on_sample
            try:
                self._attributor.sample(
                    readings,
                    None if on_sample is None else lambda report: on_sample(readings, report),
                )
                self.latest = readings
                self.ticks += 1
            except Exception as exc:
                self._reporter.report("sampler", exc)

    def start(self) -> None:
        """Take the baseline sample and start the thread (call from a worker thread)."""
        if self._thread is not None:
            return
        self.tick()
        self._thread = threading.Thread(
            target=self._run, name="quanttrap-energy-sampler", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_t = time.monotonic() + self._interval
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            self.tick()
            self.thread_cpu_s = time.thread_time() - cpu0
            next_t += self._interval
            now = time.monotonic()
            if next_t < now:  # fell behind (a very slow read): skip, do not burst
                next_t = now + self._interval

    def stop(self) -> None:
        """Stop the thread, take a last sample (resolving finished requests), close all."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 10 * self._interval))
            self._thread = None
            self.tick()
        self._attributor.close()
        try:
            self._source.close()
        except Exception as exc:
            self._reporter.report("energy_source", exc)
