"""B* from batch-stratified energy, and N* as a formula and as a (circular) fit."""

from __future__ import annotations

import math

import pytest

from core.records import RequestRecord
from scoring.thresholds import (
    BatchEnergy,
    ScaleObservation,
    critical_batch_threshold,
    critical_model_scale,
    fit_critical_model_scale,
    stratify_energy,
)


def _curve(anchor: list[float], variant: list[float], sizes: list[int]) -> list[BatchEnergy]:
    return [BatchEnergy(b, a, v) for b, a, v in zip(sizes, anchor, variant, strict=True)]


def test_b_star_interpolates_in_log_batch_size() -> None:
    # d = variant - anchor = 60, 20, -4, -10 at B = 1, 2, 4, 8: crossing between 2 and 4,
    # t = 20 / 24, so B* = 2 ** (1 + 20/24).
    pts = _curve([100, 60, 40, 30], [160, 80, 36, 20], [1, 2, 4, 8])
    result = critical_batch_threshold(reversed(pts))  # order of input does not matter
    assert result.b_star == pytest.approx(2 ** (1 + 20 / 24))
    assert result.stays_below and not result.below_at_all_sizes
    assert result.measured_sizes == (1, 2, 4, 8)


def test_b_star_at_a_measured_size_when_the_difference_is_zero_there() -> None:
    pts = _curve([100, 60, 40], [160, 60, 30], [1, 2, 4])  # d = 60, 0, -10
    assert critical_batch_threshold(pts).b_star == pytest.approx(2.0)


def test_never_below_gives_none() -> None:
    pts = _curve([100, 60, 40], [160, 80, 41], [1, 4, 16])
    result = critical_batch_threshold(pts)
    assert result.b_star is None and not result.below_at_all_sizes


def test_below_at_every_size_is_flagged_not_located() -> None:
    pts = _curve([100, 60], [90, 50], [1, 2])
    result = critical_batch_threshold(pts)
    assert result.b_star is None and result.below_at_all_sizes and result.stays_below


def test_recrossing_is_reported() -> None:
    pts = _curve([100, 60, 40], [160, 50, 45], [1, 2, 4])  # below at 2, above again at 4
    result = critical_batch_threshold(pts)
    assert result.b_star is not None and 1 < result.b_star < 2
    assert not result.stays_below


def test_token_basis_removes_the_answer_length_confound() -> None:
    # Per query the variant looks worse at B = 2 because it writes twice as many tokens.
    pts = [
        BatchEnergy(1, 100, 160, anchor_j_per_token=1.0, variant_j_per_token=0.8),
        BatchEnergy(2, 60, 80, anchor_j_per_token=0.6, variant_j_per_token=0.4),
    ]
    assert critical_batch_threshold(pts).b_star is None
    assert critical_batch_threshold(pts, basis="token").below_at_all_sizes
    with pytest.raises(ValueError, match="per token not measured"):
        critical_batch_threshold([BatchEnergy(1, 1.0, 2.0)], basis="token")


def test_b_star_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        critical_batch_threshold([])
    with pytest.raises(ValueError):
        critical_batch_threshold(_curve([1, 2], [1, 2], [4, 4]))


def _record(variant: str, batch: int | None, joules: float | None, **kw: object) -> RequestRecord:
    base: dict[str, object] = {
        "request_id": f"{variant}-{batch}-{joules}",
        "model": "m",
        "variant": variant,
        "bits": 16 if variant == "fp16" else 4,
        "role": "primary",
        "operation": "chat",
        "stream": False,
        "status": 200,
        "started_at": 0.0,
        "duration_s": 1.0,
        "batch_size": batch,
        "energy_j": joules,
        "energy_method": "nvml_counter" if joules is not None else "none",
        "completion_tokens": 100,
    }
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def test_stratify_energy_means_by_batch_size() -> None:
    records = [
        _record("fp16", 1, 100.0),
        _record("fp16", 1, 120.0),
        _record("nf4", 1, 150.0),
        _record("fp16", 4, 40.0),
        _record("nf4", 4, 30.0, completion_tokens=None),
        _record("nf4", 4, 34.0),
        _record("nf4", 8, 20.0),  # no anchor at 8: not comparable
        _record("nf4", 1, 999.0, status=500, error_type="server_error"),  # failed: skipped
        _record("nf4", None, 5.0),  # batch size unknown: skipped
        _record("int8", 1, 1.0),  # another variant
    ]
    points = stratify_energy(records, "fp16", "nf4")
    assert [p.batch_size for p in points] == [1, 4]
    one, four = points
    assert (one.anchor_j_per_query, one.variant_j_per_query) == (110.0, 150.0)
    assert (one.anchor_queries, one.variant_queries) == (2, 1)
    assert one.anchor_j_per_token == pytest.approx(1.1)
    assert four.variant_j_per_query == 32.0
    assert four.variant_j_per_token is None  # one request did not report its tokens
    assert critical_batch_threshold(points).b_star is not None
    assert stratify_energy(records, "fp16", "nf4", min_queries=2) == ()


def test_stratify_energy_never_mixes_measurement_methods() -> None:
    records = [_record("fp16", 1, 100.0), _record("nf4", 1, 90.0, energy_method="hli")]
    with pytest.raises(ValueError, match="different methods"):
        stratify_energy(records, "fp16", "nf4")


def test_critical_model_scale_formula() -> None:
    # τ = 1 ms, BW = 2 TB/s = 1.6e13 bit/s, B = 1, 16 -> 4 bits: N* = 1e-3 * 1.6e13 / 12.
    n_star = critical_model_scale(
        casting_overhead_s=1e-3,
        bandwidth_bits_per_s=1.6e13,
        batch_size=1,
        native_bits=16,
        quantized_bits=4,
    )
    assert n_star == pytest.approx(1.6e10 / 12)
    doubled_batch = critical_model_scale(
        casting_overhead_s=1e-3,
        bandwidth_bits_per_s=1.6e13,
        batch_size=2,
        native_bits=16,
        quantized_bits=4,
    )
    assert doubled_batch == pytest.approx(n_star / 2)  # "halving B doubles N*"
    with pytest.raises(ValueError):
        critical_model_scale(
            casting_overhead_s=1e-3,
            bandwidth_bits_per_s=1.6e13,
            batch_size=1,
            native_bits=4,
            quantized_bits=4,
        )


def test_fit_through_the_paper_14b_and_32b_points() -> None:
    # COR 0.41 at 14B and -0.46 at 32B (paper section 4.7). Two points, exact fit:
    # a (1/14 - 1/32) = 0.87 (per 1e9), b = 0.41 - a / 14, N* = -a / b.
    a = 0.87 / (1 / 14 - 1 / 32) * 1e9
    b = 0.41 - a / 14e9
    fit = fit_critical_model_scale([ScaleObservation(14e9, 0.41), ScaleObservation(32e9, -0.46)])
    assert fit.slope == pytest.approx(a)
    assert fit.intercept == pytest.approx(b)
    assert fit.n_star == pytest.approx(-a / b)
    assert 14e9 < (fit.n_star or 0) < 32e9
    assert fit.held_out_agreement is None  # two points test nothing: in-sample only


def test_fit_recovers_a_known_curve_and_checks_held_out_points() -> None:
    sizes = [0.6e9, 3e9, 7e9, 14e9, 32e9, 72e9]
    obs = [ScaleObservation(n, 30e9 / n - 1.5) for n in sizes]  # N* = 20e9
    fit = fit_critical_model_scale(obs)
    assert fit.n_star == pytest.approx(20e9)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.held_out_agreement == 1.0
    assert fit.predict_cor(20e9) == pytest.approx(0.0, abs=1e-12)


def test_fit_without_a_crossing_has_no_n_star() -> None:
    obs = [ScaleObservation(n, 2e9 / n + 0.2) for n in (1e9, 2e9, 4e9)]
    assert fit_critical_model_scale(obs).n_star is None
    with pytest.raises(ValueError, match="two or more"):
        fit_critical_model_scale([ScaleObservation(7e9, 0.3), ScaleObservation(7e9, 0.4)])


def test_held_out_agreement_exposes_a_fit_that_only_explains_itself() -> None:
    # Noisy signs: the in-sample fit has an N*, but leave-one-out mispredicts some signs.
    obs = [
        ScaleObservation(1e9, 0.5),
        ScaleObservation(3e9, -0.2),
        ScaleObservation(7e9, 0.3),
        ScaleObservation(14e9, -0.1),
    ]
    fit = fit_critical_model_scale(obs)
    assert fit.held_out_agreement is not None and fit.held_out_agreement < 1.0
    assert fit.r_squared is not None and fit.r_squared < 0.9
    assert math.isfinite(fit.slope)
