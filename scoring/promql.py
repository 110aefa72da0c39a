"""The SI formulas written once, as expressions that Python evaluates and PromQL renders.

The fleet-wide SI is computed by Prometheus recording rules from counters that every proxy
replica exports (``grafana/recording.py``); the in-process SI by :mod:`scoring.pillars`. To
keep the two from drifting, the formulas of DESIGN.md section 2 are built here as small
expression trees over *measured inputs* — a quantity of the variant or of its anchor in the
same batch-size bucket — and:

- :func:`evaluate` computes a tree from numbers: it is how the offline scorecard, the live
  row and the intervals get their COR, pillars and SI (:mod:`scoring.assemble`), so Python
  and PromQL share one source (``tests/scoring/test_promql.py`` also checks the per-formula
  reference functions of :mod:`scoring.pillars` against it);
- :func:`render` writes the same tree as PromQL, given the PromQL of each input (the rule
  generator maps inputs to recorded series); ``promtool test rules`` then checks the rendered
  rules against :mod:`scoring.pillars` on synthetic series.

Weights, λ, the policy and the clipping come from :class:`~scoring.pillars.SIConfig`, the same
object the in-process maths uses. Everything here is pure: no I/O, no Prometheus client.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from scoring.pillars import SIConfig

__all__ = [
    "BinOp",
    "Clamp",
    "Const",
    "Expr",
    "Input",
    "Named",
    "Quantity",
    "SIExpressions",
    "Side",
    "evaluate",
    "inputs_of",
    "render",
    "si_expressions",
]

Quantity = Literal["accuracy", "tokens_per_s", "memory_gb", "energy_j_per_query"]
"""Measured inputs: accuracy fraction, generated tokens per second, residency (GB), J/query."""
Side = Literal["variant", "anchor"]
Operator = Literal["+", "-", "*", "/", "^"]


class Expr:
    """A node of an SI formula; Python's arithmetic operators build bigger nodes."""

    __slots__ = ()

    def __add__(self, other: Expr | float) -> Expr:
        return BinOp("+", self, _lift(other))

    def __radd__(self, other: float) -> Expr:
        return BinOp("+", Const(other), self)

    def __sub__(self, other: Expr | float) -> Expr:
        return BinOp("-", self, _lift(other))

    def __rsub__(self, other: float) -> Expr:
        return BinOp("-", Const(other), self)

    def __mul__(self, other: Expr | float) -> Expr:
        return BinOp("*", self, _lift(other))

    def __rmul__(self, other: float) -> Expr:
        return BinOp("*", Const(other), self)

    def __truediv__(self, other: Expr | float) -> Expr:
        return BinOp("/", self, _lift(other))

    def __rtruediv__(self, other: float) -> Expr:
        return BinOp("/", Const(other), self)

    def __pow__(self, other: Expr | float) -> Expr:
        return BinOp("^", self, _lift(other))


@dataclass(frozen=True, slots=True)
class Input(Expr):
    """A measured quantity of the variant, or of its anchor in the same batch-size bucket."""

    quantity: Quantity
    side: Side


@dataclass(frozen=True, slots=True)
class Const(Expr):
    value: float


@dataclass(frozen=True, slots=True)
class BinOp(Expr):
    op: Operator
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Clamp(Expr):
    """``arg`` clipped to [low, high] (PromQL's ``clamp``)."""

    arg: Expr
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Named(Expr):
    """A sub-formula with a name, so that a rule can refer to it once it has been recorded."""

    name: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class SIExpressions:
    """Every per-variant formula of the SI table, for one :class:`SIConfig`.

    ``trust``, ``economic`` and ``energy`` are the raw pillars (:class:`Named` ``trust``,
    ``economic``, ``energy``); ``si`` aggregates them clipped to [0, 1] (the published
    definition), ``si_raw`` unclipped. ``cor`` is the casting overhead ratio and
    ``accuracy_difference`` ``Acc_v − Acc_a``.
    """

    cor: Expr
    trust: Named
    economic: Named
    energy: Named
    si: Expr
    si_raw: Expr
    accuracy_difference: Expr


def si_expressions(config: SIConfig | None = None) -> SIExpressions:
    """The formulas of DESIGN.md section 2 (see :mod:`scoring.pillars` for each one)."""
    cfg = config if config is not None else SIConfig()
    acc_v, acc_a = Input("accuracy", "variant"), Input("accuracy", "anchor")
    tps_v, tps_a = Input("tokens_per_s", "variant"), Input("tokens_per_s", "anchor")
    mem_v, mem_a = Input("memory_gb", "variant"), Input("memory_gb", "anchor")
    e_v, e_a = Input("energy_j_per_query", "variant"), Input("energy_j_per_query", "anchor")

    g_tps = tps_v / tps_a  # throughput gain
    g_vram = mem_a / mem_v  # residency gain
    lam = cfg.economic_lambda
    if lam == 1.0:  # throughput only: memory need not be known (as in economic_pillar)
        esi = g_tps
    elif lam == 0.0:
        esi = g_vram
    else:
        esi = 1.0 / (lam / g_tps + (1.0 - lam) / g_vram)
    trust = Named("trust", acc_v / acc_a)
    economic = Named("economic", esi)
    energy = Named("energy", e_a / e_v)  # one grid: the carbon intensity cancels
    pillars = (trust, economic, energy)
    return SIExpressions(
        cor=tps_a / tps_v - 1.0,
        trust=trust,
        economic=economic,
        energy=energy,
        si=_aggregate(tuple(Clamp(p, 0.0, 1.0) for p in pillars), cfg),
        si_raw=_aggregate(pillars, cfg),
        accuracy_difference=acc_v - acc_a,
    )


def _aggregate(pillars: tuple[Expr, ...], cfg: SIConfig) -> Expr:
    """``Σ w·p`` (linear) or ``Π p^w`` (geometric) with the config's normalised weights.

    Zero weights are kept (``0·p``, ``p^0``) so that the SI needs all three pillars, exactly
    as the in-process maths does: a pillar that was not measured leaves the SI unmeasured.
    """
    terms = list(zip(cfg.weights, pillars, strict=True))
    if cfg.policy == "linear":
        out: Expr = Const(terms[0][0]) * terms[0][1]
        for w, p in terms[1:]:
            out = out + Const(w) * p
        return out
    out = terms[0][1] ** Const(terms[0][0])
    for w, p in terms[1:]:
        out = out * p ** Const(w)
    return out


def evaluate(
    expr: Expr, inputs: Mapping[Input, float], named: Mapping[str, float] | None = None
) -> float | None:
    """The value of ``expr``; ``None`` when an input is missing or a denominator is 0.

    ``None`` plays the part of PromQL's empty result: a rule whose input series is absent
    (or filtered out) records nothing, never a zero. ``named`` gives values for
    :class:`Named` sub-formulas (as :func:`render`'s ``recorded`` reads recorded series):
    the SI at the ends of its pillars' intervals is the same tree with the pillars given.
    """
    if isinstance(expr, Input):
        return inputs.get(expr)
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Named):
        if named is not None and expr.name in named:
            return named[expr.name]
        return evaluate(expr.expr, inputs, named)
    if isinstance(expr, Clamp):
        x = evaluate(expr.arg, inputs, named)
        return None if x is None else min(expr.high, max(expr.low, x))
    if isinstance(expr, BinOp):
        left, right = evaluate(expr.left, inputs, named), evaluate(expr.right, inputs, named)
        if left is None or right is None:
            return None
        return _apply(expr.op, left, right)
    raise TypeError(f"not an SI expression node: {expr!r}")


def _apply(op: Operator, left: float, right: float) -> float | None:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return None if right == 0 else left / right
    if left < 0 and not float(right).is_integer():
        return None  # PromQL would give NaN
    return float(left**right)


def inputs_of(expr: Expr) -> frozenset[Input]:
    """Every measured input ``expr`` needs."""
    if isinstance(expr, Input):
        return frozenset({expr})
    if isinstance(expr, Named):
        return inputs_of(expr.expr)
    if isinstance(expr, Clamp):
        return inputs_of(expr.arg)
    if isinstance(expr, BinOp):
        return inputs_of(expr.left) | inputs_of(expr.right)
    return frozenset()


def render(
    expr: Expr,
    inputs: Callable[[Input], str],
    recorded: Mapping[str, str] | None = None,
) -> str:
    """``expr`` as PromQL.

    ``inputs`` gives the PromQL of each measured input: an instant vector with the same label
    set for every input (model, variant, batch-size bucket), so that binary operators match
    one to one without modifiers. ``recorded`` maps :class:`Named` sub-formulas that already
    have a recording rule to the PromQL that reads it; the others are written out in full.
    Every binary operation is parenthesised: PromQL's precedence (``^`` is right-associative)
    never has to be relied on.
    """
    names = recorded or {}
    if isinstance(expr, Input):
        return inputs(expr)
    if isinstance(expr, Const):
        return _number(expr.value)
    if isinstance(expr, Named):
        found = names.get(expr.name)
        return found if found is not None else render(expr.expr, inputs, names)
    if isinstance(expr, Clamp):
        arg = render(expr.arg, inputs, names)
        return f"clamp({arg}, {_number(expr.low)}, {_number(expr.high)})"
    if isinstance(expr, BinOp):
        left, right = render(expr.left, inputs, names), render(expr.right, inputs, names)
        return f"({left} {expr.op} {right})"
    raise TypeError(f"not an SI expression node: {expr!r}")


def _number(value: float) -> str:
    """A float literal PromQL reads back exactly (``repr`` round-trips)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} into a formula")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _lift(value: Expr | float) -> Expr:
    return value if isinstance(value, Expr) else Const(float(value))
