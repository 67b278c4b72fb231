"""What a user asks for, validated against the catalog and turned into an executable plan.

The same resolution runs when the job is created (to refuse bad input with a 400 naming the field)
and inside the steps (from the stored, normalised request), so both always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dataexport.aggregation import (
    AggregateInput,
    Aggregation,
    output_columns,
    resolve_aggregation,
)
from dataexport.catalog.loader import Catalog
from dataexport.catalog.model import ChildDataset, ColumnType, Dataset, PrivacyTransform
from dataexport.delivery import DeliveryTarget, LinkDelivery
from dataexport.errors import DatasetNotFound, InvalidRequest
from dataexport.filters import FilterClause, TimeWindow, parse_filters, parse_time_window
from dataexport.formats import get_format
from dataexport.formats.compression import Compression
from dataexport.formats.summary_writers import SUMMARY_FORMATS
from dataexport.formats.value_text import timestamp_text
from dataexport.formats.writer import (
    MAX_DECIMAL_PLACES,
    FormatOptions,
    FormatWriter,
    OutputColumn,
)
from dataexport.identity import Caller
from dataexport.nesting import ChildShape, Nesting, resolve_nesting
from dataexport.privacy import (
    NO_PRIVACY,
    PrivacyPlan,
    check_aggregation,
    check_fields,
    check_filters,
    effective_profile,
    privacy_plan,
    protected_nesting,
    treatment,
)
from dataexport.privacy_sql import rewritten
from dataexport.query_builder import (
    WHOLE_EXPORT,
    BoundQuery,
    Children,
    RowScope,
    Span,
    build_aggregate_count,
    build_aggregate_select,
    build_boundaries,
    build_bounded_count,
    build_count,
    build_plan_count,
    build_select,
    build_summary_select,
    column_references,
    quote_identifier,
    summary_references,
)
from dataexport.sql_rendering import SourceType
from dataexport.summary import Summary, resolve_summary
from dataexport.time_presets import TimePreset

MAX_FIELDS = 500
MAX_FILTERS = 50
# A summary is always exactly one row (aggregates without GROUP BY).
SUMMARY_COUNT = BoundQuery("SELECT 1")
# Split files: S3's smallest multipart part, and its largest object.
MIN_FILE_SIZE_MB = 5
MAX_FILE_SIZE_MB = 5_000_000
MB = 1_000_000

LINE_ENDINGS = {"crlf": "\r\n", "lf": "\n"}


class FilterInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=128)
    op: str = Field(min_length=1, max_length=16)
    value: Any = None


class TimeRangeInput(BaseModel):
    """A preset resolved in the export's timezone when the job is created, or start and end."""

    model_config = ConfigDict(extra="forbid")

    preset: TimePreset | None = None
    start: str | None = Field(default=None, max_length=64)
    end: str | None = Field(default=None, max_length=64)


class ExportOptionsInput(BaseModel):
    """Rendering options; each format uses those it names (GET /v1/formats lists them)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(
        default="UTC",
        max_length=64,
        description="IANA time zone for timestamps and for resolving time range presets.",
    )
    bom: bool = Field(default=True, description="Start the file with a UTF-8 BOM (for Excel).")
    delimiter: Literal[",", ";", "\t", "|"] = Field(default=",", description="Cell separator.")
    line_ending: Literal["crlf", "lf"] = Field(default="crlf", description="Line ending.")
    metadata: bool = Field(
        default=False,
        description=(
            'JSON: wrap the rows as {"metadata": {...}, "data": [...]}, the metadata saying '
            "when the export was made, of what, and for which time range."
        ),
    )
    decimal_places: int | None = Field(
        default=None,
        ge=0,
        le=MAX_DECIMAL_PLACES,
        description="Round decimal and float cells to this many places (ties away from zero).",
    )
    nested: bool = Field(
        default=False,
        description=(
            "JSON and NDJSON, datasets with children: each row carries an array of its "
            'children (e.g. "results": [...]), in their key order.'
        ),
    )
    flatten: bool = Field(
        default=False,
        description=(
            "Datasets with one child dataset: one row per child with its parent's columns "
            "repeated (a parent without children: one row, child columns empty)."
        ),
    )


class ExportRequest(BaseModel):
    """Body of POST /v1/exports."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=64)
    format: str = Field(default="csv", max_length=16)
    compression: Compression = Compression.NONE
    max_file_size_mb: int | None = Field(default=None, ge=MIN_FILE_SIZE_MB, le=MAX_FILE_SIZE_MB)
    fields: list[str] | None = Field(default=None, max_length=MAX_FIELDS)
    filters: list[FilterInput] = Field(default_factory=list, max_length=MAX_FILTERS)
    time_range: TimeRangeInput | None = None
    options: ExportOptionsInput = Field(default_factory=ExportOptionsInput)
    aggregate: AggregateInput | None = Field(
        default=None,
        description="Export one row per group (time bucket and dimensions) with measures.",
    )
    summary: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Export the dataset's KPI summary of this name (GET /v1/datasets: summaries) over "
            "the rows the request selects, as csv (Metric,Value) or json (sections)."
        ),
    )
    privacy: list[PrivacyTransform] = Field(
        default_factory=list,
        max_length=len(PrivacyTransform),
        description=(
            "Privacy transforms for the columns the catalog marks sensitive (one name or a "
            "list): anonymize_ip, hash_identifiers, mask_email, drop_sensitive. A dataset may "
            "force some on the caller's role (GET /v1/datasets: privacy.forced)."
        ),
    )

    delivery: DeliveryTarget = Field(
        default_factory=LinkDelivery,
        description=(
            "Where the finished export goes besides the history: link (default, nothing is "
            'sent), webhook ({"url"}), email ({"to": [...]}) or s3 ({"bucket", "prefix", '
            '"key_template"}); see the README, Delivery.'
        ),
    )

    @field_validator("privacy", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class LegalHoldInput(BaseModel):
    """Body of PUT /v1/exports/{id}/legal-hold."""

    model_config = ConfigDict(extra="forbid")

    hold: bool = Field(description="true places the hold, false lifts it.")
    reason: str = Field(
        min_length=1, max_length=500, description="Why (a case or ticket): kept in the audit trail."
    )


@dataclass(frozen=True)
class ResolvedExport:
    """An export request checked against the catalog: everything a step needs to run it."""

    dataset: Dataset
    fields: list[str]
    filters: list[FilterClause]
    window: TimeWindow
    writer: type[FormatWriter]
    options: FormatOptions
    compression: Compression = Compression.NONE
    # Split into numbered files of at most this many bytes each (as stored), or one file.
    max_file_bytes: int | None = None
    # One row per group instead of per source row; `fields` are then its output names.
    aggregation: Aggregation | None = None
    # The privacy profile in effect and the output columns it rewrites.
    privacy: PrivacyPlan = NO_PRIVACY
    # Children nested in each row or flattened into rows; `fields` stay the parent's.
    nesting: Nesting | None = None
    # One row of KPIs instead of the rows; `fields` are then the metrics' `section.metric`.
    summary: Summary | None = None

    @property
    def media_type(self) -> str:
        """The Content-Type of the file as stored."""
        return self.compression.media_type(self.writer.media_type)

    @property
    def columns(self) -> list[OutputColumn]:
        if self.summary is not None:
            return self.summary.output_columns()
        if self.aggregation is not None:
            columns = output_columns(self.dataset, self.aggregation)
        else:
            columns = [
                OutputColumn(name=column.name, label=column.label, type=column.type)
                for column in (self.dataset.column(name) for name in self.fields)
            ]
            columns += self.nesting.output_columns() if self.nesting else []
        # A rewritten value is text (a digest, a network, a masked address) in every format.
        return [
            replace(column, type=ColumnType.STRING)
            if column.name in self.privacy.rewrites
            else column
            for column in columns
        ]

    @property
    def projections(self) -> list[str]:
        """Each output column as the select list refers to it: its quoted name, or for a
        column the privacy profile rewrites, the rewriting expression over it (the children's
        columns are rewritten where the children are read)."""
        if self.summary is not None:
            return summary_references(self.summary)
        rewrites = self.privacy.rewrites
        return [
            rewritten(rewrites[name], quote_identifier(name))
            if name in rewrites
            else quote_identifier(name)
            for name in self.fields
        ] + column_references(self.nesting.output_names if self.nesting else [])

    @property
    def column_names(self) -> list[str]:
        """The output's column names, in order: the fields, then any children's."""
        return [column.name for column in self.columns]

    @property
    def nested_children(self) -> list[ChildDataset]:
        """The children rendered to JSON inside each row: select needs their column types."""
        if self.nesting is None or self.nesting.shape is not ChildShape.NESTED:
            return []
        return list(self.nesting.children)

    def _children(
        self, child_sources: Sequence[Sequence[SourceType]] | None = None
    ) -> Children | None:
        if self.nesting is None:
            return None
        return Children(self.nesting, child_sources or (), self.privacy.child_rewrites)

    def select(
        self,
        scope: RowScope,
        select_list: list[str] | None = None,
        span: Span = WHOLE_EXPORT,
        limit: int | None = None,
        child_sources: Sequence[Sequence[SourceType]] | None = None,
    ) -> BoundQuery:
        """The export's rows; `child_sources` are the PostgreSQL types of the columns of
        each of `nested_children` (describe build_child_probe)."""
        if self.summary is not None:
            if span != WHOLE_EXPORT:
                raise ValueError("a summary is one row, never read in segments")
            return build_summary_select(
                self.dataset, self.summary, scope, self.filters, self.window
            )
        if select_list is None and self.privacy.rewrites:
            select_list = self.projections
        if self.aggregation is not None:
            if span != WHOLE_EXPORT:
                raise ValueError("an aggregated export is read whole, never in segments")
            return build_aggregate_select(
                self.dataset,
                self.aggregation,
                scope,
                self.filters,
                self.window,
                time_zone=self.options.timezone.key,
                select_list=select_list,
                limit=limit,
            )
        return build_select(
            self.dataset,
            self.fields,
            scope,
            self.filters,
            self.window,
            select_list=select_list,
            span=span,
            limit=limit,
            children=self._children(child_sources),
        )

    def bounded_count(self, scope: RowScope, bound: int) -> BoundQuery:
        if self.summary is not None:
            return SUMMARY_COUNT
        if self.aggregation is not None:
            return self._group_count(self.aggregation, scope, bound)
        return build_bounded_count(
            self.dataset, scope, self.filters, self.window, bound, children=self._children()
        )

    def count(self, scope: RowScope) -> BoundQuery:
        if self.summary is not None:
            return SUMMARY_COUNT
        if self.aggregation is not None:
            return self._group_count(self.aggregation, scope)
        return build_count(
            self.dataset, scope, self.filters, self.window, children=self._children()
        )

    @property
    def splittable(self) -> bool:
        """Whether segments can read stretches of the source's order: groups and summaries
        have no position in it, so they are read whole."""
        return self.aggregation is None and self.summary is None

    def plan_count(self, scope: RowScope) -> BoundQuery:
        if not self.splittable:
            raise ValueError("groups and summaries have no positions to plan segments by")
        return build_plan_count(
            self.dataset, scope, self.filters, self.window, children=self._children()
        )

    def _group_count(
        self, aggregation: Aggregation, scope: RowScope, bound: int | None = None
    ) -> BoundQuery:
        return build_aggregate_count(
            self.dataset,
            aggregation,
            scope,
            self.filters,
            self.window,
            time_zone=self.options.timezone.key,
            bound=bound,
        )

    def boundaries(self, scope: RowScope, every: int) -> BoundQuery:
        return build_boundaries(
            self.dataset, scope, self.filters, self.window, every, children=self._children()
        )


def resolve_fields(
    dataset: Dataset,
    requested: list[str] | None,
    profile: frozenset[PrivacyTransform] = frozenset(),
    caller: Caller | None = None,
) -> list[str]:
    """The fields to export: those asked for (checked), else the dataset's default fields,
    without the columns the privacy profile leaves out."""
    if not requested:
        kept = [
            name
            for name in dataset.default_field_names()
            if treatment(dataset, name, profile) is not PrivacyTransform.DROP_SENSITIVE
        ]
        if not kept:
            raise InvalidRequest(
                "privacy", f"Every default field of {dataset.name!r} is sensitive; name fields."
            )
        return kept
    known = {column.name for column in dataset.columns}
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise InvalidRequest(
            "fields",
            f"Unknown field(s) for dataset {dataset.name!r}: {', '.join(unknown)}.",
            {"unknown": unknown},
        )
    duplicates = sorted({name for name in requested if requested.count(name) > 1})
    if duplicates:
        raise InvalidRequest("fields", f"Field(s) listed twice: {', '.join(duplicates)}.")
    check_fields(dataset, requested, profile, caller)
    return list(requested)


def resolve_options(raw: ExportOptionsInput) -> FormatOptions:
    try:
        timezone = ZoneInfo(raw.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            "options.timezone", f"Unknown IANA time zone {raw.timezone!r}."
        ) from None
    return FormatOptions(
        timezone=timezone,
        bom=raw.bom,
        delimiter=raw.delimiter,
        line_ending=LINE_ENDINGS[raw.line_ending],
        decimal_places=raw.decimal_places,
    )


def metadata_header(
    request: ExportRequest,
    fields: list[str],
    window: TimeWindow,
    options: FormatOptions,
    now: datetime | None,
    *,
    privacy: PrivacyPlan,
    summary: Summary | None = None,
) -> dict[str, Any]:
    """What a JSON export's `metadata` object says (the seeds' shape), times in its zone. A
    summary's metrics name themselves: its metadata names the summary instead of the fields."""

    def local(moment: datetime | None) -> str | None:
        return None if moment is None else timestamp_text(moment, options.timezone)

    preset = request.time_range.preset if request.time_range else None
    if preset is None:
        preset = TimePreset.CUSTOM if window.is_bounded else TimePreset.ALL_TIME
    return {
        "export_date": local(now or datetime.now(UTC)),
        "dataset": request.dataset,
        "time_range": (preset or TimePreset.CUSTOM).value
        if window.is_bounded or preset
        else TimePreset.ALL_TIME.value,
        "start_date": local(window.start),
        "end_date": local(window.end),
        "timezone": options.timezone.key,
        **({"fields": fields} if summary is None else {}),
        "privacy": privacy.names(),
        **({"summary": summary.name} if summary is not None else {}),
    }


def _check_container_format(writer: type[FormatWriter], request: ExportRequest) -> None:
    """Formats that are containers compress inside themselves and make one file."""
    if writer.compresses_itself and request.compression is not Compression.NONE:
        raise InvalidRequest(
            "compression",
            f"{writer.name} files are compressed inside already; compression must be none.",
        )
    if writer.assembles_pieces and request.max_file_size_mb is not None:
        raise InvalidRequest(
            "max_file_size_mb", f"{writer.name} exports are one file; they cannot be split."
        )


def _check_format_options(writer: type[FormatWriter], options: ExportOptionsInput) -> None:
    """An option the format does not use is refused, not stored and ignored (GET /v1/formats
    lists each format's options). Checked when a request is made: a stored request holds every
    option with its default."""
    for name in sorted(options.model_fields_set):
        if name not in writer.request_options():
            taken = ", ".join(writer.request_options())
            raise InvalidRequest(
                f"options.{name}",
                f"{writer.name} exports take no option {name!r}; their options are {taken}.",
            )


def resolve_export(
    request: ExportRequest,
    catalog: Catalog,
    caller: Caller | None = None,
    now: datetime | None = None,
) -> ResolvedExport:
    """Check a request against the catalog (and the caller's role when given).

    Raises InvalidRequest naming the bad field, and DatasetNotFound for a dataset the caller
    may not use (or that does not exist). The steps call it without a caller: the role was
    checked when the job was created, and a dataset gone since is an invalid request. A time
    preset is resolved at `now`: the job's creation time, so every step sees the same window.
    """
    if caller is not None:
        dataset = catalog.usable_by(request.dataset, caller.role.value, "dataset")
    else:
        try:
            dataset = catalog.get(request.dataset)
        except DatasetNotFound as exc:
            raise InvalidRequest("dataset", exc.message, exc.detail) from None
    options = resolve_options(request.options)
    profile = effective_profile(
        dataset, request.privacy, caller.role.value if caller is not None else None
    )
    aggregation = summary = None
    if request.summary is not None:
        summary = _resolve_summary(dataset, request.summary, request)
        fields = summary.paths
        plan = privacy_plan(dataset, [], profile)
    elif request.aggregate is not None:
        if request.fields:
            raise InvalidRequest(
                "fields",
                "An aggregated export's columns come from aggregate.group_by and "
                "aggregate.measures; remove fields.",
            )
        aggregation = resolve_aggregation(dataset, request.aggregate)
        check_aggregation(dataset, aggregation, profile)
        fields = aggregation.output_names
        plan = privacy_plan(dataset, list(aggregation.dimensions), profile)
    else:
        fields = resolve_fields(dataset, request.fields, profile, caller)
        plan = privacy_plan(dataset, fields, profile)
    window = parse_time_window(
        request.time_range.model_dump() if request.time_range else None,
        dataset,
        options.timezone,
        now,
    )
    writer = get_format(request.format) if summary is None else _summary_writer(request)
    _check_container_format(writer, request)
    if caller is not None:
        _check_format_options(get_format(request.format), request.options)
    filters = parse_filters([item.model_dump() for item in request.filters], dataset)
    check_filters(dataset, filters, profile)
    nesting = resolve_nesting(
        dataset,
        writer,
        nested=request.options.nested,
        flatten=request.options.flatten,
        aggregated=aggregation is not None or summary is not None,
    )
    if nesting is not None:
        nesting = protected_nesting(nesting, profile)
        plan = privacy_plan(dataset, fields, profile, nesting)
    # A summary always opens with its metadata, as seed 003's do.
    if request.options.metadata or summary is not None:
        output_names = fields + nesting.output_names if nesting else fields
        metadata = metadata_header(
            request, output_names, window, options, now, privacy=plan, summary=summary
        )
        options = replace(options, metadata=metadata)
    return ResolvedExport(
        dataset=dataset,
        fields=fields,
        filters=filters,
        window=window,
        writer=writer,
        options=options,
        compression=request.compression,
        max_file_bytes=None if request.max_file_size_mb is None else request.max_file_size_mb * MB,
        aggregation=aggregation,
        privacy=plan,
        nesting=nesting,
        summary=summary,
    )


def _resolve_summary(dataset: Dataset, name: str, request: ExportRequest) -> Summary:
    """The request's summary; InvalidRequest naming what a summary cannot be combined with."""
    if request.fields:
        raise InvalidRequest("fields", "A summary's columns are its metrics; remove fields.")
    if request.aggregate is not None:
        raise InvalidRequest("aggregate", "Ask for a summary or an aggregate, not both.")
    if request.max_file_size_mb is not None:
        raise InvalidRequest("max_file_size_mb", "A summary is one small file; remove it.")
    return resolve_summary(dataset, name)


def _summary_writer(request: ExportRequest) -> type[FormatWriter]:
    writer = SUMMARY_FORMATS.get(request.format)
    if writer is None:
        allowed = ", ".join(SUMMARY_FORMATS)
        raise InvalidRequest(
            "format",
            f"A summary is written as {allowed}, not {request.format!r}.",
            {"allowed": list(SUMMARY_FORMATS)},
        )
    return writer
