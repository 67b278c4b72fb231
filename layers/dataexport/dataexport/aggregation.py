"""Aggregated exports: rows grouped by a time bucket and dimensions, with measures per group.

What a dataset may group by and compute is declared in its catalog entry (`aggregations`); a
request picks from that. PostgreSQL computes the groups (query_builder.build_aggregate_select)
and the result streams through the writers like any other export, one row per group, ordered by
the bucket and then the dimensions.

Output columns: the bucket (named after it: `day`, typed like the time column), then the
dimensions (as the catalog declares them), then the measures, named `<function>_<field>` (or
`count` for rows per group) unless the request names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from dataexport.catalog.model import (
    COUNTING_MEASURES,
    IDENTIFIER_PATTERN,
    ColumnType,
    Dataset,
    MeasureFunction,
)
from dataexport.errors import InvalidRequest
from dataexport.formats.writer import OutputColumn

MAX_DIMENSIONS = 20
MAX_MEASURES = 50


class TimeBucket(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # ISO weeks: from Monday
    MONTH = "month"


FUNCTION_LABELS = {
    MeasureFunction.SUM: "Sum of",
    MeasureFunction.AVG: "Average",
    MeasureFunction.MIN: "Minimum",
    MeasureFunction.MAX: "Maximum",
    MeasureFunction.COUNT: "Count of",
    MeasureFunction.COUNT_DISTINCT: "Distinct",
}


class MeasureInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: MeasureFunction
    field: str | None = Field(
        default=None, max_length=128, description="The column; none with count: rows per group."
    )
    name: str | None = Field(default=None, max_length=63, description="Output column name.")


class AggregateInput(BaseModel):
    """`aggregate` of POST /v1/exports: one row per group instead of one per source row."""

    model_config = ConfigDict(extra="forbid")

    time_bucket: TimeBucket | None = Field(
        default=None, description="Group by the time column cut into hours, days, weeks or months."
    )
    group_by: list[str] = Field(default_factory=list, max_length=MAX_DIMENSIONS)
    measures: list[MeasureInput] = Field(min_length=1, max_length=MAX_MEASURES)


@dataclass(frozen=True)
class Measure:
    function: MeasureFunction
    column: str | None  # None: count of rows
    name: str


@dataclass(frozen=True)
class Aggregation:
    """A checked aggregate request: what to group by and compute, and the output's names."""

    time_bucket: TimeBucket | None
    dimensions: tuple[str, ...]
    measures: tuple[Measure, ...]

    @property
    def output_names(self) -> list[str]:
        bucket = [self.time_bucket.value] if self.time_bucket else []
        return [*bucket, *self.dimensions, *(measure.name for measure in self.measures)]


def measure_type(dataset: Dataset, function: MeasureFunction, column: str | None) -> ColumnType:
    """The type of `function` over `column` (None: rows)."""
    if column is None or function in COUNTING_MEASURES:
        return ColumnType.INTEGER
    column_type = dataset.column(column).type
    if function is MeasureFunction.AVG and column_type is ColumnType.INTEGER:
        return ColumnType.DECIMAL
    return column_type


def output_columns(dataset: Dataset, aggregation: Aggregation) -> list[OutputColumn]:
    columns = []
    if aggregation.time_bucket is not None and dataset.time_column is not None:
        columns.append(
            OutputColumn(
                name=aggregation.time_bucket.value,
                label=aggregation.time_bucket.value.title(),
                type=dataset.column(dataset.time_column).type,
            )
        )
    for name in aggregation.dimensions:
        column = dataset.column(name)
        columns.append(OutputColumn(name=column.name, label=column.label, type=column.type))
    for measure in aggregation.measures:
        if measure.column is None:
            label = "Rows"
        else:
            label = f"{FUNCTION_LABELS[measure.function]} {dataset.column(measure.column).label}"
        columns.append(
            OutputColumn(
                name=measure.name,
                label=label,
                type=measure_type(dataset, measure.function, measure.column),
            )
        )
    return columns


def _resolve_bucket(dataset: Dataset, bucket: TimeBucket | None) -> TimeBucket | None:
    if bucket is None:
        return None
    if dataset.time_column is None:
        raise InvalidRequest(
            "aggregate.time_bucket", f"Dataset {dataset.name!r} has no time column to bucket."
        )
    if bucket is TimeBucket.HOUR and dataset.column(dataset.time_column).type is ColumnType.DATE:
        raise InvalidRequest(
            "aggregate.time_bucket", f"Dataset {dataset.name!r} has dates: hours do not apply."
        )
    return bucket


def _resolve_measure(dataset: Dataset, raw: MeasureInput, index: int) -> Measure:
    where = f"aggregate.measures[{index}]"
    allowed = dataset.aggregations.measures if dataset.aggregations else {}
    if raw.field is None:
        if raw.function is not MeasureFunction.COUNT:
            raise InvalidRequest(f"{where}.field", f"{raw.function.value} needs a field.")
        column = None
        default_name = "count"
    else:
        if raw.function not in allowed.get(raw.field, []):
            usable = sorted(
                f"{function.value}({name})"
                for name, functions in allowed.items()
                for function in functions
            )
            raise InvalidRequest(
                f"{where}.field",
                f"{raw.function.value} of {raw.field!r} is not offered by dataset "
                f"{dataset.name!r}.",
                {"allowed": ["count", *usable]},
            )
        column = raw.field
        default_name = f"{raw.function.value}_{raw.field}"
    name = raw.name or default_name
    if not IDENTIFIER_PATTERN.fullmatch(name):
        raise InvalidRequest(
            f"{where}.name",
            f"Output name {name!r} must be lowercase letters, digits and '_', at most 63 "
            "characters, starting with a letter or '_'.",
        )
    return Measure(function=raw.function, column=column, name=name)


def resolve_aggregation(dataset: Dataset, raw: AggregateInput) -> Aggregation:
    """Check an aggregate request against what the dataset declares; InvalidRequest names the
    bad part."""
    if dataset.aggregations is None:
        raise InvalidRequest(
            "aggregate", f"Dataset {dataset.name!r} does not offer aggregated exports."
        )
    offered = dataset.aggregations.dimensions
    unknown = [name for name in raw.group_by if name not in offered]
    if unknown:
        raise InvalidRequest(
            "aggregate.group_by",
            f"Dataset {dataset.name!r} cannot be grouped by {', '.join(unknown)}.",
            {"unknown": unknown, "allowed": list(offered)},
        )
    aggregation = Aggregation(
        time_bucket=_resolve_bucket(dataset, raw.time_bucket),
        dimensions=tuple(raw.group_by),
        measures=tuple(
            _resolve_measure(dataset, measure, index) for index, measure in enumerate(raw.measures)
        ),
    )
    names = aggregation.output_names
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidRequest(
            "aggregate", f"Output column(s) named twice: {', '.join(repeated)}; rename a measure."
        )
    return aggregation
