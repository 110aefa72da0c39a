"""The live scorer: regimes from windows, like-for-like buckets, energy methods, pairing, B*."""

from __future__ import annotations

import random

import pytest

from scoring.config import ScoringConfig
from scoring.live import LiveScorer, MemoryInfo, ModelSpec
from scoring.snapshot import BucketRow, LiveHistory, LiveSnapshot, VariantStatus
from scoring.windows import Observation

NOW = 10_000.0
SPEC = ModelSpec("m", "bf16", (("bf16", 16), ("nf4", 4), ("int8", 8)))
MEMORY = {
    ("m", "bf16"): MemoryInfo(14.0, "declared"),
    ("m", "nf4"): MemoryInfo(4.5, "declared"),
    ("m", "int8"): MemoryInfo(8.0, "declared"),
}


def _scorer(**changes: object) -> LiveScorer:
    return LiveScorer(ScoringConfig.model_validate(changes), [SPEC])


def _feed(
    scorer: LiveScorer,
    profiles: dict[str, tuple[float, float, float | None]],
    *,
    n: int = 200,
    bucket: str = "1",
    method: str = "nvml_counter",
    seed: int = 1,
    at: float = NOW - 100,
) -> None:
    """``profiles``: variant -> (accuracy, tokens/s, J/query or None)."""
    rng = random.Random(seed)
    for i in range(n):
        u = rng.random()  # the same prompt difficulty for every variant: paired verdicts
        for variant, (acc, tps, joules) in profiles.items():
            scorer.ingest(
                Observation(
                    at=at + i * 0.1,
                    model="m",
                    variant=variant,
                    role="canary",
                    bucket=bucket,
                    ok=True,
                    gen_tokens=40,
                    gen_s=40 / (tps * rng.uniform(0.9, 1.1)),
                    completion_tokens=41,
                    energy_j=None if joules is None else joules * rng.uniform(0.9, 1.1),
                    energy_method=method if joules is not None else "none",
                    dataset="multihop",
                    correct=u < acc,
                    pair_key=f"round-{bucket}-{i}",
                ),
                NOW,
            )


def _evaluate(scorer: LiveScorer, times: int = 3) -> LiveSnapshot:
    snap = None
    for k in range(times):  # the latch needs a few evaluations
        snap = scorer.evaluate(NOW + k, MEMORY)
    assert snap is not None
    return snap


def _variant(snap: LiveSnapshot, name: str) -> VariantStatus:
    return next(v for v in snap.models[0].variants if v.variant == name)


def _row(snap: LiveSnapshot, name: str, bucket: str = "1") -> BucketRow:
    return next(r for r in _variant(snap, name).buckets if r.bucket == bucket)


def test_full_trap_and_no_trap_with_intervals() -> None:
    scorer = _scorer()
    _feed(scorer, {"bf16": (0.9, 50, 100), "nf4": (0.6, 30, 160), "int8": (0.9, 70, 80)})
    snap = _evaluate(scorer)
    nf4, int8, anchor = _row(snap, "nf4"), _row(snap, "int8"), _row(snap, "bf16")
    assert (anchor.regime, anchor.si and anchor.si.estimate) == ("anchor", 1.0)
    assert nf4.regime == "full_trap" and nf4.trap and _variant(snap, "nf4").trap
    assert nf4.significant == (True, True, True)
    assert int8.regime == "no_trap" and not int8.trap
    # Point estimates sit inside their intervals, and match the definitions.
    for interval in (nf4.si, nf4.cor, nf4.accuracy, nf4.tokens_per_s, nf4.trust.raw):
        assert interval is not None and interval.low <= interval.estimate <= interval.high
    assert nf4.cor is not None and nf4.cor.estimate == pytest.approx(50 / 30 - 1, rel=0.05)
    assert nf4.energy_pillar.raw is not None
    assert nf4.energy_pillar.raw.estimate == pytest.approx(100 / 160, rel=0.05)
    assert int8.economic.bounded == 1.0 and int8.economic.raw is not None
    assert int8.economic.raw.estimate > 1.0  # raw pillars show by how much it beats the anchor
    assert nf4.si is not None and int8.si is not None and nf4.si.high < int8.si.low
    assert nf4.pairs[1] > nf4.pairs[2]  # anchor right only, more often than the reverse
    assert nf4.paired is not None and nf4.paired.p_value < 0.05


def test_without_energy_the_regime_is_decided_by_accuracy_and_speed() -> None:
    scorer = _scorer()
    _feed(scorer, {"bf16": (0.9, 50, None), "nf4": (0.6, 30, None), "int8": (0.9, 70, None)})
    snap = _evaluate(scorer)
    nf4, int8 = _row(snap, "nf4"), _row(snap, "int8")
    assert (nf4.regime, int8.regime) == ("full_trap", "no_trap")
    assert not nf4.energy.available and nf4.energy.method == "none"
    assert nf4.energy.j_per_query is None  # unavailable, never a zero
    assert nf4.si is None and nf4.energy_pillar.raw is None
    assert any("energy: unavailable" in m for m in nf4.missing)


def test_energy_methods_are_never_mixed() -> None:
    scorer = _scorer()
    _feed(scorer, {"bf16": (0.9, 50, 100)}, method="nvml_counter")
    _feed(scorer, {"nf4": (0.9, 50, 300)}, method="hli")
    snap = _evaluate(scorer)
    nf4 = _row(snap, "nf4")
    assert nf4.energy_pillar.raw is None and nf4.significant[2] is None
    assert nf4.regime == "undetermined"  # energy measured, but not comparably
    assert any("different methods" in m for m in nf4.missing)


def test_comparisons_stay_within_one_batch_bucket() -> None:
    scorer = _scorer()
    _feed(scorer, {"bf16": (0.9, 50, 100)}, bucket="4-7")
    _feed(scorer, {"nf4": (0.5, 10, 400)}, bucket="1")
    snap = _evaluate(scorer)
    nf4 = _row(snap, "nf4", "1")
    assert nf4.cor is None and nf4.trust.raw is None and nf4.si is None
    assert nf4.regime == "undetermined" and not nf4.trap
    assert any("anchor 0" in m for m in nf4.missing)


def test_too_few_samples_leave_the_regime_undetermined() -> None:
    scorer = _scorer()
    _feed(scorer, {"bf16": (0.9, 50, 100), "nf4": (0.1, 10, 400)}, n=5)
    nf4 = _row(_evaluate(scorer), "nf4")
    assert nf4.regime == "undetermined" and not nf4.trap
    assert nf4.accuracy is not None  # the variant's own accuracy is still shown


def _healthy(scorer: LiveScorer, at: float, n: int = 200, seed: int = 4) -> None:
    rng = random.Random(seed)
    for i in range(n):
        for variant in ("bf16", "nf4"):
            scorer.ingest(
                Observation(
                    at + i * 0.1, "m", variant, "primary", "1", True,
                    gen_tokens=40, gen_s=40 / (50 * rng.uniform(0.9, 1.1)),
                    completion_tokens=41, energy_j=100 * rng.uniform(0.9, 1.1),
                    energy_method="nvml_counter", dataset="gsm8k", correct=rng.random() < 0.9,
                ),
                at + n * 0.1,
            )  # fmt: skip


def test_a_trap_stays_flagged_through_its_epoch_and_is_held_one_epoch_more() -> None:
    # Verdicts rest on the epoch's evidence, not the window's: the window forgetting the
    # trap does not clear it; a new epoch holds it until it confirms or excludes it.
    scorer = _scorer(window_s=60, slot_s=10, recompute_interval_s=1, trap={"epoch_s": 100})
    _feed(scorer, {"bf16": (0.9, 50, 100), "nf4": (0.6, 30, 160)}, n=200, at=NOW - 30)
    row = _row(_evaluate(scorer), "nf4")
    assert row.trap and row.regime == "full_trap" and row.verdicts is not None
    assert row.verdicts.since == NOW and not row.verdicts.carried
    _healthy(scorer, NOW + 40)  # the window (60 s) no longer holds the trap evidence ...
    assert _row(scorer.evaluate(NOW + 70, MEMORY), "nf4").trap  # ... the epoch does
    # A new epoch (NOW + 150): healthy evidence excludes "slower" and "more energy" at once;
    # "less accurate" (200 graded) can be neither confirmed nor excluded, so it is held.
    _healthy(scorer, NOW + 150, seed=5)
    held = [_row(scorer.evaluate(NOW + 170 + k, MEMORY), "nf4") for k in range(4)]
    assert all(r.trap for r in held)
    last = held[-1].verdicts
    assert last is not None and last.carried == ("less_accurate",) and last.since == NOW + 170
    assert last.slower is False and last.more_energy is False
    assert held[-1].regime == "accuracy_trap"
    # The epoch after: the hold lapses, and the flag goes off after K = 3 evaluations.
    _healthy(scorer, NOW + 280, seed=6)
    flags = [_row(scorer.evaluate(NOW + 300 + k, MEMORY), "nf4").trap for k in range(4)]
    assert flags == [True, True, False, False]


def test_canary_rounds_pair_verdicts_across_variants() -> None:
    scorer = _scorer()
    base = {"at": NOW, "model": "m", "role": "canary", "bucket": "1", "ok": True}
    for key, anchor_ok, variant_ok in (("a", True, False), ("b", True, True), ("c", False, True)):
        # arrival order varies: the variant may finish before the anchor
        scorer.ingest(Observation(**base, variant="nf4", correct=variant_ok, pair_key=key), NOW)  # type: ignore[arg-type]
        scorer.ingest(Observation(**base, variant="bf16", correct=anchor_ok, pair_key=key), NOW)  # type: ignore[arg-type]
    scorer.ingest(Observation(**base, variant="nf4", correct=False, pair_key="lonely"), NOW)  # type: ignore[arg-type]
    row = _row(scorer.evaluate(NOW, MEMORY), "nf4")
    assert row.pairs == (1, 1, 1, 0)


def test_b_star_is_located_across_buckets() -> None:
    scorer = _scorer()
    # The quantized variant costs more energy per query at batch 1, less from batch 4 on.
    for bucket, (anchor_j, nf4_j) in {"1": (100, 150), "2-3": (60, 70), "4-7": (40, 30)}.items():
        _feed(scorer, {"bf16": (0.9, 50, anchor_j), "nf4": (0.9, 45, nf4_j)}, bucket=bucket, n=40)
    nf4 = _variant(_evaluate(scorer), "nf4")
    assert nf4.b_star is not None and nf4.b_star.b_star is not None
    assert 2 < nf4.b_star.b_star < 4
    assert nf4.b_star.measured_sizes == (1, 2, 4)


def test_history_is_bounded_and_sampled() -> None:
    scorer = _scorer()
    _feed(scorer, {"bf16": (0.9, 50, 100), "nf4": (0.6, 30, 160)})
    history = LiveHistory(points=5, interval_s=10.0)
    recorded = [history.maybe_record(scorer.evaluate(NOW + t, MEMORY)) for t in range(0, 100, 5)]
    assert recorded.count(True) == 10
    series = history.series["m", "nf4"]
    assert len(series) == 5 and series[-1].si is not None
    assert series[-1].energy_method == "nvml_counter"


def test_unknown_variants_are_ignored_not_labelled() -> None:
    scorer = _scorer()
    scorer.ingest(Observation(NOW, "m", "fp8", "primary", "1", True), NOW)
    scorer.ingest(Observation(NOW, "other", "bf16", "primary", "1", True), NOW)
    assert scorer.counters["ignored"] == 2
    assert all(not v.buckets for v in scorer.evaluate(NOW).models[0].variants)
