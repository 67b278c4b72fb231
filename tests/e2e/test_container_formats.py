"""XLSX and Parquet exports through the whole product: partitions of segments formatted by
many Format invocations, assembled by the Upload step into one workbook or one Parquet file,
downloaded through the presigned URL and read back with openpyxl and pyarrow, cell by cell
against what PostgreSQL returns."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.catalog.loader import load_catalog
from dataexport.catalog.model import ColumnType
from dataexport.export_request import ExportRequest, ResolvedExport, resolve_export
from dataexport.query_builder import RowScope
from dataexport.row_sources import PostgresRows
from dataexport_local.postgres import LocalDatabase
from tests.conftest import TEST_DATASETS
from tests.e2e.http_client import ApiClient

START, END = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
SEGMENT_ROWS = 300
FIELDS = [
    "id",
    "created_at",
    "user_name",
    "model",
    "provider_name",
    "status_code",
    "total_tokens",
    "cost_usd",
    "duration_ms",
]


def container_runtime(runtime_factory: Any, setup_files: Sequence[Path] = ()) -> Any:
    """A runtime whose exports run several partitions of a few segments each."""
    parameters = {
        "ExportSegmentRows": str(SEGMENT_ROWS),
        "ExportPartitionSegments": "2",
        "FormatMaxConcurrency": "2",
        "ExportsPerHour": "100",
    }
    return runtime_factory(parameters, worker_setup_files=setup_files)


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[Any]:
    with container_runtime(runtime_factory) as started:
        yield started


def admin(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))


def source_rows(
    database: LocalDatabase, request: dict[str, Any]
) -> tuple[ResolvedExport, list[list[Any]]]:
    resolved = resolve_export(ExportRequest.model_validate(request), load_catalog(TEST_DATASETS))
    reader = PostgresReader(
        DatabaseSecret.from_secret_string(json.dumps(database.reader_settings.as_secret())), 60
    )
    rows = [
        row
        for batch in PostgresRows(reader).stream(resolved, RowScope("org_acme"))
        for row in batch
    ]
    return resolved, rows


def exported(runtime: Any, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    done, body = admin(runtime).export(request, timeout=180)
    assert hashlib.sha256(body).hexdigest() == done["sha256"]
    assert len(body) == done["bytes"]
    return done, body


def excel_value(value: Any, column_type: ColumnType, zone: ZoneInfo) -> Any:
    """What openpyxl reads for a PostgreSQL value written to a cell."""
    if value is None:
        return None
    if column_type is ColumnType.TIMESTAMP:
        return value.astimezone(zone).replace(tzinfo=None)
    if column_type is ColumnType.DECIMAL:
        return float(value)
    return value


def test_an_xlsx_export_without_rows_is_a_workbook_with_its_header(runtime: Any) -> None:
    request = {
        "dataset": "usage_logs",
        "format": "xlsx",
        "fields": FIELDS,
        "time_range": {"start": "1990-01-01T00:00:00Z", "end": "1990-01-02T00:00:00Z"},
    }
    done, body = exported(runtime, request)
    assert done["rows_exported"] == 0
    (sheet,) = openpyxl.load_workbook(io.BytesIO(body)).worksheets
    assert len(list(sheet.iter_rows(values_only=True))) == 1


def test_a_parquet_export_is_one_typed_file_of_every_segment(
    runtime: Any, database: LocalDatabase
) -> None:
    # Given an export of several partitions
    zone = ZoneInfo("Europe/Berlin")
    request = {
        "dataset": "usage_logs",
        "format": "parquet",
        "time_range": {"start": START, "end": END},
        "options": {"timezone": zone.key},
    }
    resolved, expected = source_rows(database, request)
    assert len(expected) > 4 * SEGMENT_ROWS

    # When it runs and the file is downloaded
    done, body = exported(runtime, request)

    # Then pyarrow reads every row, typed as the catalog says, equal to PostgreSQL's values
    table = pq.read_table(pa.BufferReader(body))
    assert done["file_name"].endswith(".parquet")
    manifest = done["manifest"]
    assert (manifest["rows"], manifest["bytes"], manifest["sha256"]) == (
        done["rows_exported"],
        done["bytes"],
        done["sha256"],
    )
    assert manifest["file_count"] == 1 and manifest["timezone"] == zone.key
    assert [column["name"] for column in manifest["schema"]] == resolved.fields
    assert table.num_rows == done["rows_exported"] == len(expected)
    assert table.column_names == resolved.fields
    assert table.schema.field("created_at").type == pa.timestamp("us", tz=zone.key)
    assert table.schema.field("cost_usd").type == pa.decimal128(38, 10)
    assert table.schema.field("status_code").type == pa.int64()
    columns = [table.column(name).to_pylist() for name in resolved.fields]
    for index, want in enumerate(expected):
        got = [column[index] for column in columns]
        for value, wanted, column in zip(got, want, resolved.columns, strict=True):
            if column.type is ColumnType.DECIMAL and wanted is not None:
                assert value == Decimal(wanted).quantize(Decimal("1e-10")), column.name
            elif column.type is ColumnType.TIMESTAMP and wanted is not None:
                # In the hour a DST end repeats, aware datetimes of two zones never compare
                # equal (PEP 495): compare the instants.
                assert value.tzinfo is not None, column.name
                assert value.astimezone(UTC) == wanted.astimezone(UTC), column.name
            else:
                assert value == wanted, column.name


def test_container_formats_refuse_compression_and_splitting(runtime: Any) -> None:
    client = admin(runtime)
    for body, field in [
        ({"dataset": "usage_logs", "format": "xlsx", "compression": "gzip"}, "compression"),
        ({"dataset": "usage_logs", "format": "parquet", "compression": "zstd"}, "compression"),
        ({"dataset": "usage_logs", "format": "xlsx", "max_file_size_mb": 10}, "max_file_size_mb"),
    ]:
        answer = client.call("POST", "/v1/exports", body)
        assert answer.status == 400, answer.body
        assert answer.json()["detail"]["field"] == field


def test_a_preview_of_a_container_format_is_a_whole_small_file(runtime: Any) -> None:
    client = admin(runtime)
    for format_name in ("xlsx", "parquet"):
        query = urlencode({"dataset": "usage_logs", "format": format_name, "limit": 5})
        answer = client.call("GET", "/v1/exports/preview?" + query)
        assert answer.status == 200, answer.body
        preview = answer.json()
        assert preview["content_encoding"] == "base64"
        body = base64.b64decode(preview["content"])
        if format_name == "xlsx":
            sheet = openpyxl.load_workbook(io.BytesIO(body)).active
            assert len(list(sheet.iter_rows(values_only=True))) == 1 + 5
        else:
            assert pq.read_table(pa.BufferReader(body)).num_rows == 5
