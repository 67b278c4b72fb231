"""Rows of the `audit_events` dataset: a tenant's audit chain read in seq order from DynamoDB.

The counterpart of PostgresReader for `source_kind: dynamodb` datasets: it yields batches of
rows, each a list of values in the order of the requested fields, ready for the same writers.
Nothing is held beyond one batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from dataexport.adapters.audit_store import AuditTrail
from dataexport.audit import AuditEvent
from dataexport.catalog.model import Dataset, SourceKind
from dataexport.filters import FilterClause, TimeWindow, checked_fields
from dataexport.query_builder import RowScope
from dataexport.row_filter import check_clauses, row_matches

BATCH_ROWS: Final = 1000
AUDIT_TRAIL_SOURCE: Final = "audit_trail"


def event_row(event: AuditEvent) -> dict[str, Any]:
    """An event as a dataset row: column name -> typed value (`at` an aware datetime)."""
    return {**event.model_dump(), "type": event.type.value}


class AuditEventsReader:
    """Reads the rows of a dataset whose source is the audit trail."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    def count(
        self,
        dataset: Dataset,
        scope: RowScope,
        filters: Sequence[FilterClause],
        window: TimeWindow,
    ) -> int:
        """How many rows stream() would yield."""
        return sum(
            len(batch) for batch in self.stream(dataset, [dataset.key], scope, filters, window)
        )

    def stream(
        self,
        dataset: Dataset,
        fields: Sequence[str],
        scope: RowScope,
        filters: Sequence[FilterClause],
        window: TimeWindow,
        *,
        batch_rows: int = BATCH_ROWS,
    ) -> Iterator[list[list[Any]]]:
        """The tenant's rows in seq order, `fields` in that order, in batches of `batch_rows`."""
        self._check(dataset, fields, scope, filters)
        time_column = dataset.time_column
        batch: list[list[Any]] = []
        for event in self._trail.in_order(scope.org_id, start=window.start, end=window.end):
            row = event_row(event)
            if not row_matches(row, filters, window, time_column):
                continue
            batch.append([row[name] for name in fields])
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch

    @staticmethod
    def _check(
        dataset: Dataset, fields: Sequence[str], scope: RowScope, filters: Sequence[FilterClause]
    ) -> None:
        if dataset.source_kind is not SourceKind.DYNAMODB or dataset.source.table != (
            AUDIT_TRAIL_SOURCE
        ):
            raise ValueError(f"dataset {dataset.name!r} is not read from the audit trail")
        if scope.owner_id is not None:
            # The dataset has no owner column: only a whole-tenant reader (an admin) may read it.
            raise ValueError(f"dataset {dataset.name!r} is read by whole tenants only")
        checked_fields(dataset, fields)
        check_clauses(dataset, filters)
