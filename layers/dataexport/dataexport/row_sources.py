"""Where an export's rows come from: the application's PostgreSQL, or the service's own audit
trail in DynamoDB. Both yield the same batches of rows, in the dataset's stable order, so every
writer and step works with either."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from dataexport.adapters.audit_events_reader import AuditEventsReader
from dataexport.adapters.postgres import PostgresReader
from dataexport.catalog.model import Dataset, SourceKind
from dataexport.errors import QueryFailed
from dataexport.export_request import ResolvedExport
from dataexport.formats.writer import CopyPlan, FormatWriter
from dataexport.privacy import HashingKey, HashingKeySource
from dataexport.privacy_sql import hashing_settings
from dataexport.query_builder import (
    WHOLE_EXPORT,
    BoundQuery,
    RowScope,
    Span,
    build_child_probe,
)
from dataexport.sql_rendering import SourceType

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class RowsPlan:
    """How many rows an export has, and where its segments end: the sort positions
    (export_order values) of every segment's last row but the final segment's."""

    rows_total: int
    boundaries: list[list[Any]] = field(default_factory=list)


class RowSource(Protocol):
    def count(self, export: ResolvedExport, scope: RowScope) -> int: ...

    def plan(
        self, export: ResolvedExport, scope: RowScope, segment_rows: int, max_segments: int
    ) -> RowsPlan:
        """Count the rows and, if there are more than `segment_rows` and the source can
        read a stretch of its order on its own, cut them into segments of that many (more
        where that would make over `max_segments` segments)."""

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]: ...

    def first_rows(self, export: ResolvedExport, scope: RowScope, limit: int) -> list[list[Any]]:
        """The export's first `limit` rows, in its order (a preview)."""

    def estimate(self, export: ResolvedExport, scope: RowScope, bound: int) -> Estimate:
        """How many rows the export has: counted up to `bound`, estimated beyond."""

    def write(
        self,
        export: ResolvedExport,
        scope: RowScope,
        writer: FormatWriter,
        on_progress: ProgressCallback,
        span: Span = WHOLE_EXPORT,
    ) -> None:
        """Feed every row of `span` in scope to the open `writer`, the fastest way both allow."""


@dataclass(frozen=True)
class Estimate:
    rows: int
    exact: bool


RowSourceFor = Callable[[Dataset], RowSource]


def counted(
    batches: Iterable[list[list[Any]]], on_progress: ProgressCallback
) -> Iterator[list[Any]]:
    """The rows of `batches`, telling `on_progress` the running count after each batch."""
    done = 0
    for batch in batches:
        yield from batch
        done += len(batch)
        on_progress(done)


def no_hashing_key() -> HashingKey:
    raise RuntimeError("this function has no hashing key (HASHING_SECRET_ARN)")


class PostgresRows:
    """Rows from the one query the catalog builds: rendered by PostgreSQL and streamed by COPY
    when the format has a COPY plan for these columns, else over a server-side cursor.

    The privacy profile's rewrites are part of that query; a query that hashes gets the key's
    pads as session settings (`hashing_key` is asked only then)."""

    def __init__(self, reader: PostgresReader, hashing_key: HashingKeySource = no_hashing_key):
        self._reader = reader
        self._hashing_key = hashing_key
        # Column types, once per export: every segment of it has the same.
        self._described: dict[str, list[SourceType] | None] = {}
        self._child_sources: dict[str, list[SourceType]] = {}

    def _nested_sources(self, export: ResolvedExport) -> list[list[SourceType]] | None:
        """The PostgreSQL types of each nested child's columns (None: nothing nested)."""
        children = export.nested_children
        if not children:
            return None
        sources = []
        for child in children:
            probe = build_child_probe(child)
            if probe.sql not in self._child_sources:
                described = self._reader.describe(probe, export.options.timezone.key)
                if not described.time_zone_known:
                    # Nested children are rendered by PostgreSQL, in the export's zone.
                    raise QueryFailed(
                        f"The database does not know the time zone "
                        f"{export.options.timezone.key!r}; nested rows need it."
                    )
                self._child_sources[probe.sql] = described.column_types
            sources.append(self._child_sources[probe.sql])
        return sources

    def _select(
        self,
        export: ResolvedExport,
        scope: RowScope,
        select_list: list[str] | None = None,
        span: Span = WHOLE_EXPORT,
        limit: int | None = None,
    ) -> BoundQuery:
        query = export.select(scope, select_list, span, limit, self._nested_sources(export))
        if not export.privacy.needs_key:
            return query
        return replace(query, settings=hashing_settings(self._hashing_key()))

    def _rendering_zone(self, export: ResolvedExport) -> str | None:
        """The session time zone a query needs when it renders time stamps as text itself."""
        return export.options.timezone.key if export.nested_children else None

    def count(self, export: ResolvedExport, scope: RowScope) -> int:
        return self._reader.count(export.count(scope))

    def plan(
        self, export: ResolvedExport, scope: RowScope, segment_rows: int, max_segments: int
    ) -> RowsPlan:
        if not export.splittable:
            return RowsPlan(self.count(export, scope))
        rows_total, without_position = self._reader.fetch(export.plan_count(scope))[0]
        if without_position or rows_total <= segment_rows:
            return RowsPlan(int(rows_total))
        segment_rows = max(segment_rows, -(-rows_total // max_segments))
        boundaries = self._reader.fetch(export.boundaries(scope, segment_rows))
        if rows_total % segment_rows == 0:
            boundaries = boundaries[:-1]  # the final row ends the final segment anyway
        return RowsPlan(int(rows_total), [list(position) for position in boundaries])

    def stream(
        self, export: ResolvedExport, scope: RowScope, span: Span = WHOLE_EXPORT
    ) -> Iterator[list[list[Any]]]:
        return self._reader.stream(
            self._select(export, scope, span=span), time_zone=self._rendering_zone(export)
        )

    def first_rows(self, export: ResolvedExport, scope: RowScope, limit: int) -> list[list[Any]]:
        batches = self._reader.stream(
            self._select(export, scope, limit=limit),
            batch_rows=limit,
            time_zone=self._rendering_zone(export),
        )
        return [row for batch in batches for row in batch]

    def estimate(self, export: ResolvedExport, scope: RowScope, bound: int) -> Estimate:
        counted_rows = self._reader.count(export.bounded_count(scope, bound))
        if counted_rows < bound:
            return Estimate(counted_rows, exact=True)
        planned = self._reader.planned_rows(self._select(export, scope))
        return Estimate(max(bound, planned), exact=False)

    def copy_plan(
        self, export: ResolvedExport, scope: RowScope, writer: FormatWriter
    ) -> CopyPlan | None:
        """The writer's COPY plan for the columns' actual types, if it has one."""
        query = self._select(export, scope)
        if query.sql not in self._described:
            described = self._reader.describe(query, export.options.timezone.key)
            self._described[query.sql] = (
                described.column_types if described.time_zone_known else None
            )
        types = self._described[query.sql]
        if types is None:
            return None
        return writer.copy_plan(types, export.projections)

    def write(
        self,
        export: ResolvedExport,
        scope: RowScope,
        writer: FormatWriter,
        on_progress: ProgressCallback,
        span: Span = WHOLE_EXPORT,
    ) -> None:
        plan = self.copy_plan(export, scope, writer)
        if plan is None:
            writer.write_rows(counted(self.stream(export, scope, span), on_progress))
            return
        self._reader.copy(
            self._select(export, scope, plan.select_list, span),
            plan.copy_options,
            writer.copy_target(plan, on_progress),
            time_zone=export.options.timezone.key,
        )


class WholeStreamRows(ABC):
    """A source read whole and in order by `stream` (never split into segments), its rows
    always rendered by the Python writer."""

    @abstractmethod
    def count(self, export: ResolvedExport, scope: RowScope) -> int: ...

    @abstractmethod
    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]: ...

    def plan(
        self, export: ResolvedExport, scope: RowScope, segment_rows: int, max_segments: int
    ) -> RowsPlan:
        return RowsPlan(self.count(export, scope))

    def first_rows(self, export: ResolvedExport, scope: RowScope, limit: int) -> list[list[Any]]:
        batches = self.stream(export, scope)
        rows: list[list[Any]] = []
        try:
            for batch in batches:
                rows += batch[: limit - len(rows)]
                if len(rows) >= limit:
                    break
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        return rows

    def estimate(self, export: ResolvedExport, scope: RowScope, bound: int) -> Estimate:
        return Estimate(self.count(export, scope), exact=True)

    def write(
        self,
        export: ResolvedExport,
        scope: RowScope,
        writer: FormatWriter,
        on_progress: ProgressCallback,
        span: Span = WHOLE_EXPORT,
    ) -> None:
        if span != WHOLE_EXPORT:
            raise ValueError(f"{type(self).__name__} is read whole, never in segments")
        writer.write_rows(counted(self.stream(export, scope), on_progress))


class AuditTrailRows(WholeStreamRows):
    """Rows of the tenant's audit chain, in seq order (one partition key: never split), with
    the privacy profile's rewrites applied in Python."""

    def __init__(
        self, reader: AuditEventsReader, hashing_key: HashingKeySource = no_hashing_key
    ) -> None:
        self._reader = reader
        self._hashing_key = hashing_key

    def count(self, export: ResolvedExport, scope: RowScope) -> int:
        return self._reader.count(export.dataset, scope, export.filters, export.window)

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]:
        batches = self._reader.stream(
            export.dataset, export.fields, scope, export.filters, export.window
        )
        return export.privacy.apply(export.fields, batches, self._hashing_key)


def row_source_chooser(
    postgres: Callable[[], PostgresReader],
    audit: Callable[[], AuditEventsReader],
    hashing_key: HashingKeySource = no_hashing_key,
) -> RowSourceFor:
    """Pick each dataset's source by its declared kind; readers are made only when needed,
    the hashing key only when an export hashes."""

    def choose(dataset: Dataset) -> RowSource:
        if dataset.source_kind is SourceKind.DYNAMODB:
            return AuditTrailRows(audit(), hashing_key)
        return PostgresRows(postgres(), hashing_key)

    return choose
