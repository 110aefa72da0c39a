"""The SI assembled in one place: measured inputs in, COR, pillars and SI out.

Both the offline scorecard (:mod:`scoring.scorecard`, ``quanttrap si``) and the live row
(:mod:`scoring.row`) build their numbers here, and here they are computed by **evaluating the
expression trees of** :mod:`scoring.promql` — the same trees the fleet-wide recording rules
render as PromQL (:mod:`grafana.recording`). There is one source of the formulas, not a Python
copy and a PromQL copy kept equal by a test. The interval variants (pillar intervals, the
Bonferroni SI interval of :mod:`scoring.intervals`) evaluate the same trees at the ends of
their inputs' intervals.

Inputs are point values per side: accuracy (fraction), tokens per second, memory (GB) and
energy per query (J, or carbon-adjusted grams when both sides have an intensity: the energy
pillar is their ratio either way). A missing input leaves every quantity that needs it
``None``; a zero denominator (an anchor with accuracy 0) too — never a zero or a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from scoring.pillars import Pillars, SIConfig
from scoring.promql import Input, Quantity, SIExpressions, evaluate, si_expressions

__all__ = [
    "Assembled",
    "Side",
    "assemble",
    "economic_of_gain",
    "formulas",
    "inputs_of_sides",
    "si_of_pillars",
]


@dataclass(frozen=True, slots=True)
class Side:
    """One side's measured point values (``None`` = not measured)."""

    accuracy: float | None = None
    tokens_per_s: float | None = None
    memory_gb: float | None = None
    energy_j_per_query: float | None = None


@dataclass(frozen=True, slots=True)
class Assembled:
    """COR, the raw and bounded pillars and the SI of a variant against its anchor."""

    cor: float | None
    raw: Pillars
    bounded: Pillars
    si: float | None
    """The aggregate of the bounded pillars (the published definition)."""
    si_raw: float | None
    """The same aggregate of the raw pillars: above 1 when a variant beats the anchor."""
    accuracy_difference: float | None


@cache
def formulas(config: SIConfig) -> SIExpressions:
    """The expression trees for ``config`` (built once per config)."""
    return si_expressions(config)


def inputs_of_sides(anchor: Side, variant: Side) -> dict[Input, float]:
    """The trees' inputs: each measured quantity of each side."""
    out: dict[Input, float] = {}
    quantities: tuple[Quantity, ...] = (
        "accuracy",
        "tokens_per_s",
        "memory_gb",
        "energy_j_per_query",
    )
    for q in quantities:
        for side, values in (("anchor", anchor), ("variant", variant)):
            x = getattr(values, q)
            if x is not None:
                out[Input(q, side)] = x  # type: ignore[arg-type]
    return out


def assemble(anchor: Side, variant: Side, config: SIConfig) -> Assembled:
    """Evaluate every formula of the SI table for ``variant`` against ``anchor``."""
    f = formulas(config)
    x = inputs_of_sides(anchor, variant)
    raw = Pillars(evaluate(f.trust, x), evaluate(f.economic, x), evaluate(f.energy, x))
    return Assembled(
        cor=evaluate(f.cor, x),
        raw=raw,
        bounded=raw.bounded(),
        si=evaluate(f.si, x),
        si_raw=evaluate(f.si_raw, x),
        accuracy_difference=evaluate(f.accuracy_difference, x),
    )


def si_of_pillars(trust: float, economic: float, energy: float, config: SIConfig) -> float:
    """The bounded SI for given raw pillar values (the same tree, pillars given)."""
    value = evaluate(
        formulas(config).si, {}, {"trust": trust, "economic": economic, "energy": energy}
    )
    assert value is not None  # every input is given
    return value


def economic_of_gain(g_tps: float, g_vram: float | None, config: SIConfig) -> float | None:
    """The economic pillar for a throughput gain (and residency gain), from the same tree."""
    side = Side(tokens_per_s=1.0, memory_gb=None if g_vram is None else 1.0)
    other = Side(tokens_per_s=g_tps, memory_gb=None if g_vram is None else 1.0 / g_vram)
    return evaluate(formulas(config).economic, inputs_of_sides(side, other))
