"""The live-scoring metrics: names, attribute keys and the instruments, in one place.

Gauges are OpenTelemetry *observable* gauges read from the latest
:class:`~scoring.snapshot.LiveSnapshot` at scrape time (the snapshot is recomputed every few
seconds off the request path; a scrape only walks it). Counters are added to when the live
runtime ingests a batch of finished requests, so that Prometheus can recompute accuracy, TPS
and SI fleet-wide across replicas (recording rules read them).

Prometheus names (the OpenTelemetry exporter turns dots into underscores, appends the unit
and ``_total`` for counters):

============================================  ================================================
``quanttrap_si`` / ``_low`` / ``_high``        bounded SI and its interval, per bucket
``quanttrap_pillar``                           pillar value; ``quanttrap_pillar_name``:
                                               trust | economic | energy;
                                               ``quanttrap_pillar_bounded``: true | false
``quanttrap_cor``                              casting overhead ratio
``quanttrap_accuracy`` / ``_low`` / ``_high``  graded accuracy (Wilson interval)
``quanttrap_regime``                           one-hot: 1 for the current (latched) regime label
``quanttrap_trap``                             1 while the significant, latched trap flag is on
``quanttrap_verdict``                          1/0: the anytime-valid answer to one regime
                                               question, ``quanttrap_verdict_question``:
                                               less_accurate | slower | more_energy (no sample
                                               while unanswered)
``quanttrap_window_samples``                   samples in the window, ``quanttrap_samples_kind``
``quanttrap_shadow_agreement``                 shadow answer agreement rate
``quanttrap_shadow_hop_trend``                 1/0: shadow disagreement is higher after the
                                               first agent hop than at it (anytime-valid, per
                                               epoch; no sample while unanswered)
``quanttrap_variant_memory_bytes``             the residency the economic pillar uses, per
                                               variant, ``quanttrap_memory_method``: config |
                                               weights | cuda_peak | cpu_rss | peak (no
                                               sample while unknown)
``quanttrap_eval_graded_total``                graded evaluations, ``quanttrap_eval_outcome``,
                                               ``quanttrap_depth_bucket`` (reasoning depth:
                                               0 | 1-2 | 3-4 | 5-6 | 7+ | unknown)
``quanttrap_generation_tokens_total``          generated tokens counted in TPS
``quanttrap_generation_duration_seconds_total`` generation seconds counted in TPS
``quanttrap_shadow_comparisons_total``         shadow comparisons, ``quanttrap_shadow_agreement``
                                               (agree | disagree | unknown),
                                               ``quanttrap_shadow_verdict`` (agree |
                                               text_disagree | unknown | wrong_tool |
                                               wrong_arguments | missing_call | extra_call |
                                               text_instead_of_call | call_instead_of_text),
                                               ``quanttrap_agent_hop_bucket`` (the
                                               primary's hop: 0 | 1 | 2 | 3-4 | 5-8 | 9-16 |
                                               17+)
``quanttrap_canary_probes_total``              canary probes, ``quanttrap_canary_outcome``
============================================  ================================================

Model, variant, role and batch-size bucket use the same keys as every other quanttrap series
(:class:`telemetry.semconv.Key`). Every label value is bounded: models and variants come from
the config, buckets, roles, datasets and outcomes from fixed sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter
from opentelemetry.metrics import Observation as Point

from core.buckets import hop_position_bucket
from scoring.comparison import verdict_label
from scoring.hops import depth_bucket
from scoring.snapshot import BucketRow, LiveSnapshot
from telemetry.semconv import Key

__all__ = ["REGIME_LABELS", "ScoringKey", "ScoringMetric", "ScoringMetrics"]

REGIME_LABELS: Final = (
    "anchor",
    "full_trap",
    "efficiency_trap",
    "accuracy_trap",
    "no_trap",
    "undetermined",
)


class ScoringMetric:
    """Instrument names."""

    SI: Final = "quanttrap.si"
    SI_LOW: Final = "quanttrap.si.low"
    SI_HIGH: Final = "quanttrap.si.high"
    PILLAR: Final = "quanttrap.pillar"
    COR: Final = "quanttrap.cor"
    ACCURACY: Final = "quanttrap.accuracy"
    ACCURACY_LOW: Final = "quanttrap.accuracy.low"
    ACCURACY_HIGH: Final = "quanttrap.accuracy.high"
    REGIME: Final = "quanttrap.regime"
    TRAP: Final = "quanttrap.trap"
    VERDICT: Final = "quanttrap.verdict"
    WINDOW_SAMPLES: Final = "quanttrap.window.samples"
    VARIANT_MEMORY: Final = "quanttrap.variant.memory"
    SHADOW_AGREEMENT: Final = "quanttrap.shadow.agreement"
    SHADOW_HOP_TREND: Final = "quanttrap.shadow.hop_trend"
    EVAL_GRADED: Final = "quanttrap.eval.graded"
    GENERATION_TOKENS: Final = "quanttrap.generation.tokens"
    GENERATION_DURATION: Final = "quanttrap.generation.duration"
    SHADOW_COMPARISONS: Final = "quanttrap.shadow.comparisons"
    CANARY_PROBES: Final = "quanttrap.canary.probes"


class ScoringKey:
    """Attribute keys of the scoring series (besides :class:`telemetry.semconv.Key`'s)."""

    PILLAR: Final = "quanttrap.pillar.name"
    BOUNDED: Final = "quanttrap.pillar.bounded"
    REGIME: Final = "quanttrap.regime.name"
    SAMPLES: Final = "quanttrap.samples.kind"
    DATASET: Final = "quanttrap.dataset"
    OUTCOME: Final = "quanttrap.eval.outcome"
    PRIMARY: Final = "quanttrap.primary.variant"
    AGREEMENT: Final = "quanttrap.shadow.agreement"
    CANARY_OUTCOME: Final = "quanttrap.canary.outcome"
    MEMORY_METHOD: Final = "quanttrap.memory.method"
    DEPTH_BUCKET: Final = "quanttrap.depth.bucket"
    QUESTION: Final = "quanttrap.verdict.question"
    VERDICT: Final = "quanttrap.shadow.verdict"
    """What a shadow comparison found (:data:`scoring.comparison.VERDICT_LABELS`)."""
    HOP_BUCKET: Final = "quanttrap.agent.hop_bucket"
    """The primary's agent-hop position bucket (:data:`core.buckets.HOP_POSITION_BUCKETS`):
    the same key as the request metrics' hop bucket, so the two join in PromQL."""


SnapshotSource = Callable[[], LiveSnapshot | None]
_Rows = Iterator[tuple[dict[str, str], BucketRow]]


class ScoringMetrics:
    """Creates every scoring instrument on ``meter``; gauges read ``snapshot()`` at scrape."""

    def __init__(self, meter: Meter, snapshot: SnapshotSource) -> None:
        self._snapshot = snapshot
        gauges: list[tuple[str, str, str, Callable[[], Iterable[Point]]]] = [
            (ScoringMetric.SI, "1", "Sustainability Index (bounded pillars) vs the anchor.",
             self._si(lambda r: r.si.estimate if r.si else None)),
            (ScoringMetric.SI_LOW, "1", "Lower end of the SI's confidence interval.",
             self._si(lambda r: r.si.low if r.si else None)),
            (ScoringMetric.SI_HIGH, "1", "Upper end of the SI's confidence interval.",
             self._si(lambda r: r.si.high if r.si else None)),
            (ScoringMetric.PILLAR, "1", "SI pillars, raw and bounded to [0, 1].", self._pillars),
            (ScoringMetric.COR, "1", "Casting overhead ratio TPS_anchor / TPS_variant - 1.",
             self._si(lambda r: r.cor.estimate if r.cor else None)),
            (ScoringMetric.ACCURACY, "1", "Accuracy on graded evaluation traffic.",
             self._si(lambda r: r.accuracy.estimate if r.accuracy else None)),
            (ScoringMetric.ACCURACY_LOW, "1", "Lower end of the accuracy's Wilson interval.",
             self._si(lambda r: r.accuracy.low if r.accuracy else None)),
            (ScoringMetric.ACCURACY_HIGH, "1", "Upper end of the accuracy's Wilson interval.",
             self._si(lambda r: r.accuracy.high if r.accuracy else None)),
            (ScoringMetric.REGIME, "1", "1 for the variant's current regime, 0 for the others.",
             self._regimes),
            (ScoringMetric.TRAP, "1", "1 while a significant quantization trap is flagged.",
             self._si(lambda r: 1.0 if r.trap else 0.0)),
            (ScoringMetric.VERDICT, "1", "1 when the regime question is answered yes by the "
             "anytime-valid verdict (beyond its margin), 0 when no.", self._verdicts),
            (ScoringMetric.WINDOW_SAMPLES, "{sample}", "Samples in the live window by kind.",
             self._samples),
            (ScoringMetric.SHADOW_AGREEMENT, "1", "Share of shadow answers equal to the "
             "primary's final answer.", self._agreement),
            (ScoringMetric.SHADOW_HOP_TREND, "1", "1 when shadow disagreement is higher "
             "after the first agent hop than at it (anytime-valid, since the epoch), 0 when "
             "not shown.", self._hop_trend),
            (ScoringMetric.VARIANT_MEMORY, "By", "Memory residency the economic pillar "
             "compares (declared, engine weights or engine peak; see quanttrap.memory.method).",
             self._memory),
        ]  # fmt: skip
        for name, unit, description, read in gauges:
            meter.create_observable_gauge(
                name, callbacks=[_callback(read)], unit=unit, description=description
            )
        self._graded = meter.create_counter(
            ScoringMetric.EVAL_GRADED, unit="{evaluation}", description="Graded evaluations."
        )
        self._gen_tokens = meter.create_counter(
            ScoringMetric.GENERATION_TOKENS,
            unit="{token}",
            description="Generated tokens counted in TPS (after the first token for streams).",
        )
        self._gen_seconds = meter.create_counter(
            ScoringMetric.GENERATION_DURATION,
            unit="s",
            description="Generation time counted in TPS (after the first token for streams).",
        )
        self._comparisons = meter.create_counter(
            ScoringMetric.SHADOW_COMPARISONS,
            unit="{comparison}",
            description="Shadow answer comparisons: outcome, what differed (text or tool "
            "calls) and the primary's agent-hop position bucket.",
        )
        self._canary = meter.create_counter(
            ScoringMetric.CANARY_PROBES,
            unit="{probe}",
            description="Canary probes: sent, failed, skipped_busy, skipped_in_flight.",
        )

    # -- counters (called by the live runtime's worker, never on the request path) -----------

    def graded(
        self,
        model: str,
        variant: str,
        role: str,
        dataset: str,
        bucket: str,
        correct: bool,
        depth: int | None = None,
    ) -> None:
        """One graded evaluation; ``depth`` is the reference's reasoning depth if known."""
        self._graded.add(
            1,
            {
                Key.REQUEST_MODEL: model,
                Key.VARIANT: variant,
                Key.ROLE: role,
                ScoringKey.DATASET: dataset,
                Key.BATCH_SIZE_BUCKET: bucket,
                ScoringKey.OUTCOME: "correct" if correct else "incorrect",
                ScoringKey.DEPTH_BUCKET: depth_bucket(depth),
            },
        )

    def generation(
        self, model: str, variant: str, role: str, bucket: str, tokens: int, seconds: float
    ) -> None:
        labels = {
            Key.REQUEST_MODEL: model,
            Key.VARIANT: variant,
            Key.ROLE: role,
            Key.BATCH_SIZE_BUCKET: bucket,
        }
        self._gen_tokens.add(tokens, labels)
        self._gen_seconds.add(seconds, labels)

    def comparison(
        self,
        model: str,
        primary: str,
        shadow: str,
        agree: bool | None,
        *,
        reason: str | None = None,
        agent_hop: int = 0,
    ) -> None:
        """One shadow comparison: its outcome, what differed (``reason`` of
        :class:`~scoring.comparison.PairComparison`, as a bounded label) and the primary's
        agent-hop position (bucketed)."""
        outcome = "unknown" if agree is None else ("agree" if agree else "disagree")
        self._comparisons.add(
            1,
            {
                Key.REQUEST_MODEL: model,
                ScoringKey.PRIMARY: primary,
                Key.VARIANT: shadow,
                ScoringKey.AGREEMENT: outcome,
                ScoringKey.VERDICT: verdict_label(reason, agree),
                ScoringKey.HOP_BUCKET: hop_position_bucket(agent_hop),
            },
        )

    def canary(self, model: str, variant: str, outcome: str) -> None:
        self._canary.add(
            1, {Key.REQUEST_MODEL: model, Key.VARIANT: variant, ScoringKey.CANARY_OUTCOME: outcome}
        )

    # -- gauge readers -----------------------------------------------------------------------

    def _rows(self) -> _Rows:
        snap = self._snapshot()
        if snap is None:
            return
        for model in snap.models:
            for v in model.variants:
                for row in v.buckets:
                    labels = {
                        Key.REQUEST_MODEL: model.model,
                        Key.VARIANT: v.variant,
                        Key.BATCH_SIZE_BUCKET: row.bucket,
                    }
                    yield labels, row

    def _si(self, value: Callable[[BucketRow], float | None]) -> Callable[[], Iterable[Point]]:
        def read() -> Iterator[Point]:
            for labels, row in self._rows():
                x = value(row)
                if x is not None:  # not measured: no sample at all, never a zero
                    yield Point(x, labels)

        return read

    def _verdicts(self) -> Iterator[Point]:
        for labels, row in self._rows():
            for question, answer in zip(
                ("less_accurate", "slower", "more_energy"), row.significant, strict=True
            ):
                if answer is not None and row.regime_now != "anchor":
                    yield Point(1.0 if answer else 0.0, {**labels, ScoringKey.QUESTION: question})

    def _pillars(self) -> Iterator[Point]:
        for labels, row in self._rows():
            for name, view in (
                ("trust", row.trust),
                ("economic", row.economic),
                ("energy", row.energy_pillar),
            ):
                if view.raw is not None:
                    yield Point(
                        view.raw.estimate,
                        {**labels, ScoringKey.PILLAR: name, ScoringKey.BOUNDED: "false"},
                    )
                if view.bounded is not None:
                    yield Point(
                        view.bounded,
                        {**labels, ScoringKey.PILLAR: name, ScoringKey.BOUNDED: "true"},
                    )

    def _regimes(self) -> Iterator[Point]:
        for labels, row in self._rows():
            for regime in REGIME_LABELS:
                yield Point(
                    1.0 if row.regime == regime else 0.0, {**labels, ScoringKey.REGIME: regime}
                )

    def _samples(self) -> Iterator[Point]:
        for labels, row in self._rows():
            for kind, n in (
                ("requests", row.requests),
                ("graded", row.graded),
                ("speed", row.speed_samples),
                ("energy", row.energy.samples),
            ):
                yield Point(n, {**labels, ScoringKey.SAMPLES: kind})

    def _memory(self) -> Iterator[Point]:
        snap = self._snapshot()
        if snap is None:
            return
        for model in snap.models:
            for v in model.variants:
                if v.memory_gb is None:  # unknown: no sample, never a zero
                    continue
                yield Point(
                    round(v.memory_gb * 1e9),
                    {
                        Key.REQUEST_MODEL: model.model,
                        Key.VARIANT: v.variant,
                        ScoringKey.MEMORY_METHOD: v.memory_source,
                    },
                )

    def _agreement(self) -> Iterator[Point]:
        snap = self._snapshot()
        if snap is None:
            return
        for model in snap.models:
            for a in model.agreement:
                if a.rate is not None:
                    yield Point(
                        a.rate.estimate,
                        {
                            Key.REQUEST_MODEL: model.model,
                            ScoringKey.PRIMARY: a.primary,
                            Key.VARIANT: a.shadow,
                        },
                    )

    def _hop_trend(self) -> Iterator[Point]:
        snap = self._snapshot()
        if snap is None:
            return
        for model in snap.models:
            for a in model.agreement:
                if a.trend is not None and a.trend.grows is not None:  # unanswered: no sample
                    yield Point(
                        1.0 if a.trend.grows else 0.0,
                        {
                            Key.REQUEST_MODEL: model.model,
                            ScoringKey.PRIMARY: a.primary,
                            Key.VARIANT: a.shadow,
                        },
                    )


def _callback(read: Callable[[], Iterable[Point]]) -> Callable[[CallbackOptions], Iterable[Point]]:
    def callback(options: CallbackOptions) -> Iterable[Point]:
        return list(read())

    return callback
