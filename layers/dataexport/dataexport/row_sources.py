"""Where an export's rows come from: the application's PostgreSQL, or the service's own audit
trail in DynamoDB. Both yield the same batches of rows, in the dataset's stable order, so every
writer and step works with either."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from dataexport.adapters.audit_events_reader import AuditEventsReader
from dataexport.adapters.postgres import PostgresReader
from dataexport.catalog.model import Dataset, SourceKind
from dataexport.export_request import ResolvedExport
from dataexport.formats.writer import CopyPlan, FormatWriter
from dataexport.query_builder import RowScope, column_references

ProgressCallback = Callable[[int], None]


class RowSource(Protocol):
    def count(self, export: ResolvedExport, scope: RowScope) -> int: ...

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]: ...

    def write(
        self,
        export: ResolvedExport,
        scope: RowScope,
        writer: FormatWriter,
        on_progress: ProgressCallback,
    ) -> None:
        """Feed every row in scope to the open `writer`, the fastest way both allow."""


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


class PostgresRows:
    """Rows from the one query the catalog builds: rendered by PostgreSQL and streamed by COPY
    when the format has a COPY plan for these columns, else over a server-side cursor."""

    def __init__(self, reader: PostgresReader) -> None:
        self._reader = reader

    def count(self, export: ResolvedExport, scope: RowScope) -> int:
        return self._reader.count(export.count(scope))

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]:
        return self._reader.stream(export.select(scope))

    def copy_plan(
        self, export: ResolvedExport, scope: RowScope, writer: FormatWriter
    ) -> CopyPlan | None:
        """The writer's COPY plan for the columns' actual types, if it has one."""
        described = self._reader.describe(export.select(scope), export.options.timezone.key)
        if not described.time_zone_known:
            return None
        return writer.copy_plan(described.column_types, column_references(export.fields))

    def write(
        self,
        export: ResolvedExport,
        scope: RowScope,
        writer: FormatWriter,
        on_progress: ProgressCallback,
    ) -> None:
        plan = self.copy_plan(export, scope, writer)
        if plan is None:
            writer.write_rows(counted(self.stream(export, scope), on_progress))
            return
        self._reader.copy(
            export.select(scope, plan.select_list),
            plan.copy_options,
            writer.copy_target(plan, on_progress),
            time_zone=export.options.timezone.key,
        )


class AuditTrailRows:
    """Rows of the tenant's audit chain, in seq order."""

    def __init__(self, reader: AuditEventsReader) -> None:
        self._reader = reader

    def count(self, export: ResolvedExport, scope: RowScope) -> int:
        return self._reader.count(export.dataset, scope, export.filters, export.window)

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]:
        return self._reader.stream(
            export.dataset, export.fields, scope, export.filters, export.window
        )

    def write(
        self,
        export: ResolvedExport,
        scope: RowScope,
        writer: FormatWriter,
        on_progress: ProgressCallback,
    ) -> None:
        writer.write_rows(counted(self.stream(export, scope), on_progress))


def row_source_chooser(
    postgres: Callable[[], PostgresReader], audit: Callable[[], AuditEventsReader]
) -> RowSourceFor:
    """Pick each dataset's source by its declared kind; readers are made only when needed."""

    def choose(dataset: Dataset) -> RowSource:
        if dataset.source_kind is SourceKind.DYNAMODB:
            return AuditTrailRows(audit())
        return PostgresRows(postgres())

    return choose
