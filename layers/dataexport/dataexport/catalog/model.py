"""The dataset catalog's vocabulary: what a deployer declares in a dataset file.

Every declaration is checked when the catalog loads, so a bad file is an error at start, never at
export time. The rules that matter for safety: every identifier is a plain lowercase SQL name
(it is the only thing that ever reaches SQL as an identifier, always double-quoted), and every
column a filter, sort, time range or key refers to is declared with a type.

Source kinds: a dataset reads PostgreSQL (`source_kind: postgres`, the default) or one of the
service's own DynamoDB sources (`source_kind: dynamodb`, listed in DYNAMODB_SOURCES: the audit
trail). A DynamoDB dataset is read in order from the tenant's partition, so its tenant column and
key are the source's partition and sort keys, it has no owner column, and its columns are the
source's attributes with their types.

Scope columns: `tenant_column` and `owner_column` restrict which rows a caller may see. They must
exist in the source table, but they need not be declared in `columns`: a scope column that is
not declared is used in the WHERE clause only and is never exported. Declare it in `columns` as
well to make it exportable (and filterable).

Children: a PostgreSQL dataset may declare child datasets, rows of another table that belong to
one of its rows (an audit run's results): the child's `parent_column` holds the parent's `key`,
and its `tenant_column` scopes it to the same tenant. An export nests them (a JSON array per
parent row) or flattens them (one row per child, the parent's columns repeated); PostgreSQL does
both. Nested children are rendered to JSON text by PostgreSQL, so their columns are limited to the
types it renders exactly as the writers do (CHILD_COLUMN_TYPES). Flattened, a child column is
named `flatten_prefix` + its name; those names and the child's own name must not clash with the
parent's columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

IDENTIFIER_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_SCHEMA = "public"


def _check_identifier(value: str) -> str:
    if not IDENTIFIER_PATTERN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid identifier: use lowercase letters, digits and '_', "
            "starting with a letter or '_', at most 63 characters"
        )
    return value


Identifier = Annotated[str, AfterValidator(_check_identifier)]
Role = Literal["member", "admin", "operator"]
DEFAULT_ROLES: tuple[Role, ...] = ("member", "admin")


class ColumnType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"
    JSON = "json"


class Sensitivity(StrEnum):
    """What kind of personal or secret data a column holds (privacy profiles act on it)."""

    IP = "ip"
    EMAIL = "email"
    IDENTIFIER = "identifier"
    SECRET = "secret"  # noqa: S105 (a kind of column, not a password)


class PrivacyTransform(StrEnum):
    """What a privacy profile does to the sensitive columns of an export (SPEC section 6)."""

    ANONYMIZE_IP = "anonymize_ip"  # `ip` columns keep their network: IPv4 /24, IPv6 /48
    HASH_IDENTIFIERS = "hash_identifiers"  # `identifier` columns become HMAC-SHA256 hex digests
    MASK_EMAIL = "mask_email"  # `email` columns become j***@example.com
    DROP_SENSITIVE = "drop_sensitive"  # every sensitive column is left out


PROTECTED_BY: dict[Sensitivity, PrivacyTransform] = {
    Sensitivity.IP: PrivacyTransform.ANONYMIZE_IP,
    Sensitivity.IDENTIFIER: PrivacyTransform.HASH_IDENTIFIERS,
    Sensitivity.EMAIL: PrivacyTransform.MASK_EMAIL,
}
"""The transform that rewrites each kind of column (secrets are never rewritten, only left out)."""

# What a transform's input may be: text, or for identifiers integers as well (hashed as text).
SENSITIVE_COLUMN_TYPES: dict[Sensitivity, frozenset[ColumnType]] = {
    Sensitivity.IP: frozenset({ColumnType.STRING}),
    Sensitivity.EMAIL: frozenset({ColumnType.STRING}),
    Sensitivity.IDENTIFIER: frozenset({ColumnType.STRING, ColumnType.INTEGER}),
    Sensitivity.SECRET: frozenset(ColumnType),
}


class FilterOperator(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    IS_NULL = "is_null"
    PREFIX = "prefix"


class SortDirection(StrEnum):
    ASC = "asc"
    DESC = "desc"


_EQUALITY = frozenset(
    {FilterOperator.EQ, FilterOperator.NE, FilterOperator.IN, FilterOperator.NOT_IN}
)
_ORDERING = frozenset(
    {
        FilterOperator.GT,
        FilterOperator.GTE,
        FilterOperator.LT,
        FilterOperator.LTE,
        FilterOperator.BETWEEN,
    }
)
_NULL = frozenset({FilterOperator.IS_NULL})

OPERATORS_BY_TYPE: dict[ColumnType, frozenset[FilterOperator]] = {
    ColumnType.STRING: _EQUALITY | _ORDERING | _NULL | {FilterOperator.PREFIX},
    ColumnType.INTEGER: _EQUALITY | _ORDERING | _NULL,
    ColumnType.DECIMAL: _EQUALITY | _ORDERING | _NULL,
    ColumnType.FLOAT: _EQUALITY | _ORDERING | _NULL,
    ColumnType.TIMESTAMP: _EQUALITY | _ORDERING | _NULL,
    ColumnType.DATE: _EQUALITY | _ORDERING | _NULL,
    # Booleans have no useful order; JSON has no equality PostgreSQL can index or compare.
    ColumnType.BOOLEAN: frozenset({FilterOperator.EQ, FilterOperator.NE}) | _NULL,
    ColumnType.JSON: _NULL,
}
"""Which filter operators make sense for a column of each type."""

TIME_COLUMN_TYPES = frozenset({ColumnType.TIMESTAMP, ColumnType.DATE})
KEY_COLUMN_TYPES = frozenset(
    {
        ColumnType.INTEGER,
        ColumnType.STRING,
        ColumnType.DECIMAL,
        ColumnType.TIMESTAMP,
        ColumnType.DATE,
    }
)
SORTABLE_COLUMN_TYPES = frozenset(ColumnType) - {ColumnType.JSON}
# Floats and json have no PostgreSQL rendering identical to the writers' (see sql_rendering).
CHILD_COLUMN_TYPES = frozenset(ColumnType) - {ColumnType.FLOAT, ColumnType.JSON}
MAX_CHILDREN = 8


class MeasureFunction(StrEnum):
    """What an aggregated export computes: over a column, or `count` alone over the rows."""

    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"


_NUMERIC_TYPES = frozenset({ColumnType.INTEGER, ColumnType.DECIMAL, ColumnType.FLOAT})
# Measures that say how many values a column has, never the values themselves.
COUNTING_MEASURES = frozenset({MeasureFunction.COUNT, MeasureFunction.COUNT_DISTINCT})
_EXTREMES = frozenset({MeasureFunction.MIN, MeasureFunction.MAX})
_TOTALS = frozenset({MeasureFunction.SUM, MeasureFunction.AVG})
MEASURES_BY_TYPE: dict[ColumnType, frozenset[MeasureFunction]] = {
    column_type: COUNTING_MEASURES
    | _EXTREMES
    | (_TOTALS if column_type in _NUMERIC_TYPES else frozenset())
    for column_type in SORTABLE_COLUMN_TYPES
}
"""Which measures make sense over a column of each type (none over JSON)."""


class SourceKind(StrEnum):
    POSTGRES = "postgres"
    DYNAMODB = "dynamodb"


class DynamoDbSource(BaseModel):
    """The shape of a DynamoDB source the service can read: its keys and attribute types."""

    model_config = ConfigDict(frozen=True)

    partition_key: str
    sort_key: str
    attributes: dict[str, ColumnType]


DYNAMODB_SOURCES: dict[str, DynamoDbSource] = {
    # The audit trail (AuditTable): one partition per tenant, in seq order.
    "audit_trail": DynamoDbSource(
        partition_key="org_id",
        sort_key="seq",
        attributes={
            "org_id": ColumnType.STRING,
            "seq": ColumnType.INTEGER,
            "event_id": ColumnType.STRING,
            "type": ColumnType.STRING,
            "at": ColumnType.TIMESTAMP,
            "actor_id": ColumnType.STRING,
            "actor_role": ColumnType.STRING,
            "target_type": ColumnType.STRING,
            "target_id": ColumnType.STRING,
            "source_ip": ColumnType.STRING,
            "request_id": ColumnType.STRING,
            "detail": ColumnType.JSON,
            "prev_hash": ColumnType.STRING,
            "hash": ColumnType.STRING,
        },
    ),
}


class _CatalogModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Column(_CatalogModel):
    """One exportable column of a dataset."""

    name: Identifier
    type: ColumnType
    label: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    sensitive: Sensitivity | None = None


class FilterSpec(_CatalogModel):
    """The operators callers may use to filter on one column."""

    column: Identifier
    operators: list[FilterOperator] = Field(min_length=1)


class SortSpec(_CatalogModel):
    column: Identifier
    direction: SortDirection = SortDirection.ASC


class SourceRef(_CatalogModel):
    """The table or view a dataset reads; written `schema.table`, or `table` for `public`."""

    schema_name: Identifier = DEFAULT_SCHEMA
    table: Identifier

    @model_validator(mode="before")
    @classmethod
    def _parse_dotted(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parts = value.split(".")
        if len(parts) == 1:
            return {"table": parts[0]}
        if len(parts) == 2:
            return {"schema_name": parts[0], "table": parts[1]}
        raise ValueError(f"{value!r} is not 'table' or 'schema.table'")

    def __str__(self) -> str:
        return f"{self.schema_name}.{self.table}"


class AggregationSpec(_CatalogModel):
    """What aggregated exports of a dataset may group by and compute.

    `count` (rows per group) is always allowed; the time column, when there is one, can be
    bucketed by hour, day, week or month."""

    dimensions: list[Identifier] = Field(default_factory=list)
    measures: dict[Identifier, list[MeasureFunction]] = Field(default_factory=dict)


MAX_SUMMARY_METRICS = 200


class SummaryCondition(_CatalogModel):
    """A condition only the rows a metric counts must meet: `{field, op, value}`, on a column
    the dataset lets callers filter, typed by it when the catalog loads (summary.py)."""

    field: Identifier
    op: FilterOperator
    value: Any = None


class SummaryRatio(_CatalogModel):
    """numerator / denominator, two other metrics of the summary (null when it is 0)."""

    numerator: Identifier
    denominator: Identifier
    percent: bool = Field(default=False, description="Times 100: 88.28 rather than 0.8828.")


class SummaryMetric(_CatalogModel):
    """One KPI: a measure over the rows (`function`, `field`, `where`) or a `ratio` of two."""

    label: str | None = Field(default=None, max_length=200)
    function: MeasureFunction | None = None
    field: Identifier | None = None
    where: list[SummaryCondition] = Field(default_factory=list, max_length=20)
    ratio: SummaryRatio | None = None
    decimal_places: int | None = Field(default=None, ge=0, le=12)


class SummarySpec(_CatalogModel):
    """A KPI summary of a dataset (seed 003's shape): sections of named metrics, computed in
    one query over the export's rows, written as {"section": {"metric": value}} or as CSV
    `Metric,Value` lines."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    sections: dict[Identifier, dict[Identifier, SummaryMetric]] = Field(min_length=1)


def _key_problems(key: str, types: dict[str, ColumnType], where: str = "key") -> list[str]:
    if key not in types:
        return [f"{where}: {key!r} is not a declared column"]
    if types[key] not in KEY_COLUMN_TYPES:
        return [f"{where}: {key!r} has type {types[key]}; it cannot be a key"]
    return []


class ChildDataset(_CatalogModel):
    """Rows of another table that belong to one row of the dataset declaring it."""

    name: Identifier = Field(description="The member holding the array of children (nested).")
    title: str = Field(min_length=1, max_length=200)
    source: SourceRef
    tenant_column: Identifier
    parent_column: Identifier = Field(description="The child column holding the parent's key.")
    key: Identifier
    columns: list[Column] = Field(min_length=1)
    # Flattened output names its columns `flatten_prefix` + name (e.g. `result_` + `id`).
    flatten_prefix: str = Field(default="", max_length=32, pattern=r"^([a-z_][a-z0-9_]*)?$")

    @model_validator(mode="after")
    def _check_columns(self) -> ChildDataset:
        types = {column.name: column.type for column in self.columns}
        problems = [
            f"columns: {name!r} is declared more than once"
            for name in _duplicates([column.name for column in self.columns])
        ]
        problems += [
            f"columns[{index}]: {column.name!r} is {column.type}; a child column must be one of "
            + ", ".join(sorted(CHILD_COLUMN_TYPES))
            for index, column in enumerate(self.columns)
            if column.type not in CHILD_COLUMN_TYPES
        ]
        problems += _key_problems(self.key, types)
        problems += _sensitivity_problems(self.columns)
        # Children are exported whole, never named one column at a time, so nothing could
        # keep a secret column out of a member's export.
        problems += [
            f"columns[{index}].sensitive: a child column cannot be secret"
            for index, column in enumerate(self.columns)
            if column.sensitive is Sensitivity.SECRET
        ]
        if self.parent_column == self.tenant_column:
            problems.append("parent_column: must differ from tenant_column")
        problems += [
            f"columns: flattened name {self.flattened_name(name)!r} is longer than 63 characters"
            for name in types
            if not IDENTIFIER_PATTERN.fullmatch(self.flattened_name(name))
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def flattened_name(self, column: str) -> str:
        """The name of child column `column` in a flattened export."""
        return self.flatten_prefix + column

    @property
    def flattened_names(self) -> list[str]:
        return [self.flattened_name(column.name) for column in self.columns]


def _sensitivity_problems(columns: list[Column]) -> list[str]:
    """Each `sensitive` mark must suit its column's type (an IP address is text, ...)."""
    problems = []
    for index, column in enumerate(columns):
        if column.sensitive is None:
            continue
        allowed = SENSITIVE_COLUMN_TYPES[column.sensitive]
        if column.type not in allowed:
            problems.append(
                f"columns[{index}].sensitive: {column.sensitive} columns must be "
                f"{' or '.join(sorted(allowed))}, not {column.type}"
            )
    return problems


def _duplicates(names: list[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


class Dataset(_CatalogModel):
    """Something a user can export: a table or view, its columns and what callers may do."""

    name: Identifier
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    source: SourceRef
    source_kind: SourceKind = SourceKind.POSTGRES
    tenant_column: Identifier
    owner_column: Identifier | None = None
    time_column: Identifier | None = None
    key: Identifier
    columns: list[Column] = Field(min_length=1)
    filters: list[FilterSpec] = Field(default_factory=list)
    default_fields: list[Identifier] = Field(default_factory=list)
    default_sort: list[SortSpec] = Field(default_factory=list)
    roles: list[Role] = Field(default_factory=lambda: list(DEFAULT_ROLES), min_length=1)
    # Privacy transforms forced on a role, whatever its requests ask: {member: [hash_identifiers]}.
    privacy: dict[Role, list[PrivacyTransform]] = Field(default_factory=dict)
    max_span_days: int | None = Field(default=None, ge=1)
    aggregations: AggregationSpec | None = None
    children: list[ChildDataset] = Field(default_factory=list, max_length=MAX_CHILDREN)
    summaries: dict[Identifier, SummarySpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self) -> Dataset:
        problems = [
            *self._column_problems(),
            *self._filter_problems(),
            *self._sort_problems(),
            *self._dynamodb_problems(),
            *self._aggregation_problems(),
            *self._privacy_problems(),
            *self._children_problems(),
            *self._summary_problems(),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _column_problems(self) -> list[str]:
        problems = [
            f"columns: {name!r} is declared more than once"
            for name in _duplicates([column.name for column in self.columns])
        ]
        if self.owner_column is not None and self.owner_column == self.tenant_column:
            problems.append("owner_column: must differ from tenant_column")
        types = {column.name: column.type for column in self.columns}
        if self.time_column is not None:
            if self.time_column not in types:
                problems.append(f"time_column: {self.time_column!r} is not a declared column")
            elif types[self.time_column] not in TIME_COLUMN_TYPES:
                problems.append(
                    f"time_column: {self.time_column!r} has type {types[self.time_column]}; "
                    "it must be timestamp or date"
                )
        if self.max_span_days is not None and self.time_column is None:
            problems.append("max_span_days: needs a time_column")
        problems += _key_problems(self.key, types)
        for index, name in enumerate(self.default_fields):
            if name not in types:
                problems.append(f"default_fields[{index}]: {name!r} is not a declared column")
        problems += [
            f"default_fields: {name!r} is listed more than once"
            for name in _duplicates(self.default_fields)
        ]
        problems += [
            f"roles: {role!r} is listed more than once" for role in _duplicates(list(self.roles))
        ]
        return problems

    def _filter_problems(self) -> list[str]:
        types = {column.name: column.type for column in self.columns}
        problems = [
            f"filters: column {name!r} has more than one filter"
            for name in _duplicates([spec.column for spec in self.filters])
        ]
        for index, spec in enumerate(self.filters):
            where = f"filters[{index}]"
            if spec.column not in types:
                problems.append(f"{where}.column: {spec.column!r} is not a declared column")
                continue
            column_type = types[spec.column]
            invalid = [
                op.value for op in spec.operators if op not in OPERATORS_BY_TYPE[column_type]
            ]
            if invalid:
                allowed = ", ".join(sorted(OPERATORS_BY_TYPE[column_type]))
                problems.append(
                    f"{where}.operators: {', '.join(invalid)} not valid for {column_type} "
                    f"column {spec.column!r} (allowed: {allowed})"
                )
            problems += [
                f"{where}.operators: {op!r} is listed more than once"
                for op in _duplicates([op.value for op in spec.operators])
            ]
        return problems

    def _sort_problems(self) -> list[str]:
        types = {column.name: column.type for column in self.columns}
        sort_columns = [spec.column for spec in self.default_sort]
        problems = [
            f"default_sort: {name!r} is listed more than once" for name in _duplicates(sort_columns)
        ]
        for index, name in enumerate(sort_columns):
            if name not in types:
                problems.append(f"default_sort[{index}].column: {name!r} is not a declared column")
            elif types[name] not in SORTABLE_COLUMN_TYPES:
                problems.append(f"default_sort[{index}].column: {name!r} is {types[name]}")
        if self.key in sort_columns and sort_columns[-1] != self.key:
            # Anything after a unique key never changes the order: it is a mistake.
            problems.append(f"default_sort: the key {self.key!r} must be the last entry")
        return problems

    def _dynamodb_problems(self) -> list[str]:
        if self.source_kind is not SourceKind.DYNAMODB:
            return []
        source = DYNAMODB_SOURCES.get(self.source.table)
        if source is None or self.source.schema_name != DEFAULT_SCHEMA:
            known = ", ".join(sorted(DYNAMODB_SOURCES))
            return [f"source: {self.source.table!r} is not a DynamoDB source (known: {known})"]
        problems = []
        if self.tenant_column != source.partition_key:
            problems.append(f"tenant_column: must be the partition key {source.partition_key!r}")
        if self.key != source.sort_key:
            problems.append(f"key: must be the sort key {source.sort_key!r}")
        if self.owner_column is not None:
            problems.append("owner_column: a DynamoDB dataset is read by tenant only")
        for index, column in enumerate(self.columns):
            expected = source.attributes.get(column.name)
            if expected is None:
                problems.append(f"columns[{index}]: {column.name!r} is not an attribute of it")
            elif column.type is not expected:
                problems.append(f"columns[{index}]: {column.name!r} has type {expected}")
        if any(
            (spec.column, spec.direction) != (source.sort_key, SortDirection.ASC)
            for spec in self.default_sort
        ):
            problems.append(f"default_sort: rows come in ascending {source.sort_key!r} order only")
        return problems

    def _aggregation_problems(self) -> list[str]:
        if self.aggregations is None:
            return []
        if self.source_kind is not SourceKind.POSTGRES:
            return ["aggregations: only PostgreSQL datasets are aggregated (in PostgreSQL)"]
        types = {column.name: column.type for column in self.columns}
        spec = self.aggregations
        problems = [
            f"aggregations.dimensions: {name!r} is listed more than once"
            for name in _duplicates(spec.dimensions)
        ]
        for index, name in enumerate(spec.dimensions):
            if name not in types:
                problems.append(
                    f"aggregations.dimensions[{index}]: {name!r} is not a declared column"
                )
            elif types[name] is ColumnType.JSON:
                problems.append(f"aggregations.dimensions[{index}]: {name!r} is json")
        for name, functions in spec.measures.items():
            where = f"aggregations.measures.{name}"
            if name not in types:
                problems.append(f"{where}: {name!r} is not a declared column")
                continue
            allowed = MEASURES_BY_TYPE.get(types[name], frozenset())
            invalid = [function.value for function in functions if function not in allowed]
            if invalid:
                problems.append(
                    f"{where}: {', '.join(invalid)} not valid for {types[name]} column {name!r} "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
                )
        return problems

    def _summary_problems(self) -> list[str]:
        if not self.summaries:
            return []
        if self.source_kind is not SourceKind.POSTGRES:
            return ["summaries: only PostgreSQL datasets are summarized (in PostgreSQL)"]
        problems = []
        for name, spec in self.summaries.items():
            metrics = [
                (section, metric) for section, items in spec.sections.items() for metric in items
            ]
            if len(metrics) > MAX_SUMMARY_METRICS:
                problems.append(f"summaries.{name}: more than {MAX_SUMMARY_METRICS} metrics")
            # Ratios name metrics without their section: a name must say which one it is.
            problems += [
                f"summaries.{name}: metric {metric!r} is declared in more than one section"
                for metric in _duplicates([metric for _, metric in metrics])
            ]
            measures = {
                metric: item
                for items in spec.sections.values()
                for metric, item in items.items()
                if item.ratio is None
            }
            for section, items in spec.sections.items():
                if not items:
                    problems.append(f"summaries.{name}.sections.{section}: has no metrics")
                for metric, item in items.items():
                    where = f"summaries.{name}.sections.{section}.{metric}"
                    problems += [
                        f"{where}: {text}" for text in self._metric_problems(item, measures)
                    ]
        return problems

    def _metric_problems(
        self, metric: SummaryMetric, measures: Mapping[str, SummaryMetric]
    ) -> list[str]:
        if metric.ratio is not None:
            if metric.function is not None or metric.field is not None or metric.where:
                return ["a ratio takes no function, field or where"]
            return [
                f"ratio.{part}: {name!r} is not a measure of this summary (ratios of ratios "
                "are not computed)"
                for part, name in (
                    ("numerator", metric.ratio.numerator),
                    ("denominator", metric.ratio.denominator),
                )
                if name not in measures
            ]
        if metric.function is None:
            return ["give a function (sum, avg, min, max, count, count_distinct) or a ratio"]
        problems = []
        if metric.field is None:
            if metric.function is not MeasureFunction.COUNT:
                problems.append(f"function {metric.function.value} needs a field")
        elif not self.has_column(metric.field):
            problems.append(f"field: {metric.field!r} is not a declared column")
        else:
            column = self.column(metric.field)
            allowed = MEASURES_BY_TYPE.get(column.type, frozenset())
            if metric.function not in allowed:
                problems.append(
                    f"{metric.function.value} is not valid for {column.type} column "
                    f"{metric.field!r} (allowed: {', '.join(sorted(allowed)) or 'none'})"
                )
            # A summary is read by whoever may export the dataset, whatever their profile.
            elif column.sensitive is not None and metric.function not in COUNTING_MEASURES:
                problems.append(f"field: {metric.field!r} is sensitive; it can only be counted")
        for index, condition in enumerate(metric.where):
            spec = self.filter_for(condition.field)
            if spec is None or not self.has_column(condition.field):
                problems.append(f"where[{index}].field: {condition.field!r} is not filterable")
            elif condition.op not in spec.operators:
                problems.append(
                    f"where[{index}].op: {condition.op.value!r} is not allowed on "
                    f"{condition.field!r}"
                )
            elif (
                self.column(condition.field).sensitive is not None
                and condition.op is not FilterOperator.IS_NULL
            ):
                problems.append(
                    f"where[{index}].field: {condition.field!r} is sensitive; only is_null"
                )
        return problems

    def _privacy_problems(self) -> list[str]:
        problems = _sensitivity_problems(self.columns)
        secrets = {c.name for c in self.columns if c.sensitive is Sensitivity.SECRET}
        problems += [
            f"default_fields: {name!r} is a secret column; secrets are exported only when named"
            for name in self.default_fields
            if name in secrets
        ]
        for role, transforms in self.privacy.items():
            if role not in self.roles:
                problems.append(f"privacy.{role}: the role may not export this dataset")
            problems += [
                f"privacy.{role}: {name!r} is listed more than once"
                for name in _duplicates([transform.value for transform in transforms])
            ]
        return problems

    def _children_problems(self) -> list[str]:
        if not self.children:
            return []
        if self.source_kind is not SourceKind.POSTGRES:
            return ["children: only PostgreSQL datasets have children (joined in PostgreSQL)"]
        problems = [
            f"children: {name!r} is declared more than once"
            for name in _duplicates([child.name for child in self.children])
        ]
        # Parent and child columns share one select list: a clash would make names ambiguous.
        taken = {*self.column_names, *self.scope_columns}
        for index, child in enumerate(self.children):
            where = f"children[{index}]"
            if child.name in taken:
                problems.append(f"{where}.name: {child.name!r} is a column of the dataset")
            clashes = [name for name in child.flattened_names if name in taken]
            if clashes:
                problems.append(
                    f"{where}.flatten_prefix: flattened column(s) {', '.join(clashes)} clash "
                    "with the dataset's columns; set a prefix such as "
                    f"{child.name.removesuffix('s') + '_'!r}"
                )
        return problems

    # ----------------------------------------------------------------- lookups
    @property
    def column_names(self) -> list[str]:
        """Names of the exportable columns, in declaration order."""
        return [column.name for column in self.columns]

    @property
    def scope_columns(self) -> list[str]:
        """The columns that restrict rows to a tenant (and owner); exported only if declared."""
        return [self.tenant_column] + ([self.owner_column] if self.owner_column else [])

    def column(self, name: str) -> Column:
        """The declared column called `name`; KeyError if there is none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"dataset {self.name!r} has no column {name!r}")

    def has_column(self, name: str) -> bool:
        return any(column.name == name for column in self.columns)

    def filter_for(self, column: str) -> FilterSpec | None:
        """The filter declared for `column`, or None if callers may not filter on it."""
        for spec in self.filters:
            if spec.column == column:
                return spec
        return None

    def default_field_names(self) -> list[str]:
        """The fields exported when a request names none: default_fields, else every column
        but the secret ones."""
        return list(self.default_fields) or [
            column.name for column in self.columns if column.sensitive is not Sensitivity.SECRET
        ]

    def child(self, name: str) -> ChildDataset:
        """The declared child called `name`; KeyError if there is none."""
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"dataset {self.name!r} has no child {name!r}")

    def allows_role(self, role: str) -> bool:
        return role in self.roles
