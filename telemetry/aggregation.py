"""Hot-path instruments: aggregated in process, handed to the OpenTelemetry export at scrape.

Why not the SDK's own instruments for these: measured on the project's machines, one
``Histogram.record`` of the OpenTelemetry Python SDK 1.45 costs about 9 µs with seven
attributes (it cleans, copies and hashes the attribute dict on every call), and a request
records ten or so values, which alone would exceed the 50 µs per-request budget
(``benchmarks/telemetry_overhead.py``). Here a series is looked up by a tuple of label values
computed once per request, and a record is a dict lookup and a bisect under a lock
(about 0.5 µs).

The aggregates leave as OpenTelemetry data points (:class:`HistogramDataPoint`,
:class:`NumberDataPoint`), merged by :class:`MergingPrometheusReader` into what the SDK
collected, so the Prometheus exporter names, suffixes and formats them exactly as it does
its own instruments, and the bucket boundaries are the explicit ones from
:mod:`telemetry.semconv`. Temporality is cumulative, as Prometheus expects.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Sequence
from time import time_ns
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from telemetry.labels import OTHER
from telemetry.semconv import HistogramSpec

__all__ = [
    "HotCounter",
    "HotHistogram",
    "HotMetrics",
    "MergingPrometheusReader",
]

_MAX_SERIES = 2000
"""Per instrument. Labels are bounded by design; past this, values land in one series whose
labels are all ``other`` rather than growing memory without bound."""

Labels = tuple[str, ...]


class _HistogramSeries:
    __slots__ = ("count", "counts", "max", "min", "start_ns", "sum")

    def __init__(self, buckets: int, start_ns: int) -> None:
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.start_ns = start_ns


class _Instrument:
    def __init__(
        self, name: str, unit: str, description: str, label_keys: Sequence[str], lock: Any
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.label_keys = tuple(label_keys)
        self._lock = lock
        self._overflow: Labels = (OTHER,) * len(self.label_keys)

    def _attributes(self, labels: Labels) -> dict[str, str]:
        # Empty values mean "attribute absent" (e.g. error.type on success).
        return {k: v for k, v in zip(self.label_keys, labels, strict=True) if v}


class HotHistogram(_Instrument):
    """A histogram with explicit boundaries; ``record`` is safe from any thread."""

    def __init__(self, spec: HistogramSpec, label_keys: Sequence[str], lock: Any) -> None:
        super().__init__(spec.name, spec.unit, spec.description, label_keys, lock)
        self.boundaries = spec.boundaries
        self._series: dict[Labels, _HistogramSeries] = {}

    def record(self, value: float, labels: Labels) -> None:
        """Add one observation; negative and non-finite values are ignored."""
        with self._lock:
            self._apply(value, labels)

    def _apply(self, value: float, labels: Labels) -> None:  # with the lock held
        if not (value >= 0.0 and value != math.inf):
            return
        series = self._series.get(labels)
        if series is None:
            if len(self._series) >= _MAX_SERIES:
                labels = self._overflow
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _HistogramSeries(
                    len(self.boundaries) + 1, time_ns()
                )
        series.counts[bisect_left(self.boundaries, value)] += 1
        series.count += 1
        series.sum += value
        if value < series.min:
            series.min = value
        if value > series.max:
            series.max = value

    def _metric(self, now_ns: int) -> Metric:
        points = [
            HistogramDataPoint(
                attributes=self._attributes(labels),
                start_time_unix_nano=s.start_ns,
                time_unix_nano=now_ns,
                count=s.count,
                sum=s.sum,
                bucket_counts=list(s.counts),
                explicit_bounds=list(self.boundaries),
                min=s.min,
                max=s.max,
            )
            for labels, s in self._series.items()
        ]
        data = Histogram(
            data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE
        )
        return Metric(name=self.name, description=self.description, unit=self.unit, data=data)


class HotCounter(_Instrument):
    """A sum: monotonic (a Prometheus counter) or not (a Prometheus gauge, e.g. in-flight)."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        label_keys: Sequence[str],
        lock: Any,
        *,
        monotonic: bool = True,
    ) -> None:
        super().__init__(name, unit, description, label_keys, lock)
        self.monotonic = monotonic
        self._values: dict[Labels, list[float]] = {}  # [value, start_ns]

    def add(self, amount: float, labels: Labels) -> None:
        with self._lock:
            self._apply(amount, labels)

    def _apply(self, amount: float, labels: Labels) -> None:  # with the lock held
        if self.monotonic and not amount >= 0.0:
            return
        cell = self._values.get(labels)
        if cell is None:
            if len(self._values) >= _MAX_SERIES:
                labels = self._overflow
            cell = self._values.get(labels)
            if cell is None:
                cell = self._values[labels] = [0.0, float(time_ns())]
        cell[0] += amount

    def value(self, labels: Labels) -> float:
        with self._lock:
            cell = self._values.get(labels)
            return 0.0 if cell is None else cell[0]

    def _metric(self, now_ns: int) -> Metric:
        points = [
            NumberDataPoint(
                attributes=self._attributes(labels),
                start_time_unix_nano=int(cell[1]),
                time_unix_nano=now_ns,
                value=cell[0],
            )
            for labels, cell in self._values.items()
        ]
        data = Sum(
            data_points=points,
            aggregation_temporality=AggregationTemporality.CUMULATIVE,
            is_monotonic=self.monotonic,
        )
        return Metric(name=self.name, description=self.description, unit=self.unit, data=data)


class HotMetrics:
    """The set of hot-path instruments; one lock for all (each critical section is tiny)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instruments: list[HotHistogram | HotCounter] = []

    def histogram(self, spec: HistogramSpec, label_keys: Sequence[str]) -> HotHistogram:
        h = HotHistogram(spec, label_keys, self._lock)
        self._instruments.append(h)
        return h

    def counter(
        self,
        name: str,
        unit: str,
        description: str,
        label_keys: Sequence[str],
        *,
        monotonic: bool = True,
    ) -> HotCounter:
        c = HotCounter(name, unit, description, label_keys, self._lock, monotonic=monotonic)
        self._instruments.append(c)
        return c

    def record_all(
        self, measurements: Sequence[tuple[HotHistogram | HotCounter, float, Labels]]
    ) -> None:
        """Record several measurements under one lock acquisition (a request's finish)."""
        with self._lock:
            for instrument, value, labels in measurements:
                instrument._apply(value, labels)

    def collect(self, now_ns: int | None = None) -> list[Metric]:
        """A cumulative snapshot of every instrument that has at least one series."""
        now_ns = time_ns() if now_ns is None else now_ns
        with self._lock:
            return [
                inst._metric(now_ns)
                for inst in self._instruments
                if (inst._series if isinstance(inst, HotHistogram) else inst._values)
            ]


class MergingPrometheusReader(PrometheusMetricReader):
    """A :class:`PrometheusMetricReader` that also exports a :class:`HotMetrics` set.

    At each scrape the SDK's collection is extended with the hot instruments' data points,
    under the same instrumentation scope, before the exporter translates it. (This is what
    the specification calls a MetricProducer; the Python exporter has no hook for one.)
    """

    def __init__(
        self,
        hot: HotMetrics,
        scope: InstrumentationScope,
        resource: Resource,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._hot = hot
        self._scope = scope
        self._resource = resource

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        extra = ScopeMetrics(
            scope=self._scope,
            metrics=self._hot.collect(),
            schema_url=self._scope.schema_url or "",
        )
        resource_metrics = list(metrics_data.resource_metrics) if metrics_data else []
        if resource_metrics:
            first = resource_metrics[0]
            resource_metrics[0] = ResourceMetrics(
                resource=first.resource,
                scope_metrics=[*first.scope_metrics, extra],
                schema_url=first.schema_url,
            )
        else:
            resource_metrics = [
                ResourceMetrics(resource=self._resource, scope_metrics=[extra], schema_url="")
            ]
        super()._receive_metrics(
            MetricsData(resource_metrics=resource_metrics), timeout_millis, **kwargs
        )
