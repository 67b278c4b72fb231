"""Datasets with children against a real PostgreSQL: nested JSON arrays rendered by PostgreSQL
are exactly what the Python writers would write for the child rows, children never cross
tenants, and flattened exports are the parent-child join, whole or in segments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.catalog.model import Dataset
from dataexport.export_request import ExportOptionsInput, ResolvedExport, resolve_options
from dataexport.filters import TimeWindow
from dataexport.formats import FORMATS
from dataexport.formats.json_values import row_encoder
from dataexport.formats.writer import WHOLE_FILE, FormatWriter, OutputColumn, PartPosition
from dataexport.nesting import resolve_nesting
from dataexport.query_builder import WHOLE_EXPORT, RowScope, Span
from dataexport.row_sources import PostgresRows, counted
from tests.integration.conftest import ConnectionFactory
from tests.unit.format_samples import BytesSink

TENANT, OTHER_TENANT = "org_nest", "org_other"
RUNS = 40

RUNS_DATASET = Dataset.model_validate(
    {
        "name": "runs",
        "title": "Runs",
        "source": "nest.runs",
        "tenant_column": "org_id",
        "owner_column": "owner_id",
        "time_column": "started_at",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "started_at", "type": "timestamp", "label": "Started"},
            {"name": "title", "type": "string", "label": "Title"},
        ],
        "default_sort": [{"column": "started_at", "direction": "desc"}],
        "children": [
            {
                "name": "results",
                "title": "Results",
                "source": "nest.results",
                "tenant_column": "org_id",
                "parent_column": "run_id",
                "key": "id",
                "flatten_prefix": "result_",
                "columns": [
                    {"name": "id", "type": "integer", "label": "Result ID"},
                    {"name": "note", "type": "string", "label": "Note"},
                    {"name": "ref", "type": "string", "label": "Ref"},
                    {"name": "amount", "type": "decimal", "label": "Amount"},
                    {"name": "big", "type": "integer", "label": "Big"},
                    {"name": "flag", "type": "boolean", "label": "Flag"},
                    {"name": "day", "type": "date", "label": "Day"},
                    {"name": "at", "type": "timestamp", "label": "At"},
                    {"name": "local_at", "type": "timestamp", "label": "Local"},
                ],
            }
        ],
    }
)
CHILD = RUNS_DATASET.children[0]
CHILD_COLUMNS = [OutputColumn(c.name, c.label, c.type) for c in CHILD.columns]
NOTES = [None, "", 'say "hi", then leave', "line\nbreak", "=SUM(A1)", "é 漢字 😀 \u2028", "\x01c"]
ZONES = ["UTC", "Europe/Berlin", "America/St_Johns", "Africa/Monrovia"]


@pytest.fixture(scope="module")
def reader(
    pg_socket_dir: str, pg_scratch_database: str, pg_superuser_conn_factory: ConnectionFactory
) -> Iterator[PostgresReader]:
    admin = pg_superuser_conn_factory(pg_scratch_database)
    admin.run("CREATE SCHEMA nest")
    admin.run(
        "CREATE TABLE nest.runs (id bigint PRIMARY KEY, org_id text NOT NULL, "
        "owner_id text NOT NULL, started_at timestamptz NOT NULL, title text)"
    )
    admin.run(
        "CREATE TABLE nest.results (id bigint PRIMARY KEY, org_id text NOT NULL, "
        "run_id bigint NOT NULL, note text, ref uuid, amount numeric, big bigint, flag boolean, "
        "day date, at timestamptz, local_at timestamp)"
    )
    # Every fifth run has no results; the rest up to seven, with awkward values.
    admin.run(
        "INSERT INTO nest.runs SELECT g, :org, 'usr_' || g % 3, "
        "TIMESTAMPTZ '2026-03-29 00:00:00+00' + g * interval '7 minutes', 'Run ' || g "
        "FROM generate_series(1, :runs) AS g",
        org=TENANT,
        runs=RUNS,
    )
    admin.run(
        "INSERT INTO nest.results "
        "SELECT r.id * 100 + n, :org, r.id, "
        " (CAST(:notes AS text[]))[1 + (r.id + n) % cardinality(CAST(:notes AS text[]))], "
        " CASE WHEN n % 3 = 0 THEN NULL ELSE md5(r.id::text || n)::uuid END, "
        " CASE n % 5 WHEN 0 THEN NULL WHEN 1 THEN 'NaN' WHEN 2 THEN 0.000000000123456789 "
        "  ELSE r.id * 1234567.891011121314 END, "
        " CASE WHEN n % 2 = 0 THEN -9223372036854775807 + r.id ELSE NULL END, "
        " CASE n % 3 WHEN 0 THEN true WHEN 1 THEN false END, "
        " CASE n % 4 WHEN 0 THEN NULL WHEN 1 THEN 'infinity' "
        "  ELSE DATE '2026-01-31' + CAST(n AS int) END, "
        " CASE n % 3 WHEN 0 THEN TIMESTAMPTZ '1850-06-01 12:00:00+00' + r.id * interval '1 day' "
        "  ELSE TIMESTAMPTZ '2026-10-25 00:30:00+00' + (r.id * 10 + n) * interval '61 seconds' "
        " END, "
        " TIMESTAMP '2026-03-08 01:59:59.5' + n * interval '17 minutes' "
        "FROM nest.runs AS r, generate_series(1, 1 + r.id % 7) AS n WHERE r.id % 5 <> 0",
        org=TENANT,
        notes=NOTES,
    )
    # Another tenant's results pointing at the same run ids must never show.
    admin.run(
        "INSERT INTO nest.results (id, org_id, run_id, note) "
        "SELECT 100000 + g, :other, g, 'not yours' FROM generate_series(1, :runs) AS g",
        other=OTHER_TENANT,
        runs=RUNS,
    )
    admin.close()
    secret = DatabaseSecret(pg_socket_dir, 5432, "postgres", "", pg_scratch_database)
    yield PostgresReader(secret, statement_timeout_seconds=60)


def export_of(
    format_name: str, *, nested: bool = False, flatten: bool = False, **options: Any
) -> ResolvedExport:
    writer = FORMATS[format_name]
    return ResolvedExport(
        dataset=RUNS_DATASET,
        fields=["id", "started_at", "title"],
        filters=[],
        window=TimeWindow(),
        writer=writer,
        options=resolve_options(ExportOptionsInput.model_validate(options)),
        nesting=resolve_nesting(
            RUNS_DATASET, writer, nested=nested, flatten=flatten, aggregated=False
        ),
    )


def rendered(
    export: ResolvedExport,
    reader: PostgresReader,
    *,
    by_copy: bool,
    span: Span = WHOLE_EXPORT,
    position: PartPosition = WHOLE_FILE,
) -> bytes:
    sink = BytesSink()
    writer: FormatWriter = export.writer(export.columns, export.options, sink, position)
    writer.open()
    rows = PostgresRows(reader)
    scope = RowScope(TENANT)
    if by_copy:
        assert rows.copy_plan(export, scope, writer) is not None, "expected a COPY plan"
        rows.write(export, scope, writer, lambda done: None, span)
    else:
        writer.write_rows(counted(rows.stream(export, scope, span), lambda done: None))
    writer.close()
    return bytes(sink.data)


def child_rows(reader: PostgresReader, run_id: int) -> list[list[Any]]:
    names = ", ".join(column.name for column in CHILD.columns)
    with reader._connection() as connection:  # the test's own look at the table
        rows: list[list[Any]] = connection.run(
            f"SELECT {names} FROM nest.results WHERE org_id = :org AND run_id = :run ORDER BY id",
            org=TENANT,
            run=run_id,
        )
    return rows


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("format_name", ["json", "ndjson"])
def test_nested_children_are_what_the_writer_writes_for_the_child_rows(
    reader: PostgresReader, format_name: str, zone: str
) -> None:
    # Given a nested export of runs whose results hold awkward values
    export = export_of(format_name, nested=True, timezone=zone)

    # When it is rendered through COPY and through the cursor
    by_copy = rendered(export, reader, by_copy=True)
    by_cursor = rendered(export, reader, by_copy=False)

    # Then both are the same bytes
    assert by_copy == by_cursor
    text = by_copy.decode()
    objects = (
        json.loads(text)
        if format_name == "json"
        else [json.loads(x) for x in text.split("\n") if x]
    )
    assert [run["id"] for run in objects] == list(range(RUNS, 0, -1))

    # And each run's array is exactly the Python encoding of its child rows, in key order
    encode = row_encoder(CHILD_COLUMNS, export.options.timezone)
    for run in objects:
        expected = "[" + ",".join(encode(row) for row in child_rows(reader, run["id"])) + "]"
        assert json.dumps(run["results"], ensure_ascii=False, separators=(",", ":")) == json.dumps(
            json.loads(expected), ensure_ascii=False, separators=(",", ":")
        )
        assert f'"results":{expected}' in text
    assert not any(result["note"] == "not yours" for run in objects for result in run["results"])
    assert [run["results"] for run in objects if run["id"] % 5 == 0] == [[]] * (RUNS // 5)


def test_flattened_rows_are_the_join_of_runs_and_their_results(reader: PostgresReader) -> None:
    # Given a flattened NDJSON export
    export = export_of("ndjson", flatten=True)

    # When it is rendered
    lines = [
        json.loads(line, parse_float=Decimal)
        # Not splitlines: a note holds U+2028, which JSON leaves unescaped.
        for line in rendered(export, reader, by_copy=False).decode().split("\n")
        if line
    ]

    # Then there is one row per result (one for a run without), runs newest first, results in
    # key order, and the counts agree
    with reader._connection() as connection:
        expected = connection.run(
            "SELECT r.id, c.id, c.amount FROM nest.runs AS r LEFT JOIN nest.results AS c "
            "ON c.run_id = r.id AND c.org_id = r.org_id WHERE r.org_id = :org "
            "ORDER BY r.started_at DESC, r.id DESC, c.id",
            org=TENANT,
        )
    assert [[x["id"], x["result_id"]] for x in lines] == [[row[0], row[1]] for row in expected]
    amounts = [None if row[2] is None or row[2].is_nan() else row[2] for row in expected]
    assert [x["result_amount"] for x in lines] == amounts
    rows = PostgresRows(reader)
    assert rows.count(export, RowScope(TENANT)) == len(expected)
    assert rows.count(export_of("json", nested=True), RowScope(TENANT)) == RUNS


@pytest.mark.parametrize("format_name", ["csv", "json"])
def test_flattened_segments_join_into_the_whole_export(
    reader: PostgresReader, format_name: str
) -> None:
    # Given a flattened export planned in segments of about ten rows
    export = export_of(format_name, flatten=True, timezone="Europe/Berlin")
    rows = PostgresRows(reader)
    plan = rows.plan(export, RowScope(TENANT), segment_rows=10, max_segments=100)
    bounds: list[Any] = [None, *plan.boundaries, None]
    assert len(bounds) > 3

    # When each segment is rendered through COPY as one part of the file
    parts = [
        rendered(
            export,
            reader,
            by_copy=True,
            span=Span(after=bounds[i], through=bounds[i + 1]),
            position=PartPosition(first=i == 0, last=i == len(bounds) - 2),
        )
        for i in range(len(bounds) - 1)
    ]

    # Then the parts make the whole file, byte for byte, and each segment ends at a run's end
    whole = rendered(export, reader, by_copy=False)
    assert b"".join(parts) == whole
    assert len({tuple(bound) for bound in plan.boundaries}) == len(plan.boundaries)
