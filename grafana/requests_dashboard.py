"""The request dashboard: latency, tokens, hops, power, errors, failovers and shadow drops.

Everything here is read straight from the proxies' per-request series (summed over
replicas with ``rate``), per variant. Latency quantiles come from the GenAI histograms with
the convention's bucket boundaries, so they are bucket-resolution estimates.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from grafana._panels import (
    LIKE_FOR_LIKE_NOTE,
    PanelIds,
    Query,
    base_dashboard,
    markdown,
    timeseries_panel,
)
from grafana.series import Label, Series

__all__ = ["UID", "requests_dashboard"]

UID = "quanttrap-requests"

_M, _V = Label.MODEL, Label.VARIANT
_RATE = "[$__rate_interval]"
_ERRORS = f'{Label.ERROR_TYPE}!=""'


def _sel(metric: str, extra: str = "") -> str:
    matchers = [f'{_M}=~"$model"', f'{_V}=~"$variant"']
    if extra:
        matchers.append(extra)
    return f"{metric}{{{','.join(matchers)}}}"


def _quantiles(histogram: str) -> list[Query]:
    buckets = f"sum by ({_V}, le) (rate({_sel(histogram + '_bucket')}{_RATE}))"
    return [
        Query(
            f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)} · {{{{quanttrap_variant}}}}"
        )
        for q in (0.5, 0.95)
    ]


def _mean_per_request(histogram: str, legend: str) -> Query:
    total = f"sum by ({_V}) (rate({_sel(histogram + '_sum')}{_RATE}))"
    count = f"sum by ({_V}) (rate({_sel(histogram + '_count')}{_RATE}))"
    return Query(f"{total} / {count}", legend)


def requests_dashboard() -> dashboard.Dashboard:
    ids = PanelIds()
    d = base_dashboard(
        UID,
        "quanttrap · Requests",
        "Per-request latency, tokens, hops, GPU power, errors, failovers and shadow copies.",
        bucket_variable=False,
    )
    d = d.with_panel(markdown(ids, "Read me", LIKE_FOR_LIKE_NOTE))

    d = d.with_row(dashboard.Row("Latency").id(ids()))
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Request duration",
            "gen_ai.server.request.duration: time to the last byte, every outcome.",
            _quantiles(Series.REQUEST_DURATION),
            unit="s",
            span=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Time to first token",
            "gen_ai.server.time_to_first_token (successful responses).",
            _quantiles(Series.TIME_TO_FIRST_TOKEN),
            unit="s",
            span=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Time per output token (latency per hop)",
            "(duration − TTFT) / (output tokens − 1): the inverse of decode TPS. A quantized "
            "variant above the anchor pays casting overhead.",
            _quantiles(Series.TIME_PER_OUTPUT_TOKEN),
            unit="s",
            span=8,
        )
    )

    d = d.with_row(dashboard.Row("Traffic and tokens").id(ids()))
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Requests by role and status",
            "Finished requests per second (primary, shadow, canary; 2xx..5xx).",
            [
                Query(
                    f"sum by ({_V}, {Label.ROLE}, {Label.STATUS_CLASS}) "
                    f"(rate({_sel(Series.REQUESTS)}{_RATE}))",
                    "{{quanttrap_variant}} · {{quanttrap_role}} · {{quanttrap_status_class}}",
                )
            ],
            unit="reqps",
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Tokens per second",
            "Input and output tokens per second (gen_ai.client.token.usage).",
            [
                Query(
                    f"sum by ({_V}, {Label.TOKEN_TYPE}) "
                    f"(rate({_sel(Series.TOKEN_USAGE + '_sum')}{_RATE}))",
                    "{{quanttrap_variant}} · {{gen_ai_token_type}}",
                )
            ],
        )
    )

    d = d.with_row(dashboard.Row("Hops per request").id(ids()))
    for histogram, title, description in (
        (Series.HOPS_ATOMIC, "Atomic hops", "Generated tokens (one forward pass each)."),
        (Series.HOPS_LOGICAL, "Logical hops", "Reasoning steps found in the completion."),
        (Series.HOPS_AGENT, "Agent hops", "Position of the call in an agent's chain."),
    ):
        d = d.with_panel(
            timeseries_panel(
                ids,
                f"{title} (mean per request)",
                description,
                [_mean_per_request(histogram, "{{quanttrap_variant}}")],
                span=8,
                min_value=0,
            )
        )

    d = d.with_row(dashboard.Row("GPU").id(ids()))
    d = d.with_panel(
        timeseries_panel(
            ids,
            "GPU power",
            "Board power per GPU at the last sample (NVML or the nvml-agent). No series: no "
            "GPU is read by these proxies (energy method hli or none).",
            [
                Query(
                    f"max by ({Label.GPU_UUID}, {Label.ENERGY_METHOD}) ({Series.GPU_POWER})",
                    "{{quanttrap_gpu_uuid}} · {{quanttrap_energy_method}}",
                )
            ],
            unit="watt",
            min_value=0,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Energy per request (mean), by method",
            "GPU energy apportioned to one request (idle power excluded).",
            [
                Query(
                    f"sum by ({_V}, {Label.ENERGY_METHOD}) "
                    f"(rate({_sel(Series.REQUEST_ENERGY + '_sum')}{_RATE}))"
                    f" / sum by ({_V}, {Label.ENERGY_METHOD}) "
                    f"(rate({_sel(Series.REQUEST_ENERGY + '_count')}{_RATE}))",
                    "{{quanttrap_variant}} · {{quanttrap_energy_method}}",
                )
            ],
            unit="joule",
            min_value=0,
        )
    )

    d = d.with_row(dashboard.Row("Errors, failovers and shadows").id(ids()))
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Errors by type",
            "Failed requests per second by error.type (OpenAI error types, backend errors).",
            [
                Query(
                    f"sum by ({_V}, {Label.ERROR_TYPE}) "
                    f"(rate({_sel(Series.REQUESTS, _ERRORS)}{_RATE}))",
                    "{{quanttrap_variant}} · {{error_type}}",
                )
            ],
            unit="reqps",
            span=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Failovers",
            "Requests moved to another variant because the first choice failed.",
            [
                Query(
                    f"sum by ({_M}, {Label.FAILOVER_FROM}, {Label.FAILOVER_TO}) (rate("
                    f'{Series.FAILOVERS}{{{_M}=~"$model",{Label.FAILOVER_FROM}=~"$variant"}}'
                    f"{_RATE}))",
                    "{{quanttrap_failover_from}} → {{quanttrap_failover_to}}",
                )
            ],
            unit="reqps",
            span=8,
        )
    )
    d = d.with_panel(
        timeseries_panel(
            ids,
            "Shadow copies by outcome",
            "Shadow copies sent, completed, failed and dropped (dropped: over the shadow "
            "concurrency cap, never delaying the user).",
            [
                Query(
                    f"sum by ({_V}, {Label.SHADOW_OUTCOME}) "
                    f"(rate({_sel(Series.SHADOW_COPIES)}{_RATE}))",
                    "{{quanttrap_variant}} · {{quanttrap_shadow_outcome}}",
                )
            ],
            unit="reqps",
            span=8,
        )
    )
    return d
