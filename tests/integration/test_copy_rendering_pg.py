"""PostgreSQL's own rendering (COPY) against the Python writers: the same bytes, always.

The Python writers are the reference. For every format with a COPY plan, each option set and
several time zones, the rows of an awkward table are exported both ways and compared byte for
byte: NULLs, empty strings, quotes, delimiters, line breaks, formula-like cells, unicode, long
text, numeric precision, NaN and infinities, time stamps across DST changes and from the age of
local mean time (offsets with seconds), and timestamps without time zone.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.catalog.model import Dataset
from dataexport.export_request import ExportOptionsInput, ResolvedExport, resolve_options
from dataexport.filters import TimeWindow
from dataexport.formats import FORMATS
from dataexport.formats.writer import FormatWriter, PartPosition
from dataexport.query_builder import RowScope
from dataexport.row_sources import Estimate, PostgresRows, counted
from tests.integration.conftest import ConnectionFactory
from tests.unit.format_samples import BytesSink

TENANT = "org_copy"

AWKWARD = Dataset.model_validate(
    {
        "name": "awkward",
        "title": "Awkward values",
        "source": "copyr.awkward",
        "tenant_column": "org_id",
        "time_column": "created_at",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "created_at", "type": "timestamp", "label": "Created, at"},
            {"name": "local_time", "type": "timestamp", "label": 'Local "time"'},
            {"name": "note", "type": "string", "label": "Note"},
            {"name": "code", "type": "string", "label": "Code"},
            {"name": "ref", "type": "string", "label": "Reference"},
            {"name": "amount", "type": "decimal", "label": "Amount"},
            {"name": "big", "type": "integer", "label": "Big"},
            {"name": "flag", "type": "boolean", "label": "Flag"},
            {"name": "day", "type": "date", "label": "Day"},
        ],
        "default_sort": [{"column": "created_at", "direction": "desc"}],
    }
)
FIELDS = [column.name for column in AWKWARD.columns]

NOTES = [
    None,
    "",
    "plain",
    'say "hi", then leave',
    "semi;colon|pipe\ttab",
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\ninside",
    "=SUM(A1:A2)",
    "+1",
    "-2",
    "@cmd",
    "\tindented",
    "\rreturn first",
    "\\.",
    "back\\slash",
    "unicode é ü 漢字 😀 \u2028",
    "\x01control\x1f",
    "x" * 12_000,
    " leading and trailing ",
]


@pytest.fixture(scope="module")
def reader(
    pg_socket_dir: str, pg_scratch_database: str, pg_superuser_conn_factory: ConnectionFactory
) -> Iterator[PostgresReader]:
    admin = pg_superuser_conn_factory(pg_scratch_database)
    admin.run("CREATE SCHEMA copyr")
    admin.run(
        "CREATE TABLE copyr.awkward (id bigint PRIMARY KEY, org_id text NOT NULL, "
        "created_at timestamptz NOT NULL, local_time timestamp, note text, code varchar(40), "
        "ref uuid, amount numeric, big bigint, flag boolean, day date)"
    )
    # Instants around the 2026 DST changes (Europe and North America), plus old and odd ones.
    admin.run(
        "INSERT INTO copyr.awkward "
        "SELECT g, CAST(:org AS text), "
        " CASE g % 7 "
        "  WHEN 0 THEN TIMESTAMPTZ '2026-03-29 00:30:00+00' + g * interval '97 seconds' "
        "  WHEN 1 THEN TIMESTAMPTZ '2026-10-25 00:30:00+00' + g * interval '61 seconds' "
        "  WHEN 2 THEN TIMESTAMPTZ '2026-11-01 05:30:00+00' + g * interval '13 seconds' "
        "  WHEN 3 THEN TIMESTAMPTZ '1850-06-01 12:00:00+00' + g * interval '1 day' "
        "  WHEN 4 THEN TIMESTAMPTZ '1971-12-31 23:59:59.999999+00' + g * interval '1 hour' "
        "  WHEN 5 THEN TIMESTAMPTZ '0099-01-01 00:00:00+00' + g * interval '1 second' "
        "  ELSE TIMESTAMPTZ '2026-06-15 10:11:12.000001+00' + g * interval '1 microsecond' END, "
        " CASE WHEN g % 5 = 0 THEN NULL "
        "  ELSE TIMESTAMP '2026-03-08 01:59:59.5' + g * interval '17 minutes' END, "
        " (CAST(:notes AS text[]))[1 + g % cardinality(CAST(:notes AS text[]))], "
        " CASE WHEN g % 3 = 0 THEN '-' || g ELSE 'c' || g END, "
        " CASE WHEN g % 4 = 0 THEN NULL ELSE md5(g::text)::uuid END, "
        " CASE g % 6 WHEN 0 THEN NULL WHEN 1 THEN 'NaN' WHEN 2 THEN 'Infinity' "
        "  WHEN 3 THEN -0.000000000123456789 ELSE g * 1234567.891011121314 END, "
        " CASE WHEN g % 2 = 0 THEN -9223372036854775807 + g ELSE NULL END, "
        " CASE g % 3 WHEN 0 THEN true WHEN 1 THEN false END, "
        " CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN 'infinity' "
        "  ELSE DATE '2026-01-31' + g END "
        "FROM generate_series(1, 700) AS g",
        org=TENANT,
        notes=NOTES,
    )
    admin.run(
        "INSERT INTO copyr.awkward (id, org_id, created_at) VALUES "
        "(701, :org, 'infinity'), (702, :org, '-infinity')",
        org=TENANT,
    )
    admin.close()
    secret = DatabaseSecret(pg_socket_dir, 5432, "postgres", "", pg_scratch_database)
    yield PostgresReader(secret, statement_timeout_seconds=60)


def export_of(format_name: str, fields: list[str], **options: Any) -> ResolvedExport:
    return ResolvedExport(
        dataset=AWKWARD,
        fields=fields,
        filters=[],
        window=TimeWindow(),
        writer=FORMATS[format_name],
        options=resolve_options(ExportOptionsInput.model_validate(options)),
    )


def rendered(
    export: ResolvedExport, reader: PostgresReader, position: PartPosition, *, by_copy: bool
) -> tuple[bytes, int]:
    sink = BytesSink()
    writer: FormatWriter = export.writer(export.columns, export.options, sink, position)
    writer.open()
    rows = PostgresRows(reader)
    scope = RowScope(TENANT)
    if by_copy:
        assert rows.copy_plan(export, scope, writer) is not None, "expected a COPY plan"
        rows.write(export, scope, writer, lambda done: None)
    else:
        writer.write_rows(counted(rows.stream(export, scope), lambda done: None))
    rows_written = writer.close().rows
    if export.writer.name == "xlsx":  # sheet XML, deflated: compare the XML
        return zlib.decompressobj(-15).decompress(sink.data), rows_written
    return sink.data, rows_written


OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"timezone": "Europe/Berlin", "line_ending": "lf", "delimiter": ";", "bom": False},
    {"timezone": "America/St_Johns", "delimiter": "\t"},
    {"timezone": "Asia/Kolkata", "delimiter": "|"},
    {"timezone": "Africa/Monrovia"},
    {"timezone": "America/Los_Angeles", "line_ending": "lf"},
    {"timezone": "Pacific/Chatham", "decimal_places": 2},
    {"timezone": "Asia/Tokyo", "decimal_places": 0, "delimiter": ";"},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda options: options.get("timezone"))
@pytest.mark.parametrize("format_name", ["csv", "json", "ndjson", "xlsx"])
def test_copy_renders_exactly_what_the_writer_renders(
    reader: PostgresReader, format_name: str, options: dict[str, Any]
) -> None:
    # Given an export of every awkward column
    export = export_of(format_name, FIELDS, **options)

    # When PostgreSQL renders it through COPY and the Python writer renders it from a cursor
    by_copy, copied_rows = rendered(export, reader, PartPosition(), by_copy=True)
    by_writer, written_rows = rendered(export, reader, PartPosition(), by_copy=False)

    # Then both are the same bytes
    assert copied_rows == written_rows == 702
    first_difference = next(
        (i for i, (a, b) in enumerate(zip(by_copy, by_writer, strict=False)) if a != b), None
    )
    if first_difference is not None:
        start = max(0, first_difference - 120)
        assert by_copy[start : first_difference + 80] == by_writer[start : first_difference + 80]
    assert by_copy == by_writer


@pytest.mark.parametrize("format_name", ["csv", "json", "ndjson", "xlsx"])
@pytest.mark.parametrize(
    "position", [PartPosition(True, False), PartPosition(False, False), PartPosition(False, True)]
)
def test_parts_of_a_file_match_too(
    reader: PostgresReader, format_name: str, position: PartPosition
) -> None:
    export = export_of(format_name, ["id", "note", "created_at"], timezone="Europe/Berlin")
    assert rendered(export, reader, position, by_copy=True) == rendered(
        export, reader, position, by_copy=False
    )


def test_a_single_column_csv_has_no_copy_plan(reader: PostgresReader) -> None:
    # The csv module quotes a lone empty cell and COPY a lone "\.": they would differ.
    export = export_of("csv", ["note"])
    writer = export.writer(export.columns, export.options, BytesSink())
    assert PostgresRows(reader).copy_plan(export, RowScope(TENANT), writer) is None


def test_the_server_tells_which_time_zones_it_knows(reader: PostgresReader) -> None:
    # A zone Python knows but the server's database lacks makes the export take the writer.
    query = export_of("csv", ["id", "created_at"]).select(RowScope(TENANT))
    assert reader.describe(query, "Europe/Kyiv").time_zone_known
    assert not reader.describe(query, "No/Such_Zone").time_zone_known


def test_a_preview_counts_up_to_its_bound_and_asks_the_planner_beyond(
    reader: PostgresReader,
) -> None:
    export = export_of("csv", ["id", "note"])
    rows = PostgresRows(reader)
    scope = RowScope(TENANT)
    assert rows.estimate(export, scope, 10_000) == Estimate(702, exact=True)
    beyond = rows.estimate(export, scope, 100)
    assert beyond.exact is False and beyond.rows >= 100
    first = rows.first_rows(export, scope, 3)
    every = [row for batch in rows.stream(export, scope) for row in batch]
    assert first == every[:3]


@pytest.mark.parametrize("options", OPTION_SETS[:4], ids=lambda options: options.get("timezone"))
def test_parquet_from_copy_holds_what_the_writer_holds(
    reader: PostgresReader, options: dict[str, Any]
) -> None:
    # Given a Parquet export of every awkward column
    options = {key: value for key, value in options.items() if key == "timezone"}
    export = export_of("parquet", FIELDS, **options)

    # When PostgreSQL streams it as CSV for pyarrow, and the writer converts cursor rows
    by_copy, copied_rows = rendered(export, reader, PartPosition(), by_copy=True)
    by_writer, written_rows = rendered(export, reader, PartPosition(), by_copy=False)

    # Then both files hold the same typed table
    assert copied_rows == written_rows == 702
    copied = pq.read_table(pa.BufferReader(by_copy))
    written = pq.read_table(pa.BufferReader(by_writer))
    assert copied.schema == written.schema
    for name in FIELDS:
        assert copied.column(name).to_pylist() == written.column(name).to_pylist(), name
