"""Alerting rules: quantization traps, energy, accuracy, shadows and the canary loop.

Every trap, energy and accuracy alert reads the proxy's own **anytime-valid verdicts**
(:mod:`scoring.verdicts`): ``quanttrap_trap`` (the latched flag) with ``quanttrap_regime``, and
``quanttrap_verdict`` per question — confidence sequences over the verdict epoch, beyond the
practical-significance margins — never a raw ratio or a per-evaluation test, and keep a
``for:`` on top. Across replicas the rules take the ``max`` (any replica's verdict): each
replica's verdicts hold at ``scoring.confidence`` on its own evidence, so with ``R`` replicas
a no-trap variant is flagged by some replica with probability up to ``R`` times the level
(set ``scoring.confidence`` to ``1 − α/R`` to keep ``α`` for the fleet). Recomputing the
sequences fleet-wide in PromQL is not done: it would need per-epoch sums of squares that the
counters do not carry, and replicas' epochs do not start together. The fleet-wide recording
rules (:mod:`grafana.recording`) supply the numbers quoted in the descriptions and the shadow
checks. Every alert has ``summary``, ``description``, ``severity`` and a ``runbook_url`` into
``docs/runbooks/`` (one page per alert, named after it).
"""

from __future__ import annotations

from typing import Any

from grafana.options import RuleOptions
from grafana.recording import pillar_selector
from grafana.series import Label, Record, Series

__all__ = ["ALERTS", "alerting_groups"]

ALERTS = (
    "QuanttrapFullTrap",
    "QuanttrapEfficiencyTrap",
    "QuanttrapEnergyInversion",
    "QuanttrapAccuracyDrop",
    "QuanttrapShadowDisagreement",
    "QuanttrapAgentDisagreementGrows",
    "QuanttrapEnergyTelemetryMissing",
    "QuanttrapCanaryStalled",
)
"""Every alert, in the order of the rule file; each has ``docs/runbooks/<name>.md``."""

_ROW = f"{Label.MODEL}, {Label.VARIANT}, {Label.BUCKET}"
_MV = f"{Label.MODEL}, {Label.VARIANT}"
_WHERE = (
    "{{ $labels.quanttrap_variant }} of {{ $labels.gen_ai_request_model }}"
    " (batch bucket {{ $labels.quanttrap_batch_size_bucket }})"
)


def alerting_groups(options: RuleOptions) -> list[dict[str, Any]]:
    """The alert group (Prometheus rule-file format)."""
    rules = [
        _trap_alert(options, "full_trap"),
        _trap_alert(options, "efficiency_trap"),
        _energy_inversion(options),
        _accuracy_drop(options),
        _shadow_disagreement(options),
        _agent_disagreement_grows(options),
        _energy_missing(options),
        _canary_stalled(options),
    ]
    assert tuple(r["alert"] for r in rules) == ALERTS
    return [{"name": "quanttrap.alerts", "rules": rules}]


def _alert(
    opts: RuleOptions,
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": opts.for_(for_),
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{opts.runbook_base.rstrip('/')}/{name}.md",
        },
    }


def _fleet(selector: str, fmt: str) -> str:
    """A template snippet quoting a fleet-wide recorded value for the alert's row.

    ``selector`` is a series name with matchers but without the closing brace; the row's
    model, variant and bucket are appended. Absent → "not measured", never a zero.
    """
    query = f"{selector}{Label.MODEL}=%q,{Label.VARIANT}=%q,{Label.BUCKET}=%q}}"
    return (
        f"{{{{ with printf `{query}` $labels.{Label.MODEL} $labels.{Label.VARIANT}"
        f" $labels.{Label.BUCKET} | query }}}}{{{{ . | first | value | {fmt} }}}}"
        "{{ else }}not measured{{ end }}"
    )


def _numbers() -> str:
    energy = pillar_selector("energy", False).rstrip("}") + ","
    return (
        "Fleet-wide over the window: accuracy "
        + _fleet(f"{Record.ACCURACY_DIFFERENCE}{{", "humanizePercentage")
        + " vs the anchor, COR "
        + _fleet(f"{Record.COR}{{", 'printf "%.2f"')
        + ", energy per query "
        + _fleet(f"1 / {energy}", 'printf "%.2fx"')
        + " the anchor's, SI "
        + _fleet(f"{Record.SI}{{", 'printf "%.3f"')
        + "."
    )


def _trap_alert(opts: RuleOptions, regime: str) -> dict[str, Any]:
    expr = (
        f"max by ({_ROW}) (\n"
        f"  ({Series.TRAP} == 1)\n"
        f"  and ignoring ({Label.REGIME})\n"
        f'  ({Series.REGIME}{{{Label.REGIME}="{regime}"}} == 1)\n'
        ")"
    )
    if regime == "full_trap":
        return _alert(
            opts,
            "QuanttrapFullTrap",
            expr,
            "5m",
            "critical",
            f"{_WHERE} is in a full quantization trap",
            "Less accurate than the anchor AND slower or more energy per query, each "
            "significant at the proxy's confidence level and held for several recomputations: "
            "the quantized variant costs more and answers worse. " + _numbers(),
        )
    return _alert(
        opts,
        "QuanttrapEfficiencyTrap",
        expr,
        "15m",
        "warning",
        f"{_WHERE} is in an efficiency trap",
        "As accurate as the anchor but significantly slower or more energy per query: the "
        "casting (de-quantization) overhead outweighs the bandwidth saved at this batch size. "
        + _numbers(),
    )


def _verdict(question: str) -> str:
    """The proxies' anytime-valid answer to ``question``, any replica (1 = yes)."""
    return f'max by ({_ROW}) (\n  {Series.VERDICT}{{{Label.QUESTION}="{question}"}}\n) == 1'


def _energy_inversion(opts: RuleOptions) -> dict[str, Any]:
    margin = opts.scoring.trap.energy_tolerance
    return _alert(
        opts,
        "QuanttrapEnergyInversion",
        _verdict("more_energy"),
        "5m",
        "warning",
        f"{_WHERE} spends more than {1 + margin:g}x the anchor's energy per query",
        "The proxy's anytime-valid verdict: the whole confidence sequence of the variant's "
        f"energy per query over the anchor's (same bucket, same method) lies above {1 + margin:g} "
        f"(the {margin:.0%} margin, trap.energy_tolerance), at scoring.confidence "
        f"{opts.scoring.confidence:g} per variant, bucket and epoch: lower precision is costing "
        "energy, not saving it. " + _numbers(),
    )


def _accuracy_drop(opts: RuleOptions) -> dict[str, Any]:
    delta = opts.scoring.trap.accuracy_tolerance
    return _alert(
        opts,
        "QuanttrapAccuracyDrop",
        _verdict("less_accurate"),
        "5m",
        "warning",
        f"{_WHERE} is less accurate than the anchor by more than {delta:g}",
        "The proxy's anytime-valid verdict: the whole confidence sequence of the accuracy "
        f"difference (paired shadow or canary verdicts, or unpaired graded traffic) lies below "
        f"-{delta:g} (absolute, trap.accuracy_tolerance), at scoring.confidence "
        f"{opts.scoring.confidence:g} per variant, bucket and epoch. " + _numbers(),
    )


def _shadow_disagreement(opts: RuleOptions) -> dict[str, Any]:
    share = opts.shadow_disagreement
    expr = (
        f"{Record.SHADOW_DISAGREEMENT} > {share!r}\n"
        f"and {Record.SHADOW_COMPARED} >= {opts.min_comparisons}"
    )
    return _alert(
        opts,
        "QuanttrapShadowDisagreement",
        expr,
        "15m",
        "warning",
        "Shadow {{ $labels.quanttrap_variant }} disagrees with "
        "{{ $labels.quanttrap_primary_variant }} on {{ $value | humanizePercentage }} of answers",
        f"More than {share:.0%} of the comparable shadow answers of "
        "{{ $labels.gen_ai_request_model }} differ from the primary's final answer, over at "
        f"least {opts.min_comparisons} comparisons in the window.",
    )


def _agent_disagreement_grows(opts: RuleOptions) -> dict[str, Any]:
    pair = f"{Label.MODEL}, {Label.PRIMARY}, {Label.VARIANT}"
    return _alert(
        opts,
        "QuanttrapAgentDisagreementGrows",
        f"max by ({pair}) ({Series.SHADOW_HOP_TREND}) == 1",
        "15m",
        "warning",
        "Shadow {{ $labels.quanttrap_variant }} disagrees with "
        "{{ $labels.quanttrap_primary_variant }} more after the first agent hop",
        "The proxy's anytime-valid trend: the whole confidence sequence of the disagreement "
        "rate at agent hops >= 1 minus at hop 0 lies above 0, at scoring.confidence "
        f"{opts.scoring.confidence:g}, since the verdict epoch started (tool calls compared "
        "as tool calls). Errors compound along the agent's chain of calls; see the status "
        "page's agent-hop table for the rates per hop and what differed.",
    )


def _energy_missing(opts: RuleOptions) -> dict[str, Any]:
    info, w = Series.ENERGY_METHOD_INFO, opts.window
    method = Label.ENERGY_METHOD
    lost = (
        f'max by ({_MV}) ({info}{{{method}="none"}}) == 1\n'
        f"  and on ({_MV})\n"
        f'  max by ({_MV}) (max_over_time({info}{{{method}!="none"}}[{opts.energy_lookback}]))'
        " == 1"
    )
    silent = (
        f'sum by ({_MV}) (increase({Series.REQUESTS}{{{Label.STATUS_CLASS}="2xx"}}[{w}])) > 0\n'
        f'  and on ({_MV}) max by ({_MV}) ({info}{{{method}!="none"}}) == 1\n'
        f"  unless on ({_MV}) sum by ({_MV}) (increase({Series.REQUEST_ENERGY}_count[{w}])) > 0"
    )
    parts = [lost, silent]
    if opts.energy_expected:
        parts.append(
            f'max by ({_MV}) ({info}{{{method}="none",{Label.VARIANT}=~"{opts.energy_expected}"}})'
            " == 1"
        )
    expr = f"\nor on ({_MV})\n".join(f"(\n  {p}\n)" for p in parts)
    return _alert(
        opts,
        "QuanttrapEnergyTelemetryMissing",
        expr,
        "10m",
        "warning",
        "Energy of {{ $labels.quanttrap_variant }} of {{ $labels.gen_ai_request_model }} "
        "is not being measured",
        "The variant's energy method is `none` although it was metered before (or is expected "
        "to be), or it serves requests and none of them got an energy figure. The energy "
        "pillar, the SI and the energy alerts for it are blind until this is fixed.",
    )


def _canary_stalled(opts: RuleOptions) -> dict[str, Any]:
    probes, outcome, stall = Series.CANARY_PROBES, Label.CANARY_OUTCOME, opts.canary_stall
    completed = f'{probes}{{{outcome}="completed"}}'
    expr = (
        f"sum by ({_MV}) (increase({completed}[{stall}])) == 0\n"
        f"or on ({_MV})\n"
        f'(sum by ({_MV}) (increase({probes}{{{outcome}="sent"}}[{stall}])) > 0\n'
        f" unless on ({_MV}) {completed})"
    )
    return _alert(
        opts,
        "QuanttrapCanaryStalled",
        expr,
        "5m",
        "warning",
        "No canary probe of {{ $labels.quanttrap_variant }} of "
        "{{ $labels.gen_ai_request_model }} completed for " + stall,
        "The proxy's own evaluation traffic has stopped reaching this variant (probes fail, "
        "or are always skipped because the variant is busy): accuracy, and so the trust "
        "pillar and trap detection, is going stale.",
    )
