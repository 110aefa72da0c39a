"""The SI expression trees: rendering, and the per-formula functions of scoring.pillars.

The scorecard and the live row evaluate these trees themselves (scoring.assemble); the
comparison here keeps the documented one-formula functions of scoring.pillars honest.
"""

from __future__ import annotations

import math
import random

import pytest

from scoring.pillars import SIConfig, VariantMeasurement
from scoring.promql import (
    Clamp,
    Const,
    Input,
    Named,
    evaluate,
    inputs_of,
    render,
    si_expressions,
)
from scoring.scorecard import score_variants

CONFIGS = [
    SIConfig(),
    SIConfig(economic_lambda=0.0),
    SIConfig(economic_lambda=1.0),
    SIConfig(2.0, 1.0, 0.5, 0.3, "linear"),
    SIConfig(policy="geometric"),
    SIConfig(1.0, 0.0, 3.0, 0.8, "geometric"),
]


def _random_pair(rng: random.Random) -> tuple[VariantMeasurement, VariantMeasurement]:
    def one(name: str, bits: int) -> VariantMeasurement:
        return VariantMeasurement(
            name=name,
            bits=bits,
            tokens_per_s=rng.uniform(1, 200),
            accuracy=rng.uniform(0.01, 1.0),
            vram_gb=rng.uniform(1, 80),
            energy_j_per_query=rng.uniform(1, 1000),
        )

    return one("anchor", 16), one("variant", 4)


def _inputs(a: VariantMeasurement, v: VariantMeasurement) -> dict[Input, float]:
    out: dict[Input, float] = {}
    for side, m in (("anchor", a), ("variant", v)):
        assert m.accuracy is not None and m.vram_gb is not None
        assert m.energy_j_per_query is not None
        out[Input("accuracy", side)] = m.accuracy  # type: ignore[arg-type]
        out[Input("tokens_per_s", side)] = m.tokens_per_s  # type: ignore[arg-type]
        out[Input("memory_gb", side)] = m.vram_gb  # type: ignore[arg-type]
        out[Input("energy_j_per_query", side)] = m.energy_j_per_query  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.policy}-{c.economic_lambda}")
def test_expressions_equal_the_scorecard(config: SIConfig) -> None:
    rng = random.Random(repr(config))
    exprs = si_expressions(config)
    for _ in range(300):
        a, v = _random_pair(rng)
        score = score_variants([a, v], anchor="anchor", config=config).score("variant")
        values = _inputs(a, v)
        assert score.si is not None and score.si_raw is not None
        pairs = [
            (exprs.si, score.si),
            (exprs.si_raw, score.si_raw),
            (exprs.cor, score.cor),
            (exprs.trust, score.raw.tsi),
            (exprs.economic, score.raw.esi),
            (exprs.energy, score.raw.ssi),
        ]
        for expr, want in pairs:
            got = evaluate(expr, values)
            assert got is not None and want is not None
            assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), (expr, got, want)
        assert evaluate(exprs.accuracy_difference, values) == pytest.approx(
            values[Input("accuracy", "variant")] - values[Input("accuracy", "anchor")]
        )


def test_lambda_one_needs_no_memory_and_missing_inputs_leave_nothing() -> None:
    throughput_only = si_expressions(SIConfig(economic_lambda=1.0))
    assert all(i.quantity != "memory_gb" for i in inputs_of(throughput_only.economic))
    both = si_expressions(SIConfig())
    assert {i.quantity for i in inputs_of(both.si)} == {
        "accuracy", "tokens_per_s", "memory_gb", "energy_j_per_query"
    }  # fmt: skip
    a, v = _random_pair(random.Random(1))
    values = _inputs(a, v)
    del values[Input("energy_j_per_query", "anchor")]
    assert evaluate(both.si, values) is None  # unmeasured, never 0
    assert evaluate(both.trust, values) is not None
    values[Input("accuracy", "anchor")] = 0.0
    assert evaluate(both.trust, values) is None  # undefined, like trust_pillar's error


def test_render_parenthesises_and_uses_recorded_names() -> None:
    x, y = Input("accuracy", "variant"), Input("accuracy", "anchor")
    names = {x: "acc", y: "acc_a"}
    expr = Const(2.0) * Clamp(x / y, 0.0, 1.0) ** 0.5 - 1
    assert render(expr, names.__getitem__) == "((2 * (clamp((acc / acc_a), 0, 1) ^ 0.5)) - 1)"
    named = Named("trust", x / y) + 1
    assert render(named, names.__getitem__) == "((acc / acc_a) + 1)"
    assert render(named, names.__getitem__, {"trust": "recorded"}) == "(recorded + 1)"
    with pytest.raises(ValueError, match="cannot write"):
        render(Const(math.inf), names.__getitem__)
