"""The Prometheus names of the series the rules and dashboards read, derived in one place.

The proxy's instrument names and attribute keys live in :mod:`telemetry.semconv` and
:mod:`telemetry.scoring_metrics`; the OpenTelemetry Prometheus exporter turns them into
Prometheus names (dots become underscores, the unit is appended, counters end in
``_total``). This module applies that mapping to those constants, so a rename there is a
rename here, and the recording rules' own output names are defined next to them.
``tests/integration/test_prometheus.py`` checks every name against a real scrape.
"""

from __future__ import annotations

from typing import Final

from telemetry.scoring_metrics import ScoringKey, ScoringMetric
from telemetry.semconv import Key, Metric

__all__ = ["Label", "Record", "Series", "label"]

_UNIT_SUFFIX: Final = {"s": "_seconds", "J": "_joules", "W": "_watts", "By": "_bytes"}


def label(key: str) -> str:
    """The Prometheus label of an attribute key (``quanttrap.variant`` → ``quanttrap_variant``)."""
    return key.replace(".", "_")


def _name(instrument: str, unit: str = "", *, counter: bool = False) -> str:
    base = instrument.replace(".", "_") + _UNIT_SUFFIX.get(unit, "")
    return base + "_total" if counter else base


class Label:
    """Label names."""

    MODEL: Final = label(Key.REQUEST_MODEL)
    VARIANT: Final = label(Key.VARIANT)
    BUCKET: Final = label(Key.BATCH_SIZE_BUCKET)
    ROLE: Final = label(Key.ROLE)
    STATUS_CLASS: Final = label(Key.STATUS_CLASS)
    ERROR_TYPE: Final = label(Key.ERROR_TYPE)
    ENERGY_METHOD: Final = label(Key.ENERGY_METHOD)
    GPU_UUID: Final = label(Key.GPU_UUID)
    TOKEN_TYPE: Final = label(Key.TOKEN_TYPE)
    FAILOVER_FROM: Final = label(Key.FAILOVER_FROM)
    FAILOVER_TO: Final = label(Key.FAILOVER_TO)
    SHADOW_OUTCOME: Final = label(Key.SHADOW_OUTCOME)
    PILLAR: Final = label(ScoringKey.PILLAR)
    BOUNDED: Final = label(ScoringKey.BOUNDED)
    REGIME: Final = label(ScoringKey.REGIME)
    SAMPLES: Final = label(ScoringKey.SAMPLES)
    OUTCOME: Final = label(ScoringKey.OUTCOME)
    PRIMARY: Final = label(ScoringKey.PRIMARY)
    AGREEMENT: Final = label(ScoringKey.AGREEMENT)
    CANARY_OUTCOME: Final = label(ScoringKey.CANARY_OUTCOME)
    MEMORY_METHOD: Final = label(ScoringKey.MEMORY_METHOD)
    DEPTH_BUCKET: Final = label(ScoringKey.DEPTH_BUCKET)
    QUESTION: Final = label(ScoringKey.QUESTION)
    SHADOW_VERDICT: Final = label(ScoringKey.VERDICT)
    HOP_BUCKET: Final = label(ScoringKey.HOP_BUCKET)


class Series:
    """Series the proxy exports (see docs/telemetry.md "Metrics")."""

    REQUEST_DURATION: Final = _name(Metric.REQUEST_DURATION, "s")
    TIME_TO_FIRST_TOKEN: Final = _name(Metric.TIME_TO_FIRST_TOKEN, "s")
    TIME_PER_OUTPUT_TOKEN: Final = _name(Metric.TIME_PER_OUTPUT_TOKEN, "s")
    TOKEN_USAGE: Final = _name(Metric.TOKEN_USAGE)
    REQUESTS: Final = _name(Metric.REQUESTS, counter=True)
    IN_FLIGHT: Final = _name(Metric.IN_FLIGHT)
    FAILOVERS: Final = _name(Metric.FAILOVERS, counter=True)
    SHADOW_COPIES: Final = _name(Metric.SHADOW_COPIES, counter=True)
    REQUEST_ENERGY: Final = _name(Metric.REQUEST_ENERGY, "J")
    HOPS_ATOMIC: Final = _name(Metric.HOPS_ATOMIC)
    HOPS_LOGICAL: Final = _name(Metric.HOPS_LOGICAL)
    HOPS_REFERENCE: Final = _name(Metric.HOPS_REFERENCE)
    HOPS_AGENT: Final = _name(Metric.HOPS_AGENT)
    ENERGY_ATTRIBUTED: Final = _name(Metric.ENERGY_ATTRIBUTED, "J", counter=True)
    ENERGY_IDLE: Final = _name(Metric.ENERGY_IDLE, "J", counter=True)
    ENERGY_METHOD_INFO: Final = _name(Metric.ENERGY_METHOD_INFO)
    GPU_POWER: Final = _name(Metric.GPU_POWER, "W")
    GPU_MEMORY_USED: Final = _name(Metric.GPU_MEMORY_USED, "By")
    TELEMETRY_ERRORS: Final = _name(Metric.TELEMETRY_ERRORS, counter=True)
    # live scoring (telemetry/scoring_metrics.py)
    SI: Final = _name(ScoringMetric.SI)
    SI_LOW: Final = _name(ScoringMetric.SI_LOW)
    SI_HIGH: Final = _name(ScoringMetric.SI_HIGH)
    PILLAR: Final = _name(ScoringMetric.PILLAR)
    COR: Final = _name(ScoringMetric.COR)
    ACCURACY: Final = _name(ScoringMetric.ACCURACY)
    ACCURACY_LOW: Final = _name(ScoringMetric.ACCURACY_LOW)
    ACCURACY_HIGH: Final = _name(ScoringMetric.ACCURACY_HIGH)
    REGIME: Final = _name(ScoringMetric.REGIME)
    TRAP: Final = _name(ScoringMetric.TRAP)
    VERDICT: Final = _name(ScoringMetric.VERDICT)
    WINDOW_SAMPLES: Final = _name(ScoringMetric.WINDOW_SAMPLES)
    SHADOW_AGREEMENT: Final = _name(ScoringMetric.SHADOW_AGREEMENT)
    SHADOW_HOP_TREND: Final = _name(ScoringMetric.SHADOW_HOP_TREND)
    VARIANT_MEMORY: Final = _name(ScoringMetric.VARIANT_MEMORY, "By")
    EVAL_GRADED: Final = _name(ScoringMetric.EVAL_GRADED, counter=True)
    GENERATION_TOKENS: Final = _name(ScoringMetric.GENERATION_TOKENS, counter=True)
    GENERATION_DURATION: Final = _name(ScoringMetric.GENERATION_DURATION, "s", counter=True)
    SHADOW_COMPARISONS: Final = _name(ScoringMetric.SHADOW_COMPARISONS, counter=True)
    CANARY_PROBES: Final = _name(ScoringMetric.CANARY_PROBES, counter=True)


class Record:
    """What the recording rules write (``level:metric:operation``, fleet-wide, per window)."""

    GRADED: Final = "quanttrap:eval_graded:increase"
    CORRECT: Final = "quanttrap:eval_correct:increase"
    ACCURACY: Final = "quanttrap:accuracy"
    TOKENS_PER_SECOND: Final = "quanttrap:generation_tokens_per_second"
    REQUESTS_OK: Final = "quanttrap:requests_ok:increase"
    ENERGY_QUERIES: Final = "quanttrap:energy_queries:increase"
    ENERGY_PER_QUERY: Final = "quanttrap:energy_per_query_joules"
    ENERGY_COMPARED: Final = "quanttrap:energy_per_query_joules:compared"
    ANCHOR: Final = "quanttrap:anchor"
    MEMORY: Final = "quanttrap:memory_gigabytes"
    ANCHOR_MEMORY: Final = "quanttrap:anchor_memory_gigabytes"
    PILLAR: Final = "quanttrap:pillar"
    SI: Final = "quanttrap:si"
    SI_RAW: Final = "quanttrap:si_raw"
    COR: Final = "quanttrap:cor"
    ACCURACY_DIFFERENCE: Final = "quanttrap:accuracy_difference"
    SHADOW_COMPARED: Final = "quanttrap:shadow_compared:increase"
    SHADOW_DISAGREEMENT: Final = "quanttrap:shadow_disagreement:ratio"
    SHADOW_COMPARED_BY_HOP: Final = "quanttrap:shadow_compared_by_hop:increase"
    SHADOW_DISAGREEMENT_BY_HOP: Final = "quanttrap:shadow_disagreement_by_hop:ratio"

    @staticmethod
    def anchor(record: str) -> str:
        """The anchor's value of ``record``, broadcast onto each variant's row."""
        return record.replace("quanttrap:", "quanttrap:anchor_", 1)
