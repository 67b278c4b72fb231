"""The built SQL against a real PostgreSQL: every operator returns exactly the right rows.

pg8000 sends parameters untyped; these tests prove PostgreSQL infers the right types, including
Python lists bound to `= ANY(:p)` for integers, text, decimals, floats, dates and timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pg8000.native
import pytest

from dataexport.catalog.model import Dataset
from dataexport.filters import TimeWindow, parse_filters, parse_time_window
from dataexport.query_builder import RowScope, build_count, build_select
from tests.integration.conftest import ConnectionFactory

ALL_OPERATORS = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null"]

DATASET = Dataset.model_validate(
    {
        "name": "items",
        "title": "Items",
        "source": "qb.items",
        "tenant_column": "org_id",
        "owner_column": "owner_id",
        "time_column": "created_at",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "created_at", "type": "timestamp", "label": "Created"},
            {"name": "name", "type": "string", "label": "Name"},
            {"name": "qty", "type": "integer", "label": "Quantity"},
            {"name": "price", "type": "decimal", "label": "Price"},
            {"name": "ratio", "type": "float", "label": "Ratio"},
            {"name": "active", "type": "boolean", "label": "Active"},
            {"name": "day", "type": "date", "label": "Day"},
            {"name": "doc", "type": "json", "label": "Document"},
        ],
        "filters": [
            {"column": "id", "operators": ALL_OPERATORS},
            {"column": "created_at", "operators": ALL_OPERATORS},
            {"column": "name", "operators": [*ALL_OPERATORS, "prefix"]},
            {"column": "qty", "operators": ALL_OPERATORS},
            {"column": "price", "operators": ALL_OPERATORS},
            {"column": "ratio", "operators": ALL_OPERATORS},
            {"column": "active", "operators": ["eq", "ne", "is_null"]},
            {"column": "day", "operators": ALL_OPERATORS},
            {"column": "doc", "operators": ["is_null"]},
        ],
        "default_sort": [{"column": "created_at", "direction": "desc"}],
    }
)


def ts(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


# id, org, owner, created_at, name, qty, price, ratio, active, day, doc
ROWS: list[tuple[Any, ...]] = [
    (1, "org_a", "u1", ts(1), "alpha", 1, Decimal("1.5"), 0.5, True, date(2026, 3, 1), {"k": 1}),
    (
        2,
        "org_a",
        "u1",
        ts(2),
        'quote " and, comma',
        2,
        Decimal("0.0001"),
        1.25,
        False,
        date(2026, 3, 2),
        None,
    ),
    (
        3,
        "org_a",
        "u2",
        ts(3),
        "100%_off",
        3,
        Decimal("12345678.1234"),
        2.0,
        None,
        date(2026, 3, 3),
        [1, 2],
    ),
    (4, "org_a", "u2", ts(4), "back\\slash {x}", None, None, None, True, None, None),
    (5, "org_a", "u1", ts(5), "NULL", 5, Decimal("-2"), -1.5, False, date(2026, 3, 5), {}),
    (6, "org_a", "u2", ts(5), None, 6, Decimal("1.5"), 0.5, True, date(2026, 3, 6), None),
    (7, "org_a", "u1", ts(7), "100 percent", 7, Decimal("7"), 7.0, True, date(2026, 3, 7), None),
    (8, "org_b", "u1", ts(2), "alpha", 1, Decimal("1.5"), 0.5, True, date(2026, 3, 1), None),
]
ORG_A = {row[0] for row in ROWS if row[1] == "org_a"}
ORG_A_SCOPE = RowScope("org_a")
NO_WINDOW = TimeWindow()


@pytest.fixture(scope="module")
def conn(
    pg_superuser_conn_factory: ConnectionFactory, pg_scratch_database: str
) -> Iterator[pg8000.native.Connection]:
    connection = pg_superuser_conn_factory(pg_scratch_database)
    connection.run(
        "CREATE SCHEMA qb; CREATE TABLE qb.items (id bigint PRIMARY KEY, org_id text NOT NULL, "
        "owner_id text NOT NULL, created_at timestamptz NOT NULL, name text, qty integer, "
        "price numeric(14, 4), ratio double precision, active boolean, day date, doc jsonb)"
    )
    for row in ROWS:
        connection.run(
            "INSERT INTO qb.items VALUES (:id, :org, :owner, :created, :name, :qty, :price, "
            ":ratio, :active, :day, CAST(:doc AS jsonb))",
            id=row[0],
            org=row[1],
            owner=row[2],
            created=row[3],
            name=row[4],
            qty=row[5],
            price=row[6],
            ratio=row[7],
            active=row[8],
            day=row[9],
            doc=None if row[10] is None else json.dumps(row[10]),
        )
    try:
        yield connection
    finally:
        connection.close()


def selected_ids(
    conn: pg8000.native.Connection,
    filters: list[dict[str, Any]],
    scope: RowScope = ORG_A_SCOPE,
    window: TimeWindow = NO_WINDOW,
) -> list[int]:
    clauses = parse_filters(filters, DATASET)
    query = build_select(DATASET, ["id"], scope, clauses, window)
    ids = [int(row[0]) for row in conn.run(query.sql, **query.params)]
    count = build_count(DATASET, scope, clauses, window)
    assert conn.run(count.sql, **count.params)[0][0] == len(ids)
    return ids


CASES: list[tuple[str, Any, Any, set[int]]] = [
    # field, op, value, expected ids (org_a only)
    ("id", "eq", 3, {3}),
    ("id", "in", [1, 3, 8, 99], {1, 3}),
    ("id", "not_in", [1, 2], ORG_A - {1, 2}),
    ("qty", "ne", 1, ORG_A - {1}),  # ne keeps NULL (row 4)
    ("qty", "not_in", [1, 2, 3], {4, 5, 6, 7}),  # not_in keeps NULL
    ("qty", "gt", 5, {6, 7}),
    ("qty", "gte", 5, {5, 6, 7}),
    ("qty", "lt", 2, {1}),
    ("qty", "lte", 2, {1, 2}),
    ("qty", "between", [2, 5], {2, 3, 5}),
    ("qty", "is_null", True, {4}),
    ("qty", "is_null", False, ORG_A - {4}),
    ("name", "eq", 'quote " and, comma', {2}),
    ("name", "in", ['quote " and, comma', "back\\slash {x}", "NULL"], {2, 4, 5}),
    ("name", "not_in", ["alpha", "NULL"], {2, 3, 4, 6, 7}),
    ("name", "prefix", "100%", {3}),  # % is literal, not a wildcard
    ("name", "prefix", "100_", set()),  # so is _
    ("name", "prefix", "100%_", {3}),
    ("name", "prefix", "100", {3, 7}),
    ("name", "prefix", "back\\", {4}),
    ("name", "prefix", "'; DROP TABLE qb.items; --", set()),
    ("price", "in", ["1.5", Decimal("0.0001"), 7], {1, 2, 6, 7}),
    ("price", "gt", "12345678.1233", {3}),
    ("price", "between", [-2, "1.5"], {1, 2, 5, 6}),
    ("ratio", "in", [0.5, 1.25], {1, 2, 6}),
    ("ratio", "lt", 0, {5}),
    ("active", "eq", True, {1, 4, 6, 7}),
    ("active", "ne", True, {2, 3, 5}),
    ("active", "is_null", True, {3}),
    ("day", "in", ["2026-03-01", "2026-03-07"], {1, 7}),
    ("day", "between", ["2026-03-02", "2026-03-05"], {2, 3, 5}),
    ("created_at", "in", ["2026-03-05T00:00:00Z", "2026-03-01T01:00:00+01:00"], {1, 5, 6}),
    ("created_at", "gte", "2026-03-05T00:00:00Z", {5, 6, 7}),
    ("created_at", "between", ["2026-03-02T00:00:00Z", "2026-03-04T00:00:00Z"], {2, 3, 4}),
    ("doc", "is_null", False, {1, 3, 5}),
]


@pytest.mark.parametrize(("field", "op", "value", "expected"), CASES)
def test_each_operator_returns_exactly_the_matching_rows(
    conn: pg8000.native.Connection, field: str, op: str, value: Any, expected: set[int]
) -> None:
    # When a filter is parsed, built and run
    ids = selected_ids(conn, [{"field": field, "op": op, "value": value}])

    # Then the rows are the tenant's matching rows, each once
    assert sorted(ids) == sorted(expected)


def test_filters_combine_with_and(conn: pg8000.native.Connection) -> None:
    filters = [
        {"field": "qty", "op": "gte", "value": 2},
        {"field": "active", "op": "eq", "value": True},
    ]
    assert sorted(selected_ids(conn, filters)) == [6, 7]


def test_the_owner_scope_and_the_tenant_scope_hold(conn: pg8000.native.Connection) -> None:
    assert sorted(selected_ids(conn, [], RowScope("org_a", "u1"))) == [1, 2, 5, 7]
    assert selected_ids(conn, [], RowScope("org_b")) == [8]
    assert selected_ids(conn, [], RowScope("org_b", "u2")) == []
    assert selected_ids(conn, [], RowScope("' OR '1'='1")) == []


def test_the_time_window_is_half_open(conn: pg8000.native.Connection) -> None:
    window = parse_time_window(
        {"start": "2026-03-02T00:00:00Z", "end": "2026-03-05T00:00:00Z"}, DATASET
    )
    assert sorted(selected_ids(conn, [], window=window)) == [2, 3, 4]


def test_rows_come_in_default_order_with_the_key_breaking_ties(
    conn: pg8000.native.Connection,
) -> None:
    # created_at desc; rows 5 and 6 share a timestamp, so the key (desc) orders them
    assert selected_ids(conn, []) == [7, 6, 5, 4, 3, 2, 1]


def test_selected_values_come_back_in_field_order(conn: pg8000.native.Connection) -> None:
    fields = ["name", "price", "doc", "day"]
    query = build_select(
        DATASET, fields, RowScope("org_a"), parse_filters([], DATASET), TimeWindow()
    )
    rows = conn.run(query.sql, **query.params)
    assert rows[-1] == ["alpha", Decimal("1.5000"), {"k": 1}, date(2026, 3, 1)]
