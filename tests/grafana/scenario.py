"""A synthetic fleet for ``promtool test rules``: counter series and the SI they should give.

Each row (variant, batch bucket) grows its counters at a constant rate per minute, so the
increase over the 15-minute window at t = 20 min is exactly 15 times the rate. The expected
values are computed from the same numbers with :func:`scoring.scorecard.score_variants` —
the in-process maths — never written down by hand; the test only applies the proxy's
sample gates (min graded, min requests, energy method preference) to decide which rows must
have no SI at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grafana.series import Label, Series
from scoring.pillars import SIConfig, VariantMeasurement
from scoring.row import ENERGY_METHOD_PREFERENCE
from scoring.scorecard import VariantScore, score_variants

__all__ = [
    "ANCHOR",
    "MEMORY_GB",
    "MODEL",
    "ROWS",
    "WINDOW_MIN",
    "Row",
    "expected",
    "input_series",
    "memory_series",
]

MODEL = "m"
ANCHOR = "bf16"
BITS = {"bf16": 16, "int8": 8, "nf4": 4}
MEMORY_GB = {"bf16": 14.0, "int8": 8.0, "nf4": 5.0}
"""What the replicas export as ``quanttrap_variant_memory_bytes`` (the larger of the two)."""
WINDOW_MIN = 15
SAMPLES = 30
"""Minutes of samples (the tests evaluate at 20 min, inside the series)."""


@dataclass(frozen=True)
class Row:
    """Per-minute growth of one (variant, bucket)'s counters."""

    variant: str
    bucket: str
    correct: float
    incorrect: float
    tokens: float
    seconds: float
    ok_requests: float
    energy: dict[str, tuple[float, float]] = field(default_factory=dict)
    """method -> (joules per minute, measured queries per minute)."""


ROWS = (
    # bucket "1": nf4 is less accurate, slower and hungrier (a full trap)
    Row("bf16", "1", 3, 1, 600, 10, 4, {"nvml_counter": (1200, 4), "hli": (1000, 4)}),
    Row("nf4", "1", 2, 2, 600, 15, 4, {"nvml_counter": (2000, 4)}),
    # int8's NVML counter is too rarely measured (7.5 < 10 in the window): HLI is compared
    Row("int8", "1", 3, 1, 600, 8, 4, {"nvml_counter": (100, 0.5), "hli": (800, 4)}),
    # bucket "4-7": nf4 has too few graded answers (15 < 20): speed only, no SI
    Row("bf16", "4-7", 10, 0, 2400, 20, 10, {"nvml_counter": (2000, 10)}),
    Row("nf4", "4-7", 1, 0, 2400, 40, 10, {"nvml_counter": (3000, 10)}),
    # int8 got everything wrong: accuracy 0 (no "correct" series at all), trust pillar 0
    Row("int8", "4-7", 0, 2, 2400, 16, 10, {"nvml_counter": (1500, 10)}),
)


def _series(name: str, labels: dict[str, str], per_minute: float) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": f"0+{per_minute!r}x{SAMPLES}"}


def input_series() -> list[dict[str, str]]:
    """The proxy's series for every row, split over two replicas and two roles where it can be."""
    out = []
    for r in ROWS:
        row = {Label.MODEL: MODEL, Label.VARIANT: r.variant, Label.BUCKET: r.bucket}
        for i, role in enumerate(("primary", "canary")):  # halves: the rules must sum them
            labels = {**row, Label.ROLE: role, "instance": f"proxy-{i}"}
            for outcome, n in (("correct", r.correct), ("incorrect", r.incorrect)):
                if n:
                    out.append(
                        _series(Series.EVAL_GRADED, {**labels, Label.OUTCOME: outcome}, n / 2)
                    )
            out.append(_series(Series.GENERATION_TOKENS, labels, r.tokens / 2))
            out.append(_series(Series.GENERATION_DURATION, labels, r.seconds / 2))
            status = {**labels, Label.STATUS_CLASS: "2xx"}
            out.append(_series(Series.REQUESTS, status, r.ok_requests / 2))
            for method, (joules, count) in r.energy.items():
                m = {**labels, Label.ENERGY_METHOD: method}
                out.append(_series(Series.REQUEST_ENERGY + "_sum", m, joules / 2))
                out.append(_series(Series.REQUEST_ENERGY + "_count", m, count / 2))
        for i in range(2):
            flag = "1" if r.variant == ANCHOR else "0"
            anchor = {**row, Label.REGIME: "anchor", "instance": f"proxy-{i}"}
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(anchor.items()))
            out.append({"series": f"{Series.REGIME}{{{inner}}}", "values": f"{flag}x{SAMPLES}"})
    out += memory_series()
    return out


def memory_series(variants: tuple[str, ...] = tuple(MEMORY_GB)) -> list[dict[str, str]]:
    """Each variant's memory gauge from two replicas that disagree (peak RSS differs per
    process): the rules must take the larger, whatever the method label says."""
    out = []
    for variant in variants:
        for i, (method, share) in enumerate((("config", 1.0), ("cpu_rss", 0.9))):
            labels = {
                Label.MODEL: MODEL,
                Label.VARIANT: variant,
                Label.MEMORY_METHOD: method,
                "instance": f"proxy-{i}",
            }
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            value = round(MEMORY_GB[variant] * share * 1e9)
            out.append(
                {"series": f"{Series.VARIANT_MEMORY}{{{inner}}}", "values": f"{value}x{SAMPLES}"}
            )
    return out


def _measurement(r: Row, energy_method: str | None) -> VariantMeasurement:
    graded = r.correct + r.incorrect
    energy = None
    if energy_method is not None:
        joules, count = r.energy[energy_method]
        energy = joules / count
    return VariantMeasurement(
        name=r.variant,
        bits=BITS[r.variant],
        tokens_per_s=r.tokens / r.seconds,
        accuracy=r.correct / graded if graded else None,
        vram_gb=MEMORY_GB[r.variant],
        energy_j_per_query=energy,
    )


def _compared_method(v: Row, a: Row, min_requests: int) -> str | None:
    """The proxy's choice: the first preferred method with enough queries on both sides."""
    for method in ENERGY_METHOD_PREFERENCE:
        if (
            method in v.energy
            and method in a.energy
            and min(v.energy[method][1], a.energy[method][1]) * WINDOW_MIN >= min_requests
        ):
            return method
    return None


@dataclass(frozen=True)
class Expected:
    row: Row
    score: VariantScore
    trust_gated: bool
    energy_method: str | None


def expected(config: SIConfig, min_graded: int, min_requests: int) -> list[Expected]:
    """What the recording rules must give for every row, from the in-process maths."""
    out = []
    for r in ROWS:
        a = next(x for x in ROWS if x.variant == ANCHOR and x.bucket == r.bucket)
        method = _compared_method(r, a, min_requests)
        card = score_variants(
            [_measurement(a, method), _measurement(r, method)]
            if r is not a
            else [_measurement(a, method)],
            anchor=ANCHOR,
            config=config,
        )
        graded_ok = min(r.correct + r.incorrect, a.correct + a.incorrect) * WINDOW_MIN >= min_graded
        out.append(Expected(r, card.score(r.variant), graded_ok, method))
    return out
