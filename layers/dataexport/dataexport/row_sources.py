"""Where an export's rows come from: the application's PostgreSQL, or the service's own audit
trail in DynamoDB. Both yield the same batches of rows, in the dataset's stable order, so every
writer and step works with either."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from dataexport.adapters.audit_events_reader import AuditEventsReader
from dataexport.adapters.postgres import PostgresReader
from dataexport.catalog.model import Dataset, SourceKind
from dataexport.export_request import ResolvedExport
from dataexport.query_builder import RowScope


class RowSource(Protocol):
    def count(self, export: ResolvedExport, scope: RowScope) -> int: ...

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]: ...


RowSourceFor = Callable[[Dataset], RowSource]


class PostgresRows:
    """Rows from the one query the catalog builds, over a read-only server-side cursor."""

    def __init__(self, reader: PostgresReader) -> None:
        self._reader = reader

    def count(self, export: ResolvedExport, scope: RowScope) -> int:
        return self._reader.count(export.count(scope))

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]:
        return self._reader.stream(export.select(scope))


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


def row_source_chooser(
    postgres: Callable[[], PostgresReader], audit: Callable[[], AuditEventsReader]
) -> RowSourceFor:
    """Pick each dataset's source by its declared kind; readers are made only when needed."""

    def choose(dataset: Dataset) -> RowSource:
        if dataset.source_kind is SourceKind.DYNAMODB:
            return AuditTrailRows(audit())
        return PostgresRows(postgres())

    return choose
