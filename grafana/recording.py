"""Recording rules: the live SI table recomputed fleet-wide by Prometheus.

Each proxy replica keeps its own live windows; many replicas behind a Service must give one
answer. Every SI input is exported as a counter, so Prometheus can sum them over replicas
and roles and take their increase over the proxy's own window (``scoring.window_s``), per
model, variant and batch-size bucket. The formulas are :mod:`scoring.promql`'s — the ones
:mod:`scoring.pillars` implements — rendered with these inputs:

============  ==============================================================================
accuracy      correct / graded evaluations (``quanttrap_eval_graded_total``), used once each
              side has ``trap.min_graded`` graded evaluations, the anchor's above 0
TPS           generated tokens / generation seconds (``quanttrap_generation_*``), once each
              side has ``trap.min_requests`` successful requests
energy        J per query of the most preferred method (NVML counter, NVML power, HLI) that
              has ``trap.min_requests`` measured queries on both sides — never a mix
memory        the residency each proxy exports for the variant
              (``quanttrap_variant_memory_bytes``: declared in ``scoring.memory_gb``, or the
              engine's report), the largest over replicas; none while no proxy knows it
============  ==============================================================================

The anchor of each model is read from the proxy's own ``quanttrap_regime{...="anchor"}``
gauge (1 on the anchor's rows), so the rules need no list of models; an anchor's values are
broadcast onto every variant's row of the same model and bucket before the formulas apply,
so that every formula is a one-to-one operation between series with the same labels.

Differences from the in-process windows, by construction: for a series older than the
window, ``increase()`` extrapolates to the window's ends (a series newer than the window is
counted exactly, see :func:`window_increase`); the proxy's window moves in ``slot_s`` steps; and
the speed gate counts successful requests (the proxy counts requests with a measured speed).
"""

from __future__ import annotations

from typing import Any

from grafana.options import RuleOptions
from grafana.series import Label, Record, Series
from scoring.promql import Input, render, si_expressions
from scoring.row import ENERGY_METHOD_PREFERENCE

__all__ = ["PILLARS", "recording_groups", "window_increase"]

PILLARS = ("trust", "economic", "energy")
"""The ``quanttrap_pillar_name`` values, as the proxy's ``quanttrap_pillar`` gauge has them."""

_ROW = f"{Label.MODEL}, {Label.VARIANT}, {Label.BUCKET}"
_ROW_METHOD = f"{_ROW}, {Label.ENERGY_METHOD}"
_MV = f"{Label.MODEL}, {Label.VARIANT}"

Rule = dict[str, Any]


def recording_groups(options: RuleOptions) -> list[dict[str, Any]]:
    """The rule groups (Prometheus rule-file format) of the fleet-wide SI."""
    rules = [*_input_rules(options), *_anchor_rules(options), *_formula_rules(options)]
    return [{"name": "quanttrap.si", "rules": rules}]


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> Rule:
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def window_increase(metric: str, by: str, window: str, matchers: str = "") -> str:
    """What the counters counted in the window, summed over replicas and roles.

    ``increase()`` alone cannot count what a series counted before its first scrape: a
    label combination that appears mid-window (the first wrong answer of a variant, a new
    pod) would lose its first value, which at a few evaluations per minute is a large share.
    A counter series that did not exist one window ago started inside it, from zero, so its
    current value *is* its count in the window; the others get ``increase()``.
    """
    x = f"{metric}{{{matchers}}}" if matchers else metric
    return f"sum by ({by}) ((increase({x}[{window}]) and {x} offset {window}) or {x})"


def _input_rules(opts: RuleOptions) -> list[Rule]:
    w = opts.window
    correct = window_increase(Series.EVAL_GRADED, _ROW, w, f'{Label.OUTCOME}="correct"')
    tokens = window_increase(Series.GENERATION_TOKENS, _ROW, w)
    seconds = window_increase(Series.GENERATION_DURATION, _ROW, w)
    joules = window_increase(f"{Series.REQUEST_ENERGY}_sum", _ROW_METHOD, w)
    rules = [
        _record(Record.GRADED, window_increase(Series.EVAL_GRADED, _ROW, w)),
        # A variant that answered nothing right has no "correct" series: 0, not absent.
        _record(Record.CORRECT, f"{correct} or (0 * {Record.GRADED})"),
        _record(Record.ACCURACY, f"{Record.CORRECT} / ({Record.GRADED} > 0)"),
        _record(Record.TOKENS_PER_SECOND, f"({tokens} / ({seconds} > 0)) > 0"),
        _record(
            Record.REQUESTS_OK,
            window_increase(Series.REQUESTS, _ROW, w, f'{Label.STATUS_CLASS}="2xx"'),
        ),
        _record(
            Record.ENERGY_QUERIES, window_increase(f"{Series.REQUEST_ENERGY}_count", _ROW_METHOD, w)
        ),
        _record(Record.ENERGY_PER_QUERY, f"{joules} / ({Record.ENERGY_QUERIES} > 0)"),
        _record(
            Record.ANCHOR,
            f'max by ({_MV}) ({Series.REGIME}{{{Label.REGIME}="anchor"}}) == 1',
        ),
    ]
    # The proxies export what they compare (declared or the engine's report), so the rules
    # need no memory of their own; replicas can differ (peak RSS): the largest is taken.
    rules.append(
        _record(Record.MEMORY, f"max by ({_MV}) ({Series.VARIANT_MEMORY}) / 1e9"),
    )
    return rules


def _broadcast(record: str, by: str, on: str) -> str:
    """The anchor's value of ``record`` on every row of ``record`` with the same ``on`` labels."""
    anchor_only = f"sum by ({by}) ({record} and on ({_MV}) {Record.ANCHOR})"
    return f"{anchor_only} * on ({on}) group_right () (0 * {record} + 1)"


def _anchor_rules(opts: RuleOptions) -> list[Rule]:
    by = f"{Label.MODEL}, {Label.BUCKET}"
    by_method = f"{by}, {Label.ENERGY_METHOD}"
    rules = [
        _record(Record.anchor(r), _broadcast(r, by, by))
        for r in (Record.GRADED, Record.ACCURACY, Record.TOKENS_PER_SECOND, Record.REQUESTS_OK)
    ]
    rules += [
        _record(Record.anchor(r), _broadcast(r, by_method, by_method))
        for r in (Record.ENERGY_QUERIES, Record.ENERGY_PER_QUERY)
    ]
    # Energy: the first method in the proxy's order of preference measured often enough on
    # both sides (scoring.row picks the same way); the others are never mixed in.
    n = opts.scoring.trap.min_requests
    choices = [
        f'({Record.ENERGY_PER_QUERY}{{{Label.ENERGY_METHOD}="{m}"}} > 0'
        f" and {Record.ENERGY_QUERIES} >= {n}"
        f" and {Record.anchor(Record.ENERGY_QUERIES)} >= {n}"
        f" and {Record.anchor(Record.ENERGY_PER_QUERY)} > 0)"
        for m in ENERGY_METHOD_PREFERENCE
    ]
    rules.append(_record(Record.ENERGY_COMPARED, f" or on ({_ROW}) ".join(choices)))
    rules.append(
        _record(
            Record.anchor(Record.ENERGY_COMPARED),
            f"{Record.anchor(Record.ENERGY_PER_QUERY)} and {Record.ENERGY_COMPARED}",
        )
    )
    rules.append(
        _record(
            Record.ANCHOR_MEMORY,
            f"sum by ({Label.MODEL}) ({Record.MEMORY} and on ({_MV}) {Record.ANCHOR})",
        )
    )
    return rules


def _input_promql(opts: RuleOptions) -> dict[Input, str]:
    """The gated PromQL of each formula input, all with the labels (model, variant, bucket)."""
    trap = opts.scoring.trap
    rows = f"(0 * {Record.REQUESTS_OK} + 1)"
    no_method = f"max without ({Label.ENERGY_METHOD})"
    a = Record.anchor
    return {
        Input("accuracy", "variant"): (
            f"({Record.ACCURACY} and {Record.GRADED} >= {trap.min_graded})"
        ),
        Input("accuracy", "anchor"): (
            f"({a(Record.ACCURACY)} > 0 and {a(Record.GRADED)} >= {trap.min_graded})"
        ),
        Input("tokens_per_s", "variant"): (
            f"({Record.TOKENS_PER_SECOND} and {Record.REQUESTS_OK} >= {trap.min_requests})"
        ),
        Input("tokens_per_s", "anchor"): (
            f"({a(Record.TOKENS_PER_SECOND)} and {a(Record.REQUESTS_OK)} >= {trap.min_requests})"
        ),
        Input("energy_j_per_query", "variant"): f"{no_method} ({Record.ENERGY_COMPARED})",
        Input("energy_j_per_query", "anchor"): f"{no_method} ({a(Record.ENERGY_COMPARED)})",
        Input("memory_gb", "variant"): f"({Record.MEMORY} * on ({_MV}) group_right () {rows})",
        Input("memory_gb", "anchor"): (
            f"({Record.ANCHOR_MEMORY} * on ({Label.MODEL}) group_right () {rows})"
        ),
    }


def pillar_selector(name: str, bounded: bool) -> str:
    """The recorded pillar series, as the SI rules read it."""
    b = "true" if bounded else "false"
    return f'{Record.PILLAR}{{{Label.PILLAR}="{name}",{Label.BOUNDED}="{b}"}}'


def _formula_rules(opts: RuleOptions) -> list[Rule]:
    formulas = si_expressions(opts.si_config)
    inputs = _input_promql(opts)
    rules = []
    for name, expr in (
        ("trust", formulas.trust),
        ("economic", formulas.economic),
        ("energy", formulas.energy),
    ):
        labels = {Label.PILLAR: name, Label.BOUNDED: "false"}
        rules.append(_record(Record.PILLAR, render(expr.expr, inputs.__getitem__), labels))
    for name in PILLARS:
        labels = {Label.PILLAR: name, Label.BOUNDED: "true"}
        rules.append(_record(Record.PILLAR, f"clamp({pillar_selector(name, False)}, 0, 1)", labels))
    recorded = {
        name: f"max without ({Label.PILLAR}, {Label.BOUNDED}) ({pillar_selector(name, False)})"
        for name in PILLARS
    }
    rules += [
        _record(Record.SI, render(formulas.si, inputs.__getitem__, recorded)),
        _record(Record.SI_RAW, render(formulas.si_raw, inputs.__getitem__, recorded)),
        _record(Record.COR, render(formulas.cor, inputs.__getitem__)),
        _record(
            Record.ACCURACY_DIFFERENCE, render(formulas.accuracy_difference, inputs.__getitem__)
        ),
        *_shadow_rules(opts),
    ]
    return rules


def _shadow_rules(opts: RuleOptions) -> list[Rule]:
    """Disagreement among comparable shadow answers, per pair of variants and also per the
    primary's agent-hop bucket (does disagreement grow along an agent's chain of calls?)."""
    pair = f"{Label.MODEL}, {Label.PRIMARY}, {Label.VARIANT}"
    rules = []
    for by, compared_name, ratio_name in (
        (pair, Record.SHADOW_COMPARED, Record.SHADOW_DISAGREEMENT),
        (f"{pair}, {Label.HOP_BUCKET}", Record.SHADOW_COMPARED_BY_HOP,
         Record.SHADOW_DISAGREEMENT_BY_HOP),
    ):  # fmt: skip
        compared = window_increase(
            Series.SHADOW_COMPARISONS, by, opts.window, f'{Label.AGREEMENT}=~"agree|disagree"'
        )
        disagree = window_increase(
            Series.SHADOW_COMPARISONS, by, opts.window, f'{Label.AGREEMENT}="disagree"'
        )
        rules += [
            _record(compared_name, compared),
            _record(ratio_name, f"({disagree} or (0 * {compared_name})) / ({compared_name} > 0)"),
        ]
    return rules
