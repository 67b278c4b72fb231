"""The one place SQL is built.

Identifiers come only from the catalog (validated lowercase names, always double-quoted); every
value, including the tenant and owner, is a bound parameter in pg8000.native's named style
(`:p0`, `:p1`...). Parameters are sent untyped, so PostgreSQL infers each one's type from the
column it is compared with: `"status_code" = ANY(:p0)` binds a Python list as an integer array.

Semantics worth knowing:
- `ne` and `not_in` keep rows where the column is NULL ("everything except 200" includes rows
  without a status), unlike SQL's bare `<>`.
- The time window is half-open: `time >= start AND time < end`.
- The order is the dataset's default_sort, with the key appended as the last tie-breaker (in the
  direction of the last sort column, so one index serves the whole ORDER BY).
- `owner_id` restricts rows only on datasets with an owner_column; a dataset without one is
  tenant-wide for every role its `roles` allow.
- Children (see nesting) are joined LATERAL, one subquery per child over its table (aliased
  CHILD_ROWS, so the parent's columns stay reachable by the parent's qualified name), scoped to
  the caller's tenant and the parent's key. The catalog guarantees their output names never
  clash with the parent's columns, so the parent's conditions keep their bare names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataexport import sql_rendering
from dataexport.aggregation import Aggregation, Measure, TimeBucket
from dataexport.catalog.model import (
    IDENTIFIER_PATTERN,
    ChildDataset,
    ColumnType,
    Dataset,
    FilterOperator,
    MeasureFunction,
    PrivacyTransform,
    SortDirection,
    SortSpec,
)
from dataexport.errors import InvalidRequest, QueryFailed
from dataexport.filters import FilterClause, TimeWindow, check_clause, checked_fields
from dataexport.nesting import ChildShape, Nesting
from dataexport.privacy_sql import SessionSettings, rewritten
from dataexport.sql_rendering import SourceType
from dataexport.summary import Metric, Summary

LIKE_ESCAPE = "\\"
# The alias of an aggregated export's groups, the rows its outer query renders and orders.
AGGREGATED = '"aggregated"'
# The alias of a child dataset's table inside the subquery that reads it.
CHILD_ROWS = '"child_rows"'


@dataclass(frozen=True)
class BoundQuery:
    """SQL text with `:name` placeholders and the values to bind to them, and any settings
    its session needs (the privacy profile's key material, never part of the text)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    settings: SessionSettings | None = None


@dataclass(frozen=True)
class RowScope:
    """The rows a caller may read: one tenant, and one owner for non-admins (None = all)."""

    org_id: str
    owner_id: str | None = None

    def __post_init__(self) -> None:
        if not self.org_id:
            raise ValueError("a row scope needs a tenant")
        if self.owner_id == "":
            raise ValueError("owner_id must be None (whole tenant) or a user id")


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier; only catalog-shaped names are accepted."""
    if not IDENTIFIER_PATTERN.fullmatch(name):
        raise ValueError(f"{name!r} is not a catalog identifier")
    return f'"{name}"'


def escape_like(text: str) -> str:
    """`text` with LIKE's wildcards and the escape character taken literally."""
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


class _Parameters:
    """Hands out placeholder names for values, in order."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f":{name}"


def _source(dataset: Dataset) -> str:
    source = dataset.source
    return f"{quote_identifier(source.schema_name)}.{quote_identifier(source.table)}"


def _filter_condition(
    dataset: Dataset, clause: FilterClause, index: int, params: _Parameters
) -> str:
    check_clause(dataset, clause, index)
    column = quote_identifier(clause.column)
    op = clause.op
    value = clause.value
    if op is FilterOperator.EQ:
        return f"{column} = {params.bind(value)}"
    if op is FilterOperator.NE:
        return f"{column} IS DISTINCT FROM {params.bind(value)}"
    if op is FilterOperator.IN:
        return f"{column} = ANY({params.bind(list(value))})"
    if op is FilterOperator.NOT_IN:
        return f"({column} IS NULL OR {column} <> ALL({params.bind(list(value))}))"
    if op is FilterOperator.GT:
        return f"{column} > {params.bind(value)}"
    if op is FilterOperator.GTE:
        return f"{column} >= {params.bind(value)}"
    if op is FilterOperator.LT:
        return f"{column} < {params.bind(value)}"
    if op is FilterOperator.LTE:
        return f"{column} <= {params.bind(value)}"
    if op is FilterOperator.BETWEEN:
        low, high = value
        return f"{column} BETWEEN {params.bind(low)} AND {params.bind(high)}"
    if op is FilterOperator.IS_NULL:
        return f"{column} IS NULL" if value else f"{column} IS NOT NULL"
    if op is FilterOperator.PREFIX:
        return f"{column} LIKE {params.bind(escape_like(value) + '%')} ESCAPE '{LIKE_ESCAPE}'"
    raise InvalidRequest(f"filters[{index}].op", f"Operator {op.value!r} is not supported.")


def _where(
    dataset: Dataset,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    params: _Parameters,
) -> str:
    conditions = [f"{quote_identifier(dataset.tenant_column)} = {params.bind(scope.org_id)}"]
    if dataset.owner_column is not None and scope.owner_id is not None:
        conditions.append(
            f"{quote_identifier(dataset.owner_column)} = {params.bind(scope.owner_id)}"
        )
    if window.is_bounded:
        if dataset.time_column is None:
            raise InvalidRequest(
                "time_range", f"Dataset {dataset.name!r} has no time column; remove time_range."
            )
        time_column = quote_identifier(dataset.time_column)
        if window.start is not None:
            conditions.append(f"{time_column} >= {params.bind(window.start)}")
        if window.end is not None:
            conditions.append(f"{time_column} < {params.bind(window.end)}")
    conditions += [
        _filter_condition(dataset, clause, index, params) for index, clause in enumerate(filters)
    ]
    return " AND ".join(conditions)


@dataclass(frozen=True)
class Children:
    """The children a query joins: nested ones need the PostgreSQL type of each of their
    columns (per child, in declaration order), which their JSON rendering depends on."""

    nesting: Nesting
    sources: Sequence[Sequence[SourceType]] = ()
    # Child name -> column -> the privacy transform rewriting it, in either shape.
    rewrites: Mapping[str, Mapping[str, PrivacyTransform]] = field(default_factory=dict)

    @property
    def flattened(self) -> bool:
        return self.nesting.shape is ChildShape.FLATTENED

    def rewrite(self, child: ChildDataset, column: str) -> PrivacyTransform | None:
        return self.rewrites.get(child.name, {}).get(column)

    def value(self, child: ChildDataset, column: str) -> str:
        """A child column as the export shows it: as stored, or rewritten by the profile."""
        rewrite = self.rewrite(child, column)
        reference = _child_column(column)
        return reference if rewrite is None else rewritten(rewrite, reference)


def _child_alias(index: int) -> str:
    return f'"child_{int(index)}"'


# A flattened child's key as stored, whatever the profile shows of it, for the order. Not a
# catalog identifier (it has a space), so it cannot clash with an output column.
CHILD_ORDER = '"child key"'


def _child_rows(dataset: Dataset, child: ChildDataset, scope: RowScope, params: _Parameters) -> str:
    source = child.source
    parent_key = f"{_source(dataset)}.{quote_identifier(dataset.key)}"
    return (
        f"FROM {quote_identifier(source.schema_name)}.{quote_identifier(source.table)} "
        f"AS {CHILD_ROWS} "
        f"WHERE {CHILD_ROWS}.{quote_identifier(child.tenant_column)} = {params.bind(scope.org_id)} "
        f"AND {CHILD_ROWS}.{quote_identifier(child.parent_column)} = {parent_key}"
    )


def _child_column(name: str) -> str:
    return f"{CHILD_ROWS}.{quote_identifier(name)}"


def _nested_array(
    dataset: Dataset, children: Children, index: int, scope: RowScope, params: _Parameters
) -> str:
    """One row: the JSON array of the parent row's children (of the `index`-th child) in key
    order, each child an object rendered exactly as the json writers render a row."""
    child = children.nesting.children[index]
    members = []
    for column, source in zip(child.columns, children.sources[index], strict=True):
        if children.rewrite(child, column.name) is not None:
            # A rewritten value is text, whatever the column's type.
            value = sql_rendering.json_value(
                ColumnType.STRING, SourceType.TEXT, children.value(child, column.name)
            )
        else:
            value = sql_rendering.json_value(column.type, source, _child_column(column.name))
        if value is None:
            raise QueryFailed(
                f"Column {column.name!r} of {dataset.name}.{child.name} cannot be exported as "
                f"{column.type}: its database type does not match the catalog."
            )
        members.append((column.name, value))
    elements = (
        f"string_agg({sql_rendering.json_object(members)}, ',' ORDER BY {_child_column(child.key)})"
    )
    return (
        f"SELECT '[' || COALESCE({elements}, '') || ']' AS {quote_identifier(child.name)} "
        + _child_rows(dataset, child, scope, params)
    )


def _flattened_rows(
    dataset: Dataset, child: ChildDataset, children: Children, scope: RowScope, params: _Parameters
) -> str:
    columns = [
        f"{children.value(child, column.name)} AS "
        + quote_identifier(child.flattened_name(column.name))
        for column in child.columns
    ]
    columns.append(f"{_child_column(child.key)} AS {CHILD_ORDER}")
    return f"SELECT {', '.join(columns)} " + _child_rows(dataset, child, scope, params)


def _from(dataset: Dataset, children: Children | None, scope: RowScope, params: _Parameters) -> str:
    """The parent's table, with each child's subquery joined to every row of it."""
    source = _source(dataset)
    if children is None:
        return source
    nested = children.nesting.children
    if children.flattened:
        # LEFT: a parent without children still gives one row, with empty child columns.
        (child,) = nested
        rows = _flattened_rows(dataset, child, children, scope, params)
        return f"{source} LEFT JOIN LATERAL ({rows}) AS {_child_alias(0)} ON true"
    if len(children.sources) != len(nested):
        raise ValueError("nested children need the column types of every child")
    # An aggregate without GROUP BY gives exactly one row: every parent keeps its row.
    return source + "".join(
        f" CROSS JOIN LATERAL ({_nested_array(dataset, children, index, scope, params)}) "
        f"AS {_child_alias(index)}"
        for index in range(len(nested))
    )


def build_child_probe(child: ChildDataset) -> BoundQuery:
    """A query returning no rows with a child's declared columns: for their PostgreSQL types."""
    source = child.source
    columns = ", ".join(_child_column(column.name) for column in child.columns)
    return BoundQuery(
        f"SELECT {columns} FROM {quote_identifier(source.schema_name)}."
        f"{quote_identifier(source.table)} AS {CHILD_ROWS} LIMIT 0"
    )


def export_order(dataset: Dataset) -> list[SortSpec]:
    """The export's total order: the dataset's default_sort, then its key as the tie-breaker."""
    sort = list(dataset.default_sort)
    if dataset.key not in {spec.column for spec in sort}:
        direction = sort[-1].direction if sort else SortDirection.ASC
        sort.append(SortSpec(column=dataset.key, direction=direction))
    return sort


def _order_by(dataset: Dataset, children: Children | None = None) -> str:
    # Qualified: a bare name in ORDER BY would mean an output column of that name first, and a
    # rendering expression (CASE ... ELSE CAST(created_at AS text)) takes its column's name.
    source = _source(dataset)
    order = [
        f"{source}.{quote_identifier(spec.column)} {spec.direction.value.upper()}"
        for spec in export_order(dataset)
    ]
    if children is not None and children.flattened:
        order.append(f"{_child_alias(0)}.{CHILD_ORDER} ASC")
    return ", ".join(order)


def _comes_after(dataset: Dataset, position: Sequence[Any], params: _Parameters) -> str:
    """Rows after `position` (values of the export_order columns) in the export's order.

    With one direction throughout, a row comparison that an index on the sort columns serves;
    with mixed directions, its expansion. Sort columns must hold no NULLs (the planner checks).
    """
    order = export_order(dataset)
    if len(position) != len(order):
        raise ValueError(f"a position needs {len(order)} values, got {len(position)}")
    columns = [quote_identifier(spec.column) for spec in order]
    values = [params.bind(value) for value in position]
    directions = {spec.direction for spec in order}
    if len(directions) == 1:
        operator = "<" if directions == {SortDirection.DESC} else ">"
        return f"({', '.join(columns)}) {operator} ({', '.join(values)})"
    alternatives = []
    for index, spec in enumerate(order):
        equal = [f"{columns[i]} = {values[i]}" for i in range(index)]
        operator = "<" if spec.direction is SortDirection.DESC else ">"
        alternatives.append(" AND ".join([*equal, f"{columns[index]} {operator} {values[index]}"]))
    return "(" + " OR ".join(f"({alternative})" for alternative in alternatives) + ")"


@dataclass(frozen=True)
class Span:
    """A stretch of the export's order: rows after `after` (None: from the first row) up to
    and including `through` (None: to the last row). Values follow export_order."""

    after: Sequence[Any] | None = None
    through: Sequence[Any] | None = None


WHOLE_EXPORT = Span()


def _span_conditions(dataset: Dataset, span: Span, params: _Parameters) -> list[str]:
    conditions = []
    if span.after is not None:
        conditions.append(_comes_after(dataset, span.after, params))
    if span.through is not None:
        conditions.append(f"NOT {_comes_after(dataset, span.through, params)}")
    return conditions


def build_select(
    dataset: Dataset,
    fields: Sequence[str],
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    *,
    select_list: Sequence[str] | None = None,
    span: Span = WHOLE_EXPORT,
    limit: int | None = None,
    children: Children | None = None,
) -> BoundQuery:
    """The query returning `fields` (in that order) of the rows in scope, in a stable order.

    `select_list` replaces the plain column references with expressions over them (the SQL
    rendering of a COPY plan, built from `column_references`); `span` limits the rows to one
    stretch of the order (a segment of a partitioned export); `limit` to the first rows.
    `children` adds the children's columns after `fields`: one JSON array per nested child, or
    the flattened child's columns (a row per child).
    """
    child_names = children.nesting.output_names if children is not None else []
    references = column_references([*checked_fields(dataset, fields), *child_names])
    columns = ", ".join(select_list if select_list is not None else references)
    params = _Parameters()
    where = " AND ".join(
        [_where(dataset, scope, filters, window, params), *_span_conditions(dataset, span, params)]
    )
    source = _from(dataset, children, scope, params)
    sql = f"SELECT {columns} FROM {source} WHERE {where} ORDER BY {_order_by(dataset, children)}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return BoundQuery(sql, params.values)


def column_references(fields: Sequence[str]) -> list[str]:
    """Each field as the quoted identifier the select list refers to it by."""
    return [quote_identifier(name) for name in fields]


def _counted_rows(children: Children | None) -> Children | None:
    """What the counts join: a flattened child multiplies the rows, nested ones do not."""
    return children if children is not None and children.flattened else None


def build_count(
    dataset: Dataset,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    *,
    children: Children | None = None,
) -> BoundQuery:
    """The query counting the rows build_select would return (one row, one bigint)."""
    params = _Parameters()
    where = _where(dataset, scope, filters, window, params)
    source = _from(dataset, _counted_rows(children), scope, params)
    return BoundQuery(f"SELECT count(*) FROM {source} WHERE {where}", params.values)


def build_bounded_count(
    dataset: Dataset,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    bound: int,
    *,
    children: Children | None = None,
) -> BoundQuery:
    """The number of rows build_select would return, counted only up to `bound`."""
    params = _Parameters()
    where = _where(dataset, scope, filters, window, params)
    source = _from(dataset, _counted_rows(children), scope, params)
    inner = f"SELECT 1 FROM {source} WHERE {where} LIMIT {int(bound)}"
    return BoundQuery(f"SELECT count(*) FROM ({inner}) AS bounded", params.values)


def build_plan_count(
    dataset: Dataset,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    *,
    children: Children | None = None,
) -> BoundQuery:
    """One row: the rows build_select returns, and how many of them have a NULL in a sort
    column (such rows have no position, so that export cannot be split)."""
    params = _Parameters()
    where = _where(dataset, scope, filters, window, params)
    source = _from(dataset, _counted_rows(children), scope, params)
    nulls = " OR ".join(
        f"{quote_identifier(spec.column)} IS NULL" for spec in export_order(dataset)
    )
    return BoundQuery(
        f"SELECT count(*), count(*) FILTER (WHERE {nulls}) FROM {source} WHERE {where}",
        params.values,
    )


def build_boundaries(
    dataset: Dataset,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    every: int,
    *,
    children: Children | None = None,
) -> BoundQuery:
    """The sort-column values (export_order) of every `every`-th row, in order: where the
    segments of a split export end.

    Flattened, a position is a parent's: the rows are counted per child, and a segment ends
    after all the children of the parent of its `every`-th row (once per parent)."""
    if every < 1:
        raise ValueError("every must be at least 1")
    params = _Parameters()
    where = _where(dataset, scope, filters, window, params)
    counted = _counted_rows(children)
    source = _from(dataset, counted, scope, params)
    columns = ", ".join(quote_identifier(spec.column) for spec in export_order(dataset))
    numbered = (
        f"SELECT {columns}, row_number() OVER (ORDER BY {_order_by(dataset, counted)}) "
        f"AS __position FROM {source} WHERE {where}"
    )
    step = params.bind(every)
    picked = f"SELECT {columns} FROM ({numbered}) AS numbered WHERE __position % {step} = 0"
    if counted is None:
        return BoundQuery(f"{picked} ORDER BY __position", params.values)
    return BoundQuery(
        f"{picked} GROUP BY {columns} ORDER BY min(__position)",
        params.values,
    )


def _bucket_expression(
    dataset: Dataset, bucket: TimeBucket, time_zone: str, params: _Parameters
) -> str:
    if dataset.time_column is None:
        raise ValueError(f"dataset {dataset.name!r} has no time column")
    column = quote_identifier(dataset.time_column)
    unit = f"'{bucket.value}'"  # a TimeBucket member, never caller text
    if dataset.column(dataset.time_column).type is ColumnType.DATE:
        return f"CAST(date_trunc({unit}, CAST({column} AS timestamp)) AS date)"
    zone = params.bind(time_zone)
    if bucket is TimeBucket.HOUR:
        # The instant minus the minutes and seconds into its local hour: date_trunc in the zone
        # would merge the two 02:00 hours of a night the clocks go back.
        local = f"({column} AT TIME ZONE {zone})"
        return f"({column} - ({local} - date_trunc('hour', {local})))"
    return f"date_trunc({unit}, {column}, {zone})"


def _measure_expression(measure: Measure) -> str:
    if measure.column is None:
        return "count(*)"
    column = quote_identifier(measure.column)
    if measure.function is MeasureFunction.COUNT_DISTINCT:
        return f"count(DISTINCT {column})"
    return f"{measure.function.value}({column})"


def _aggregate_groups(
    dataset: Dataset,
    aggregation: Aggregation,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    *,
    time_zone: str,
    params: _Parameters,
) -> tuple[str, int]:
    """The query computing the groups, its columns named as the output, unordered; and how
    many of its leading columns are the group's key."""
    grouped: list[str] = []
    if aggregation.time_bucket is not None:
        grouped.append(_bucket_expression(dataset, aggregation.time_bucket, time_zone, params))
    grouped += [quote_identifier(name) for name in aggregation.dimensions]
    expressions = [
        *grouped,
        *(_measure_expression(measure) for measure in aggregation.measures),
    ]
    names = [quote_identifier(name) for name in aggregation.output_names]
    aliased = (
        f"{expression} AS {name}" for expression, name in zip(expressions, names, strict=True)
    )
    sql = (
        "SELECT "
        + ", ".join(aliased)
        + f" FROM {_source(dataset)} WHERE {_where(dataset, scope, filters, window, params)}"
    )
    if grouped:
        sql += " GROUP BY " + ", ".join(str(position) for position in range(1, len(grouped) + 1))
    return sql, len(grouped)


def build_aggregate_select(
    dataset: Dataset,
    aggregation: Aggregation,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    *,
    time_zone: str,
    select_list: Sequence[str] | None = None,
    limit: int | None = None,
) -> BoundQuery:
    """One row per group of the rows in scope, ordered by bucket then dimensions.

    The groups are computed in a subquery whose columns carry the output names, so a
    `select_list` rendering them refers to them exactly as it would to source columns."""
    params = _Parameters()
    groups, key_columns = _aggregate_groups(
        dataset, aggregation, scope, filters, window, time_zone=time_zone, params=params
    )
    names = [quote_identifier(name) for name in aggregation.output_names]
    columns = ", ".join(select_list if select_list is not None else names)
    sql = f"SELECT {columns} FROM ({groups}) AS {AGGREGATED}"
    if key_columns:
        sql += " ORDER BY " + ", ".join(
            f"{AGGREGATED}.{name} ASC NULLS LAST" for name in names[:key_columns]
        )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return BoundQuery(sql, params.values)


def build_aggregate_count(
    dataset: Dataset,
    aggregation: Aggregation,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
    *,
    time_zone: str,
    bound: int | None = None,
) -> BoundQuery:
    """The number of groups build_aggregate_select returns (counted up to `bound` if given)."""
    params = _Parameters()
    groups, _ = _aggregate_groups(
        dataset, aggregation, scope, filters, window, time_zone=time_zone, params=params
    )
    if bound is not None:
        groups += f" LIMIT {int(bound)}"
    return BoundQuery(f"SELECT count(*) FROM ({groups}) AS {AGGREGATED}", params.values)


# ------------------------------------------------------------------------------ summaries
def summary_references(summary: Summary) -> list[str]:
    """The quoted names the summary query gives its metrics (`section.metric` is no catalog
    identifier), in the summary's order."""
    return [quote_identifier(f"metric_{index}") for index in range(len(summary.metrics))]


def _summary_measure(dataset: Dataset, metric: Metric, params: _Parameters) -> str:
    if metric.measure is None:
        raise ValueError(f"{metric.path} is a ratio, not a measure")
    expression = _measure_expression(metric.measure)
    if metric.conditions:
        conditions = " AND ".join(
            _filter_condition(dataset, clause, index, params)
            for index, clause in enumerate(metric.conditions)
        )
        expression += f" FILTER (WHERE {conditions})"
    if metric.measure.function is MeasureFunction.SUM:
        expression = f"COALESCE({expression}, 0)"  # a total over no rows is 0
    return expression


def _rounded(expression: str, places: int | None) -> str:
    return expression if places is None else f"round(CAST({expression} AS numeric), {int(places)})"


def build_summary_select(
    dataset: Dataset,
    summary: Summary,
    scope: RowScope,
    filters: Sequence[FilterClause],
    window: TimeWindow,
) -> BoundQuery:
    """One row: every metric of `summary` over the export's rows, in one scan of them."""
    params = _Parameters()
    measures = {
        metric.name: _summary_measure(dataset, metric, params)
        for metric in summary.metrics
        if metric.measure is not None
    }
    expressions = []
    for metric in summary.metrics:
        if metric.ratio is None:
            expression = measures[metric.name]
        else:
            numerator = measures[metric.ratio.numerator]
            denominator = measures[metric.ratio.denominator]
            scale = "100 * " if metric.ratio.percent else ""
            expression = f"{scale}CAST({numerator} AS numeric) / NULLIF({denominator}, 0)"
        expressions.append(_rounded(expression, metric.decimal_places))
    aliased = ", ".join(
        f"{expression} AS {name}"
        for expression, name in zip(expressions, summary_references(summary), strict=True)
    )
    where = _where(dataset, scope, filters, window, params)
    return BoundQuery(f"SELECT {aliased} FROM {_source(dataset)} WHERE {where}", params.values)
