"""One assembly of the SI: the scorecard, the live row and the intervals share the formula trees.

The published figures come out of the trees (the same trees the PromQL rules render), and the
live row and the offline scorecard give the same pillars and SI for the same measurements.
"""

from __future__ import annotations

import pytest

from scoring.assemble import Side, assemble, economic_of_gain, si_of_pillars
from scoring.config import ScoringConfig
from scoring.pillars import (
    SIConfig,
    VariantMeasurement,
    economic_pillar,
    sustainability_index,
)
from scoring.row import RowInputs, score_row
from scoring.scorecard import score_variants
from scoring.windows import EvidenceCell, Observation

# The paper's A100 figures (DESIGN.md section 2): FP16 and bnb-NF4 on Mistral-7B.
FP16 = Side(accuracy=0.4314, tokens_per_s=44.6, memory_gb=14.5, energy_j_per_query=311.7)
NF4 = Side(accuracy=0.3942, tokens_per_s=36.5, memory_gb=4.1, energy_j_per_query=503.1)


def test_the_paper_figures_come_out_of_the_trees() -> None:
    parts = assemble(FP16, NF4, SIConfig())
    assert parts.cor == pytest.approx(44.6 / 36.5 - 1)  # 0.22, as published
    assert parts.raw.tsi == pytest.approx(0.3942 / 0.4314)
    assert parts.raw.ssi == pytest.approx(311.7 / 503.1)
    assert parts.accuracy_difference == pytest.approx(0.3942 - 0.4314)
    assert parts.si == pytest.approx(
        sustainability_index(*(min(1.0, p) for p in parts.raw.as_tuple() if p is not None))
    )


def test_missing_inputs_and_zero_denominators_leave_nothing() -> None:
    parts = assemble(Side(accuracy=0.0, tokens_per_s=40.0), Side(0.3, 35.0), SIConfig())
    assert parts.raw.tsi is None and parts.raw.esi is None and parts.raw.ssi is None
    assert parts.si is None and parts.si_raw is None and parts.cor == pytest.approx(40 / 35 - 1)


def test_interval_helpers_are_the_same_trees() -> None:
    cfg = SIConfig(economic_lambda=0.3)
    assert economic_of_gain(0.8, 2.0, cfg) == pytest.approx(economic_pillar(0.8, 2.0, 0.3))
    assert si_of_pillars(1.4, 0.5, -0.2, cfg) == pytest.approx(
        sustainability_index(1.0, 0.5, 0.0, cfg)  # the tree clips the pillars
    )


def _cell(accuracy: float, tps: float, joules: float, n: int = 40) -> EvidenceCell:
    cell = EvidenceCell()
    for i in range(n):
        cell.add(
            Observation(
                at=float(i), model="m", variant="v", role="primary", bucket="1", ok=True,
                gen_tokens=100, gen_s=100 / tps, completion_tokens=100, energy_j=joules,
                energy_method="nvml_counter", correct=i < round(accuracy * n),
            )
        )  # fmt: skip
    return cell


def test_the_live_row_and_the_scorecard_agree() -> None:
    config = ScoringConfig(economic_lambda=0.4, policy="geometric")
    row = score_row(
        RowInputs(
            bucket="1", variant=_cell(0.75, 30.0, 450.0), anchor=_cell(0.9, 45.0, 300.0),
            is_anchor=False, variant_memory_gb=4.0, anchor_memory_gb=14.0, anchor_name="a",
        ),
        config,
    )  # fmt: skip
    card = score_variants(
        [
            VariantMeasurement("a", 16, 45.0, accuracy=0.9, vram_gb=14.0, energy_j_per_query=300.0),
            VariantMeasurement("v", 4, 30.0, accuracy=0.75, vram_gb=4.0, energy_j_per_query=450.0),
        ],
        config=SIConfig(1.0, 1.0, 1.0, 0.4, "geometric"),
    ).score("v")
    assert row.si is not None and card.si is not None and row.si_raw is not None
    assert row.si.estimate == pytest.approx(card.si)
    assert row.si_raw == pytest.approx(card.si_raw)
    assert row.cor is not None and row.cor.estimate == pytest.approx(card.cor)
    for live, offline in (
        (row.trust, card.raw.tsi),
        (row.economic, card.raw.esi),
        (row.energy_pillar, card.raw.ssi),
    ):
        assert live.raw is not None and live.raw.estimate == pytest.approx(offline)
