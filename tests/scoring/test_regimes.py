"""Regime rules with their tolerances, and scaling-law divergence pairs."""

from __future__ import annotations

import pytest

from scoring.pillars import VariantMeasurement
from scoring.regimes import Tolerances, classify_regime, scaling_law_divergences

ANCHOR = VariantMeasurement(
    "bf16", 16, 100.0, accuracy=0.50, vram_gb=16.0, energy_j_per_query=100.0
)


def _variant(**kw: float | None) -> VariantMeasurement:
    base: dict[str, float | None] = {
        "tokens_per_s": 100.0,
        "accuracy": 0.50,
        "vram_gb": 5.0,
        "energy_j_per_query": 100.0,
    }
    base.update(kw)
    return VariantMeasurement("q", 4, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "regime"),
    [
        ({"accuracy": 0.40, "tokens_per_s": 80.0}, "full_trap"),
        ({"accuracy": 0.40, "energy_j_per_query": 150.0, "tokens_per_s": 120.0}, "full_trap"),
        ({"tokens_per_s": 80.0}, "efficiency_trap"),
        ({"energy_j_per_query": 150.0, "tokens_per_s": 120.0}, "efficiency_trap"),
        ({"accuracy": 0.40, "tokens_per_s": 120.0, "energy_j_per_query": 60.0}, "accuracy_trap"),
        ({"tokens_per_s": 120.0, "energy_j_per_query": 60.0}, "no_trap"),
        ({"accuracy": 0.55, "tokens_per_s": 120.0, "energy_j_per_query": 60.0}, "no_trap"),
    ],
)
def test_regimes_partition_the_outcomes(changes: dict[str, float], regime: str) -> None:
    assert classify_regime(ANCHOR, _variant(**changes)).regime == regime


def test_anchor_is_labelled_anchor() -> None:
    assert classify_regime(ANCHOR, ANCHOR).regime == "anchor"


def test_accuracy_tolerance_is_absolute() -> None:
    cheap = {"tokens_per_s": 120.0, "energy_j_per_query": 60.0}
    within = _variant(accuracy=0.495, **cheap)  # 0.5 pp below, δ = 1 pp
    beyond = _variant(accuracy=0.489, **cheap)
    assert classify_regime(ANCHOR, within).regime == "no_trap"
    assert classify_regime(ANCHOR, beyond).regime == "accuracy_trap"
    assert classify_regime(ANCHOR, beyond, Tolerances(accuracy=0.02)).regime == "no_trap"
    assert classify_regime(ANCHOR, within, Tolerances(accuracy=0.0)).regime == "accuracy_trap"


def test_speed_tolerance_is_relative() -> None:
    v = _variant(tokens_per_s=97.0, energy_j_per_query=90.0)
    assert classify_regime(ANCHOR, v).slower is True
    assert classify_regime(ANCHOR, v).regime == "efficiency_trap"
    loose = classify_regime(ANCHOR, v, Tolerances(speed=0.05))
    assert loose.slower is False and loose.regime == "no_trap"


def test_energy_tolerance_is_relative() -> None:
    v = _variant(tokens_per_s=110.0, energy_j_per_query=104.0)
    assert classify_regime(ANCHOR, v).more_energy is True
    assert classify_regime(ANCHOR, v, Tolerances(energy=0.05)).more_energy is False


def test_more_energy_is_carbon_adjusted_when_intensities_are_given() -> None:
    dirty = VariantMeasurement(
        "bf16", 16, 100.0, accuracy=0.5, energy_j_per_query=100.0, carbon_g_per_kwh=400.0
    )
    # 150 J on a grid a quarter as dirty emits less than 100 J on the anchor's grid.
    clean = VariantMeasurement(
        "q", 4, 110.0, accuracy=0.5, energy_j_per_query=150.0, carbon_g_per_kwh=100.0
    )
    verdict = classify_regime(dirty, clean)
    assert verdict.more_energy is False
    assert verdict.regime == "no_trap"


def test_unmeasured_inputs_make_the_regime_undetermined_not_guessed() -> None:
    no_acc = _variant(accuracy=None, tokens_per_s=80.0)
    assert classify_regime(ANCHOR, no_acc).regime == "undetermined"
    assert classify_regime(ANCHOR, no_acc).less_accurate is None
    # Energy unknown but the variant is slower: "slower or more energy" is already true.
    slow = _variant(accuracy=0.40, tokens_per_s=80.0, energy_j_per_query=None)
    assert classify_regime(ANCHOR, slow).regime == "full_trap"
    # Energy unknown and not slower: could be accuracy_trap or full_trap.
    fast = _variant(accuracy=0.40, tokens_per_s=120.0, energy_j_per_query=None)
    assert classify_regime(ANCHOR, fast).regime == "undetermined"


def test_memory_only_victory() -> None:
    only_memory = _variant(tokens_per_s=80.0, energy_j_per_query=130.0)
    verdict = classify_regime(ANCHOR, only_memory)
    assert verdict.regime == "efficiency_trap"
    assert verdict.memory_only_victory is True
    # Faster as well: memory is not the only win.
    faster = _variant(tokens_per_s=120.0, energy_j_per_query=130.0)
    assert classify_regime(ANCHOR, faster).memory_only_victory is False
    # Less energy as well.
    thrifty = _variant(tokens_per_s=80.0, energy_j_per_query=70.0)
    assert classify_regime(ANCHOR, thrifty).memory_only_victory is False
    # No memory win at all.
    fat = _variant(tokens_per_s=80.0, energy_j_per_query=130.0, vram_gb=20.0)
    assert classify_regime(ANCHOR, fat).memory_only_victory is False
    # VRAM not measured: unknown, not false.
    blind = _variant(tokens_per_s=80.0, energy_j_per_query=130.0, vram_gb=None)
    assert classify_regime(ANCHOR, blind).memory_only_victory is None


@pytest.mark.parametrize("bad", [-0.01, 1.0, float("nan")])
def test_tolerances_are_validated(bad: float) -> None:
    with pytest.raises(ValueError):
        Tolerances(accuracy=bad)


def test_divergences_pair_fewer_bits_with_lower_si() -> None:
    pairs = scaling_law_divergences(
        [
            ("fp16", 16, 1.0),
            ("int8", 8, 0.7),
            ("nf4", 4, 0.8),
            ("awq", 4, 0.98),
            ("fp8", 8, None),  # no SI: not compared
        ]
    )
    found = {(d.lower, d.higher) for d in pairs}
    # nf4 (0.8) > int8 (0.7) and awq > int8: no divergence; nf4 vs awq: equal bits.
    assert found == {("awq", "fp16"), ("nf4", "fp16"), ("int8", "fp16")}
    nf4 = next(d for d in pairs if d.lower == "nf4")
    assert nf4.si_gap == pytest.approx(0.2)
    assert (nf4.lower_bits, nf4.higher_bits) == (4, 16)


def test_no_divergence_when_si_falls_with_precision() -> None:
    assert scaling_law_divergences([("fp16", 16, 0.9), ("nf4", 4, 0.95)]) == ()
