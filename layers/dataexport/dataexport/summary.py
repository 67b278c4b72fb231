"""KPI summary exports (seed 003's shape): a dataset's declared sections of metrics, computed
over the export's rows in one PostgreSQL query.

A dataset declares summaries in its catalog entry (`summaries: {kpis: {sections: ...}}`); a
request names one (`"summary": "kpis"`) and keeps its time range, filters and scope (a member
summarizes their own rows). Each metric is a measure (`count`, `count_distinct`, `sum`, `avg`,
`min`, `max`), optionally over only the rows meeting its `where` conditions, or the `ratio` of
two measures (null when the denominator is 0, times 100 with `percent`).

The export is one row whose columns are the metrics, named `section.metric`; the summary
writers (formats/summary_writers.py) lay it out as JSON `{"metadata": ..., "section":
{"metric": value}}` or CSV `Metric,Value` lines, each starting with the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataexport.aggregation import Measure, measure_type
from dataexport.catalog.model import (
    ColumnType,
    Dataset,
    SummaryMetric,
    SummaryRatio,
    SummarySpec,
)
from dataexport.errors import InvalidRequest
from dataexport.filters import FilterClause, parse_filter
from dataexport.formats.writer import OutputColumn

# Values that rounding (decimal_places) changes: whole numbers have no places to drop.
_FRACTIONAL = frozenset({ColumnType.DECIMAL, ColumnType.FLOAT})


@dataclass(frozen=True)
class Metric:
    """One metric of a resolved summary."""

    section: str
    name: str
    label: str
    type: ColumnType
    # A measure over the rows meeting `conditions`, or (None) the ratio of two measures.
    measure: Measure | None
    conditions: tuple[FilterClause, ...] = ()
    ratio: SummaryRatio | None = None
    decimal_places: int | None = None

    @property
    def path(self) -> str:
        """The metric's output column name, `section.metric` (as seed 003's CSV names it)."""
        return f"{self.section}.{self.name}"


@dataclass(frozen=True)
class Summary:
    name: str
    title: str
    description: str
    metrics: tuple[Metric, ...]

    @property
    def paths(self) -> list[str]:
        return [metric.path for metric in self.metrics]

    def output_columns(self) -> list[OutputColumn]:
        return [
            OutputColumn(name=metric.path, label=metric.label, type=metric.type)
            for metric in self.metrics
        ]


def _conditions(dataset: Dataset, metric: SummaryMetric, where: str) -> tuple[FilterClause, ...]:
    clauses = []
    for index, condition in enumerate(metric.where):
        try:
            clauses.append(parse_filter(condition.model_dump(mode="json"), index, dataset))
        except InvalidRequest as exc:
            # The catalog's own mistake, found when it loads: named by its place in the file.
            place = exc.detail.get("field", "").replace("filters[", "where[", 1)
            raise ValueError(f"{where}.{place}: {exc.message}") from None
    return tuple(clauses)


def _metric_type(dataset: Dataset, metric: SummaryMetric) -> ColumnType:
    if metric.ratio is not None:
        return ColumnType.DECIMAL
    if metric.function is None:
        raise ValueError("a metric without a function or a ratio")
    measured = measure_type(dataset, metric.function, metric.field)
    if metric.decimal_places is not None and measured in _FRACTIONAL:
        return ColumnType.DECIMAL  # rounded in PostgreSQL's numeric
    return measured


def _resolve(dataset: Dataset, spec: SummarySpec, name: str) -> Summary:
    metrics = []
    for section, items in spec.sections.items():
        for metric_name, metric in items.items():
            where = f"summaries.{name}.sections.{section}.{metric_name}"
            metric_type = _metric_type(dataset, metric)
            if metric.decimal_places is not None and metric_type is not ColumnType.DECIMAL:
                raise ValueError(
                    f"{where}.decimal_places: the metric is {metric_type}, with no places to round"
                )
            measure = None
            if metric.function is not None:
                measure = Measure(metric.function, metric.field, metric_name)
            metrics.append(
                Metric(
                    section=section,
                    name=metric_name,
                    label=metric.label or metric_name.replace("_", " ").capitalize(),
                    type=metric_type,
                    measure=measure,
                    conditions=_conditions(dataset, metric, where),
                    ratio=metric.ratio,
                    decimal_places=metric.decimal_places,
                )
            )
    return Summary(
        name=name, title=spec.title, description=spec.description, metrics=tuple(metrics)
    )


def summary_problems(dataset: Dataset) -> list[str]:
    """What the catalog's model cannot check of a dataset's summaries: that each condition's
    value has its column's type, and that rounding is asked only of numbers."""
    problems = []
    for name, spec in dataset.summaries.items():
        try:
            _resolve(dataset, spec, name)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def resolve_summary(dataset: Dataset, name: str) -> Summary:
    """The summary `name` of `dataset`; InvalidRequest naming `summary` if it has none."""
    spec = dataset.summaries.get(name)
    if spec is None:
        offered = ", ".join(dataset.summaries) or "none"
        raise InvalidRequest(
            "summary",
            f"Dataset {dataset.name!r} has no summary {name!r}; summaries: {offered}.",
            {"allowed": list(dataset.summaries)},
        )
    return _resolve(dataset, spec, name)
