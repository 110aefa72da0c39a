"""Building blocks shared by the dashboards (grafana-foundation-sdk builders, configured once).

Every panel queries the dashboard's ``$datasource`` variable; every selector is filtered by
the model / variant (and, on the overview, batch-size bucket) variables, whose "All" value is
``.*``. Panel ids are assigned in order by :class:`PanelIds`, so regenerating the JSON is
byte-for-byte stable.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import (
    common,
    dashboard,
    prometheus,
    stat,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from grafana.series import Label, Series

__all__ = [
    "ALL",
    "DATASOURCE",
    "LIKE_FOR_LIKE_NOTE",
    "PanelIds",
    "Query",
    "base_dashboard",
    "depth_table_panel",
    "markdown",
    "stat_panel",
    "table_panel",
    "timeseries_panel",
]

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
ALL = ".*"

LIKE_FOR_LIKE_NOTE = (
    "**Like for like.** The paper's effects depend on batch size, so every comparison on "
    "this dashboard is made **within one batch-size bucket** (`quanttrap_batch_size_bucket`: "
    "the number of requests the backend was running): a variant is scored only against its "
    "anchor in the same bucket. Read one bucket at a time; `unknown` means the backend did "
    "not report its batch size. Energy is compared by one measurement method at a time, "
    "never a mix; a variant without one shows *not measured*, never 0."
)


class Query:
    """One Prometheus target: expression, legend and whether it is an instant query."""

    def __init__(self, expr: str, legend: str = "", *, instant: bool = False) -> None:
        self.expr = expr
        self.legend = legend
        self.instant = instant


class PanelIds:
    """Hands out panel ids 1, 2, 3 ... in the order panels are added."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> int:
        self._next += 1
        return self._next


def _targets(queries: Sequence[Query]) -> list[Builder[variants.Dataquery]]:
    out: list[Builder[variants.Dataquery]] = []
    for i, q in enumerate(queries):
        target = (
            prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        )
        if q.legend:
            target = target.legend_format(q.legend)
        # Tables read one instant; graphs a range.
        target = target.instant().format(PromQueryFormat.TABLE) if q.instant else target.range()
        out.append(target)
    return out


def base_dashboard(
    uid: str, title: str, description: str, *, bucket_variable: bool
) -> dashboard.Dashboard:
    """A dashboard with the datasource, model, variant (and bucket) variables."""
    matcher = f'{Series.REQUESTS}{{{Label.MODEL}=~"$model"}}'
    variables: list[Builder[model.VariableModel]] = [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        _query_variable("model", "Model", f"label_values({Series.REQUESTS}, {Label.MODEL})"),
        _query_variable("variant", "Variant", f"label_values({matcher}, {Label.VARIANT})"),
    ]
    if bucket_variable:
        variables.append(
            _query_variable(
                "bucket",
                "Batch-size bucket",
                f"label_values({matcher}, {Label.BUCKET})",
            )
        )
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["quanttrap", "llm", "quantization"])
        .editable()
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .variables(variables)
    )


def _query_variable(name: str, label: str, query: str) -> Builder[model.VariableModel]:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def markdown(ids: PanelIds, title: str, content: str, *, height: int = 4) -> text.Panel:
    return text.Panel().id(ids()).title(title).content(content).height(height).span(24)


def timeseries_panel(
    ids: PanelIds,
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str = "none",
    span: int = 12,
    min_value: float | None = None,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .span(span)
        .height(8)
    )
    if min_value is not None:
        panel = panel.min(min_value)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(40)
    return panel


def stat_panel(
    ids: PanelIds,
    title: str,
    description: str,
    query: Query,
    mappings: dict[str, tuple[str, str]],
    *,
    span: int = 12,
) -> stat.Panel:
    """A stat panel whose values are mapped to (text, colour)."""
    options = {
        value: model.ValueMappingResult(text=shown, color=colour, index=i)
        for i, (value, (shown, colour)) in enumerate(mappings.items())
    }
    return (
        stat.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))
        .mappings([model.ValueMap(options=options)])
        .span(span)
        .height(6)
    )


def table_panel(
    ids: PanelIds, title: str, description: str, query: Query, *, span: int = 12
) -> table.Panel:
    return (
        table.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))
        .span(span)
        .height(8)
    )


def depth_table_panel(
    ids: PanelIds,
    title: str,
    description: str,
    queries: Sequence[Query],
    columns: Sequence[str],
    *,
    span: int = 24,
) -> table.Panel:
    """A table of instant queries sharing labels, one column per query (``Value #A`` ...).

    Grafana's ``merge`` joins the queries' rows on their labels; ``organize`` names the value
    columns and hides the evaluation time.
    """
    names = {f"Value #{chr(ord('A') + i)}": column for i, column in enumerate(columns)}
    return (
        table.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .transformations(
            [
                model.DataTransformerConfig(id_val="merge", options={}),
                model.DataTransformerConfig(
                    id_val="organize",
                    options={"excludeByName": {"Time": True}, "renameByName": names},
                ),
            ]
        )
        .unit("percentunit")
        .decimals(3)
        .span(span)
        .height(8)
    )
