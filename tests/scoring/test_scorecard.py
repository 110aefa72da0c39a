"""The SI table: anchor choice, unmeasured inputs, divergences across variants."""

from __future__ import annotations

import pytest

from scoring.pillars import SIConfig, VariantMeasurement
from scoring.regimes import Tolerances
from scoring.scorecard import choose_anchor, score_variants

FP16 = VariantMeasurement(
    "fp16",
    16,
    44.6,
    accuracy=0.4314,
    vram_gb=14.5,
    energy_j_per_query=311.7,
    completion_tokens_per_query=180.0,
)
INT8 = VariantMeasurement("int8", 8, 13.9, accuracy=0.4086, vram_gb=8.1, energy_j_per_query=693.35)
NF4 = VariantMeasurement("nf4", 4, 36.5, accuracy=0.3942, vram_gb=4.5, energy_j_per_query=503.1)
AWQ = VariantMeasurement("awq", 4, 45.9, accuracy=0.4071, vram_gb=4.2, energy_j_per_query=184.7)


def test_anchor_defaults_to_most_bits_and_scores_one() -> None:
    card = score_variants([NF4, FP16, AWQ])
    assert card.anchor == "fp16"
    anchor = card.score("fp16")
    assert anchor.is_anchor and anchor.si == pytest.approx(1.0) and anchor.cor == 0.0
    assert anchor.verdict.regime == "anchor"
    assert [s.name for s in card.scores] == ["nf4", "fp16", "awq"]  # input order kept


def test_full_table_by_hand() -> None:
    card = score_variants([FP16, INT8, NF4, AWQ])
    int8 = card.score("int8")
    # COR = 44.6 / 13.9 - 1; ESI = 1 / (0.5 / (13.9/44.6) + 0.5 / (14.5/8.1)).
    assert int8.cor == pytest.approx(44.6 / 13.9 - 1)
    g_tps, g_vram = 13.9 / 44.6, 14.5 / 8.1
    esi = 1 / (0.5 / g_tps + 0.5 / g_vram)
    assert int8.raw.esi == pytest.approx(esi)
    assert int8.raw.ssi == pytest.approx(311.7 / 693.35)
    tsi = 0.4086 / 0.4314
    assert int8.si == pytest.approx((tsi + esi + 311.7 / 693.35) / 3)
    assert int8.verdict.regime == "full_trap"
    assert card.score("nf4").verdict.regime == "full_trap"
    assert card.score("awq").verdict.regime == "accuracy_trap"
    lowers = {(d.lower, d.higher) for d in card.divergences}
    assert ("nf4", "int8") not in lowers  # nf4 (0.844) beats int8 (0.64): not a divergence
    assert {("int8", "fp16"), ("nf4", "fp16"), ("awq", "fp16")} <= lowers


def test_raw_pillars_show_how_much_a_variant_beats_the_anchor() -> None:
    awq = score_variants([FP16, AWQ]).score("awq")
    assert awq.raw.ssi == pytest.approx(311.7 / 184.7)  # 1.69x less energy
    assert awq.bounded.ssi == 1.0
    assert awq.si_raw is not None and awq.si is not None
    assert awq.si_raw > awq.si


def test_energy_per_token_next_to_energy_per_query() -> None:
    card = score_variants([FP16, NF4])
    assert card.score("fp16").energy_j_per_token == pytest.approx(311.7 / 180.0)
    assert card.score("nf4").energy_j_per_token is None  # tokens not given: not zero


def test_unmeasured_inputs_give_none_and_a_reason() -> None:
    blind = VariantMeasurement("nf4", 4, 36.5, accuracy=0.39)
    s = score_variants([FP16, blind]).score("nf4")
    assert s.raw.tsi == pytest.approx(0.39 / 0.4314)
    assert s.raw.esi is None and s.raw.ssi is None and s.si is None
    assert any("vram_gb not measured for nf4" in m for m in s.missing)
    assert any("energy_j_per_query not measured for nf4" in m for m in s.missing)


def test_lambda_one_needs_no_vram() -> None:
    blind = VariantMeasurement("nf4", 4, 36.5, accuracy=0.39, energy_j_per_query=500.0)
    anchor = VariantMeasurement("fp16", 16, 44.6, accuracy=0.43, energy_j_per_query=300.0)
    s = score_variants([anchor, blind], config=SIConfig(economic_lambda=1.0)).score("nf4")
    assert s.raw.esi == pytest.approx(36.5 / 44.6)
    assert s.si is not None and not s.missing


def test_anchor_with_zero_accuracy_leaves_trust_undefined() -> None:
    zero = VariantMeasurement("fp16", 16, 44.6, accuracy=0.0, vram_gb=14.5, energy_j_per_query=1.0)
    s = score_variants([zero, NF4]).score("nf4")
    assert s.raw.tsi is None and s.si is None
    assert any("accuracy 0" in m for m in s.missing)


def test_named_anchor_and_tolerances_are_used() -> None:
    card = score_variants([FP16, AWQ], anchor="awq")
    assert card.anchor == "awq"
    assert card.score("fp16").cor == pytest.approx(45.9 / 44.6 - 1)
    # With δ = 3 pp the 2.4 pp accuracy gap is tolerated and the AWQ trap dissolves.
    tolerant = score_variants([FP16, AWQ], tolerances=Tolerances(accuracy=0.03))
    assert tolerant.score("awq").verdict.regime == "no_trap"


def test_anchor_errors() -> None:
    twin = VariantMeasurement("bf16", 16, 40.0)
    with pytest.raises(ValueError, match="name the anchor"):
        choose_anchor([FP16, twin])
    with pytest.raises(ValueError, match="not one of the variants"):
        choose_anchor([FP16], "int4")
    with pytest.raises(ValueError, match="no variants"):
        choose_anchor([])
    with pytest.raises(ValueError, match="unique"):
        score_variants([FP16, FP16])
