"""Filters and time windows applied to rows that do not come from SQL (DynamoDB datasets).

The same FilterClause and TimeWindow the query builder turns into SQL, evaluated in Python with
PostgreSQL's meaning, so a dataset answers the same way whatever its source: `ne` and `not_in`
keep NULLs (IS DISTINCT FROM), every other comparison with NULL is false.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dataexport.catalog.model import Dataset, FilterOperator
from dataexport.errors import InvalidRequest
from dataexport.filters import FilterClause, TimeWindow, check_clause


def check_clauses(dataset: Dataset, filters: Sequence[FilterClause]) -> None:
    """Refuse a filter on a column or with an operator the dataset does not allow."""
    for index, clause in enumerate(filters):
        check_clause(dataset, clause, index)


def clause_matches(value: Any, clause: FilterClause) -> bool:
    """Whether a row whose column holds `value` passes `clause`."""
    op, wanted = clause.op, clause.value
    if op is FilterOperator.IS_NULL:
        return (value is None) == bool(wanted)
    if op is FilterOperator.NE:
        return bool(value is None or value != wanted)
    if op is FilterOperator.NOT_IN:
        return value is None or value not in wanted
    if value is None:
        return False
    if op is FilterOperator.EQ:
        return bool(value == wanted)
    if op is FilterOperator.IN:
        return value in wanted
    if op is FilterOperator.GT:
        return bool(value > wanted)
    if op is FilterOperator.GTE:
        return bool(value >= wanted)
    if op is FilterOperator.LT:
        return bool(value < wanted)
    if op is FilterOperator.LTE:
        return bool(value <= wanted)
    if op is FilterOperator.BETWEEN:
        low, high = wanted
        return bool(low <= value <= high)
    if op is FilterOperator.PREFIX:
        return isinstance(value, str) and value.startswith(wanted)
    raise InvalidRequest("filters", f"Operator {op.value!r} is not supported.")


def row_matches(
    row: Mapping[str, Any],
    filters: Sequence[FilterClause],
    window: TimeWindow,
    time_column: str | None,
) -> bool:
    """Whether a row (column name -> value) is in the window and passes every filter."""
    if time_column is not None and window.is_bounded:
        moment = row.get(time_column)
        if moment is None:
            return False
        if window.start is not None and moment < window.start:
            return False
        if window.end is not None and moment >= window.end:
            return False
    return all(clause_matches(row.get(clause.column), clause) for clause in filters)
