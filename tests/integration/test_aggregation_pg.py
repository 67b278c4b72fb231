"""Aggregated exports against a real PostgreSQL: every group and measure equals what Python
computes from the raw rows, with time buckets cut in the export's zone across DST changes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pg8000.native
import pytest

from dataexport.aggregation import AggregateInput, TimeBucket, resolve_aggregation
from dataexport.catalog.model import Dataset
from dataexport.filters import TimeWindow, parse_filters
from dataexport.query_builder import RowScope, build_aggregate_count, build_aggregate_select
from tests.integration.conftest import ConnectionFactory

DATASET = Dataset.model_validate(
    {
        "name": "calls",
        "title": "Calls",
        "source": "agg.calls",
        "tenant_column": "org_id",
        "time_column": "at",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "at", "type": "timestamp", "label": "Time"},
            {"name": "model", "type": "string", "label": "Model"},
            {"name": "user_id", "type": "string", "label": "User"},
            {"name": "tokens", "type": "integer", "label": "Tokens"},
            {"name": "cost", "type": "decimal", "label": "Cost"},
        ],
        "filters": [{"column": "model", "operators": ["eq", "ne"]}],
        "aggregations": {
            "dimensions": ["model", "user_id"],
            "measures": {
                "tokens": ["sum", "avg", "min", "max", "count"],
                "cost": ["sum", "max"],
                "user_id": ["count_distinct"],
            },
        },
    }
)

PARIS = ZoneInfo("Europe/Paris")
# Around both 2026 changes in Paris (29 March, 25 October: 02:00-03:00 local happens twice),
# a month end and a week boundary (Monday 2 November).
INSTANTS = [
    datetime(2026, 3, 28, 22, 59, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    datetime(2026, 3, 31, 21, 59, tzinfo=UTC),
    datetime(2026, 3, 31, 22, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 45, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    datetime(2026, 11, 1, 22, 59, tzinfo=UTC),
    datetime(2026, 11, 1, 23, 0, tzinfo=UTC),
]
MODELS = ["alpha", "beta", None]
USERS = ["u1", "u2", "u3"]
ROWS: list[tuple[Any, ...]] = [
    (
        index + 1,
        "org_a" if index % 7 else "org_b",
        instant + timedelta(minutes=index % 3),
        MODELS[index % 3],
        USERS[index % 2 + (index % 5 == 0)],
        None if index % 11 == 0 else index * 10,
        (Decimal(index) / Decimal(7)).quantize(Decimal("1e-12")),  # as numeric(20, 12) holds it
    )
    for index, instant in enumerate(INSTANTS * 5)
]
SCOPE = RowScope("org_a")


@pytest.fixture(scope="module")
def conn(
    pg_superuser_conn_factory: ConnectionFactory, pg_scratch_database: str
) -> Iterator[pg8000.native.Connection]:
    connection = pg_superuser_conn_factory(pg_scratch_database)
    connection.run(
        "CREATE SCHEMA agg; CREATE TABLE agg.calls (id bigint PRIMARY KEY, org_id text NOT NULL, "
        "at timestamptz NOT NULL, model text, user_id text, tokens integer, cost numeric(20, 12))"
    )
    for row in ROWS:
        connection.run(
            "INSERT INTO agg.calls VALUES (:id, :org, :at, :model, :user_id, :tokens, :cost)",
            **dict(
                zip(["id", "org", "at", "model", "user_id", "tokens", "cost"], row, strict=True)
            ),
        )
    try:
        yield connection
    finally:
        connection.close()


def local_bucket(instant: datetime, bucket: TimeBucket, zone: ZoneInfo) -> datetime:
    local = instant.astimezone(zone)
    if bucket is TimeBucket.HOUR:
        start = local.replace(minute=0, second=0, microsecond=0)  # keeps the fold: which 02:00
    else:
        day = local.date()
        if bucket is TimeBucket.WEEK:
            day -= timedelta(days=day.weekday())
        elif bucket is TimeBucket.MONTH:
            day = day.replace(day=1)
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start.astimezone(UTC)


def run(conn: pg8000.native.Connection, request: dict[str, Any], zone: ZoneInfo) -> list[Any]:
    aggregation = resolve_aggregation(DATASET, AggregateInput.model_validate(request))
    query = build_aggregate_select(
        DATASET,
        aggregation,
        SCOPE,
        parse_filters(request.get("filters", []), DATASET),
        TimeWindow(),
        time_zone=zone.key,
    )
    return [list(row) for row in conn.run(query.sql, **query.params)]


def expected_groups(
    key: Callable[[tuple[Any, ...]], tuple[Any, ...]],
    measures: Callable[[list[tuple[Any, ...]]], list[Any]],
    keep: Callable[[tuple[Any, ...]], bool] = lambda row: True,
) -> list[list[Any]]:
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for row in ROWS:
        if row[1] == "org_a" and keep(row):
            groups[key(row)].append(row)

    def order(item: tuple[Any, ...]) -> tuple[Any, ...]:
        # ASC NULLS LAST, per column
        return tuple((value is None, value) for value in item)

    return [[*group, *measures(groups[group])] for group in sorted(groups, key=order)]


@pytest.mark.parametrize("bucket", list(TimeBucket))
def test_time_buckets_are_cut_in_the_export_zone(
    conn: pg8000.native.Connection, bucket: TimeBucket
) -> None:
    got = run(
        conn,
        {"time_bucket": bucket.value, "measures": [{"function": "count"}]},
        PARIS,
    )
    want = expected_groups(
        lambda row: (local_bucket(row[2], bucket, PARIS),), lambda rows: [len(rows)]
    )
    assert got == want
    if bucket is TimeBucket.HOUR:
        # Both 02:00 hours of 25 October are buckets of their own.
        starts = {row[0] for row in got}
        assert {
            datetime(2026, 10, 25, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 1, tzinfo=UTC),
        } <= starts


def test_every_measure_per_dimension_matches_python(conn: pg8000.native.Connection) -> None:
    request = {
        "time_bucket": "month",
        "group_by": ["model"],
        "measures": [
            {"function": "count"},
            {"function": "sum", "field": "tokens"},
            {"function": "avg", "field": "tokens"},
            {"function": "min", "field": "tokens"},
            {"function": "max", "field": "tokens"},
            {"function": "count", "field": "tokens"},
            {"function": "sum", "field": "cost", "name": "spend"},
            {"function": "count_distinct", "field": "user_id"},
        ],
    }
    got = run(conn, request, ZoneInfo("America/New_York"))

    def measures(rows: list[tuple[Any, ...]]) -> list[Any]:
        tokens = [row[5] for row in rows if row[5] is not None]
        return [
            len(rows),
            sum(tokens) if tokens else None,
            Decimal(sum(tokens)) / len(tokens) if tokens else None,
            min(tokens, default=None),
            max(tokens, default=None),
            len(tokens),
            sum(row[6] for row in rows),
            len({row[4] for row in rows}),
        ]

    want = expected_groups(
        lambda row: (local_bucket(row[2], TimeBucket.MONTH, ZoneInfo("America/New_York")), row[3]),
        measures,
    )
    assert len(got) == len(want)
    for got_row, want_row in zip(got, want, strict=True):
        avg = got_row.pop(4)
        wanted_avg = want_row.pop(4)
        assert got_row == want_row
        assert (avg is None) == (wanted_avg is None)
        if avg is not None:
            assert abs(avg - wanted_avg) < Decimal("1e-12")


def test_dimensions_without_a_bucket_group_the_filtered_rows(
    conn: pg8000.native.Connection,
) -> None:
    aggregation = resolve_aggregation(
        DATASET,
        AggregateInput.model_validate(
            {"group_by": ["user_id", "model"], "measures": [{"function": "max", "field": "cost"}]}
        ),
    )
    # `ne` keeps the rows without a model
    filters = parse_filters([{"field": "model", "op": "ne", "value": "beta"}], DATASET)
    query = build_aggregate_select(
        DATASET, aggregation, SCOPE, filters, TimeWindow(), time_zone="UTC"
    )
    got = [list(row) for row in conn.run(query.sql, **query.params)]
    want = expected_groups(
        lambda row: (row[4], row[3]),
        lambda rows: [max(row[6] for row in rows)],
        keep=lambda row: row[3] != "beta",
    )
    assert got == want
    count = build_aggregate_count(
        DATASET, aggregation, SCOPE, filters, TimeWindow(), time_zone="UTC"
    )
    assert conn.run(count.sql, **count.params)[0][0] == len(want)
    bounded = build_aggregate_count(
        DATASET, aggregation, SCOPE, filters, TimeWindow(), time_zone="UTC", bound=2
    )
    assert conn.run(bounded.sql, **bounded.params)[0][0] == 2


def test_a_total_without_groups_is_one_row(conn: pg8000.native.Connection) -> None:
    got = run(
        conn,
        {"measures": [{"function": "count"}, {"function": "sum", "field": "cost"}]},
        ZoneInfo("UTC"),
    )
    org_a = [row for row in ROWS if row[1] == "org_a"]
    assert got == [[len(org_a), sum(row[6] for row in org_a)]]
