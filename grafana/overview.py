"""The overview dashboard: is each quantized variant a win or a trap, and how sure are we?

Fleet-wide numbers come from the recording rules (``quanttrap:*``, every replica summed);
intervals, regimes and trap flags from the proxies' own live scorer (``quanttrap_*`` gauges,
per replica: the panels take the min / max across replicas). Accuracy **by reasoning depth**
is computed in the panel's own PromQL from the graded-evaluation counter's depth-bucket label
(the canary item's depth, the client's ``X-Quanttrap-Depth`` / ``metadata.reference_depth``,
else what the reference shows), with the Wilson interval of :func:`scoring.stats.wilson_interval`
written out, over the dashboard's time range.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from grafana._panels import (
    LIKE_FOR_LIKE_NOTE,
    PanelIds,
    Query,
    base_dashboard,
    depth_table_panel,
    markdown,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from grafana.recording import window_increase
from grafana.series import Label, Record, Series
from scoring.stats import z_critical

__all__ = ["UID", "depth_accuracy_queries", "overview_dashboard"]

UID = "quanttrap-overview"

_M, _V, _B = Label.MODEL, Label.VARIANT, Label.BUCKET
_ROW_BY = f"{_M}, {_V}, {_B}"
_LEGEND = "{{quanttrap_variant}} · bucket {{quanttrap_batch_size_bucket}}"
_DEPTH_BY = f"{_M}, {_V}, {Label.DEPTH_BUCKET}"
_Z2_HALF = repr(z_critical(0.95) ** 2 / 2)


def _sel(metric: str, extra: str = "", *, bucket: bool = True) -> str:
    matchers = [f'{_M}=~"$model"', f'{_V}=~"$variant"']
    if bucket:
        matchers.append(f'{_B}=~"$bucket"')
    if extra:
        matchers.append(extra)
    return f"{metric}{{{','.join(matchers)}}}"


def _matchers(extra: str = "") -> str:
    found = [f'{_M}=~"$model"', f'{_V}=~"$variant"', f'{_B}=~"$bucket"']
    return ",".join([*found, extra] if extra else found)


def depth_accuracy_queries() -> tuple[str, str, str]:
    """Accuracy, Wilson 95 % low and high per (model, variant, depth bucket), over the range.

    ``n`` graded and ``c`` correct evaluations in ``$__range`` (summed over replicas, roles,
    datasets and batch-size buckets). :func:`scoring.stats.wilson_interval`'s
    ``(p + z²/2n ± z·sqrt(p(1 − p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = c / n``, multiplied
    through by ``n``, is ``(c + z²/2 ± z·sqrt(c(n − c)/n + z²/4)) / (n + z²)``: each count
    written out fewer times. Clipped to [0, 1] as there.
    """
    w = "$__range"
    n = f"({window_increase(Series.EVAL_GRADED, _DEPTH_BY, w, _matchers())} > 0)"
    correct = window_increase(
        Series.EVAL_GRADED, _DEPTH_BY, w, _matchers(f'{Label.OUTCOME}="correct"')
    )
    c = f"({correct} or (0 * {n}))"  # no "correct" series: 0 right, not absent
    z = z_critical(0.95)
    centre = f"({c} + {_Z2_HALF})"
    half = f"({z!r} * sqrt({c} * ({n} - {c}) / {n} + {z * z / 4!r}))"
    low = f"clamp_min(({centre} - {half}) / ({n} + {z * z!r}), 0)"
    high = f"clamp_max(({centre} + {half}) / ({n} + {z * z!r}), 1)"
    return f"{c} / {n}", low, high


def overview_dashboard() -> dashboard.Dashboard:
    ids = PanelIds()
    d = base_dashboard(
        UID,
        "quanttrap · Sustainability Index",
        "SI, pillars, COR, regimes and evidence per precision variant, against the anchor.",
        bucket_variable=True,
    )
    d = d.with_panel(markdown(ids, "Read me", LIKE_FOR_LIKE_NOTE))

    d = d.with_row(dashboard.Row("Sustainability Index (fleet-wide)").id(ids()))
    d = d.with_panel(
        timeseries_panel(
            ids,
            "SI per variant",
            "Fleet-wide SI over bounded pillars (recording rule), with the lowest and highest "
            "ends of the proxies' own confidence intervals.",
            [
                Query(_sel(Record.SI), _LEGEND),
                Query(f"min by ({_ROW_BY}) ({_sel(Series.SI_LOW)})", "low · " + _LEGEND),
                Query(f"max by ({_ROW_BY}) ({_sel(Series.SI_HIGH)})", "high · " + _LEGEND),
            ],
            min_value=0,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Casting overhead ratio (COR)",
            "TPS_anchor / TPS_variant − 1. Above 0: slower than the anchor; above 1: more "
            "time casting than computing.",
            [Query(_sel(Record.COR), _LEGEND)],
        )
    )
    for bounded, title, description in (
        ("false", "Pillars (raw)", "Trust, economic and energy pillars before clipping: above "
         "1 means the variant beats the anchor on that pillar, by that factor."),
        ("true", "Pillars (bounded to [0, 1], as the SI uses them)", "The pillars the SI "
         "aggregates (clipped to the bounded sustainability space)."),
    ):  # fmt: skip
        d = d.with_panel(
            timeseries_panel(
                ids,
                title,
                description,
                [
                    Query(
                        _sel(Record.PILLAR, f'{Label.BOUNDED}="{bounded}"'),
                        "{{quanttrap_pillar_name}} · " + _LEGEND,
                    )
                ],
                min_value=0,
            )
        )

    d = d.with_row(dashboard.Row("Regime and trap").id(ids()))
    d = d.with_panel(
        table_panel(
            ids,
            "Regime now",
            "The latched regime of each variant and bucket (anchor, full_trap, "
            "efficiency_trap, accuracy_trap, no_trap, undetermined), per proxy.",
            Query(
                f"max by ({_ROW_BY}, {Label.REGIME}) ({_sel(Series.REGIME)}) == 1",
                instant=True,
            ),
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Quantization trap flag",
            "1 while a significant trap (full or efficiency) is latched on any proxy.",
            Query(f"max by ({_ROW_BY}) ({_sel(Series.TRAP)})", _LEGEND),
            {"0": ("no trap", "green"), "1": ("TRAP", "red")},
        )
    )

    d = d.with_row(dashboard.Row("Energy").id(ids()))
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Energy per query (fleet-wide), by method",
            "Mean GPU energy apportioned to one request, per measurement method (never mixed).",
            [
                Query(
                    _sel(Record.ENERGY_PER_QUERY),
                    _LEGEND + " · {{quanttrap_energy_method}}",
                )
            ],
            unit="joule",
            min_value=0,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Energy method in use",
            "How each variant's energy is measured now: nvml_counter, nvml_power, hli, or "
            "none (not measured: no energy figure, no energy pillar, no SI).",
            Query(
                f"max by ({_M}, {_V}, {Label.ENERGY_METHOD}) "
                f"({_sel(Series.ENERGY_METHOD_INFO, bucket=False)}) == 1",
                instant=True,
            ),
        )
    )

    d = d.with_row(dashboard.Row("Accuracy").id(ids()))
    accuracy, low, high = depth_accuracy_queries()
    d = d.with_panel(
        depth_table_panel(
            ids,
            "Accuracy by reasoning depth",
            "Graded accuracy per reasoning-depth bucket (steps the reference needs: the "
            "canary item's, the client's X-Quanttrap-Depth / metadata.reference_depth, else "
            "what the reference shows; unknown otherwise) with its Wilson 95 % interval, over "
            "the dashboard's time range, all replicas. Compare a variant with its anchor "
            "bucket by bucket: a trap often opens at depth.",
            [Query(accuracy, instant=True), Query(low, instant=True), Query(high, instant=True)],
            ("accuracy", "Wilson low", "Wilson high"),
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Accuracy with Wilson interval",
            "Fleet-wide graded accuracy (recording rule) and the proxies' Wilson interval ends.",
            [
                Query(_sel(Record.ACCURACY), _LEGEND),
                Query(f"min by ({_ROW_BY}) ({_sel(Series.ACCURACY_LOW)})", "low · " + _LEGEND),
                Query(f"max by ({_ROW_BY}) ({_sel(Series.ACCURACY_HIGH)})", "high · " + _LEGEND),
            ],
            unit="percentunit",
            min_value=0,
            span=24,
        )
    )
    d = d.with_row(dashboard.Row("Evidence and traffic mix").id(ids()))
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Batch-size mix",
            "Requests per second by batch-size bucket: compare variants where they overlap.",
            [
                Query(
                    f"sum by ({_V}, {_B}) (rate({_sel(Series.REQUESTS)}[$__rate_interval]))",
                    _LEGEND,
                )
            ],
            unit="reqps",
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Samples in the live window",
            "Requests, graded evaluations, speed and energy samples behind each estimate "
            "(summed over proxies).",
            [
                Query(
                    f"sum by ({_ROW_BY}, {Label.SAMPLES}) ({_sel(Series.WINDOW_SAMPLES)})",
                    "{{quanttrap_samples_kind}} · " + _LEGEND,
                )
            ],
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Shadow agreement",
            "Share of shadow answers equal to the primary's final answer: fleet-wide "
            "(recording rule) and per proxy (with its Wilson interval on the status page).",
            [
                Query(
                    f"1 - {_sel(Record.SHADOW_DISAGREEMENT, bucket=False)}",
                    "fleet · {{quanttrap_primary_variant}} → {{quanttrap_variant}}",
                ),
                Query(
                    f"min by ({_M}, {Label.PRIMARY}, {_V}) "
                    f"({_sel(Series.SHADOW_AGREEMENT, bucket=False)})",
                    "proxy (min) · {{quanttrap_primary_variant}} → {{quanttrap_variant}}",
                ),
            ],
            unit="percentunit",
            min_value=0,
        )
    )
    pair = f"{_M}, {Label.PRIMARY}, {_V}"
    not_agreed = _sel(Series.SHADOW_COMPARISONS, f'{Label.SHADOW_VERDICT}!="agree"', bucket=False)
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Shadow disagreement by agent hop",
            "Share of comparable shadow answers (text, or tool calls when the primary called "
            "tools) that differ from the primary's, by the primary's agent-hop position "
            "(assistant round trips before the call), fleet-wide over the SI window. Hop 0 "
            "also holds single-call chat. Whether disagreement grows after the first hop, "
            "with an anytime-valid interval, is on the status page (hop_trend).",
            [
                Query(
                    _sel(Record.SHADOW_DISAGREEMENT_BY_HOP, bucket=False),
                    "{{quanttrap_primary_variant}} → {{quanttrap_variant}} · hop "
                    "{{quanttrap_agent_hop_bucket}}",
                )
            ],
            unit="percentunit",
            span=6,
            min_value=0,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "What the shadow answers got wrong",
            "Shadow comparisons that disagreed or could not be compared, by what differed: "
            "text_disagree, wrong_tool, wrong_arguments, missing_call, extra_call, "
            "text_instead_of_call, call_instead_of_text, unknown (summed over proxies).",
            [
                Query(
                    f"sum by ({pair}, {Label.SHADOW_VERDICT}) "
                    f"(increase({not_agreed}[$__rate_interval]))",
                    "{{quanttrap_shadow_verdict}} · {{quanttrap_primary_variant}} → "
                    "{{quanttrap_variant}}",
                )
            ],
            span=6,
            min_value=0,
            stacked=True,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Graded evaluations in the window (fleet-wide)",
            "Graded evaluations per variant and bucket over the SI window.",
            [Query(_sel(Record.GRADED), _LEGEND)],
            min_value=0,
        )
    )
    return d
