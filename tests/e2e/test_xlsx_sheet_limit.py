"""An XLSX export past Excel's row limit, end to end on the local runtime: the workbook opens
with openpyxl, its first sheet is full to the limit, the rest is on the next sheet, and every
row is there, typed as PostgreSQL holds it. Slow (minutes): `make test-slow`."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from dataexport.catalog.loader import load_catalog
from dataexport.export_request import ExportRequest, ResolvedExport, resolve_export
from dataexport_local.postgres import LocalDatabase
from tests.conftest import TEST_DATASETS
from tests.e2e.http_client import ApiClient
from tests.e2e.test_container_formats import excel_value
from tests.e2e.test_format_memory import BASE_TIME, probe_runtime

pytestmark = pytest.mark.slow

# Excel's rows a sheet, the header included: what the file must fit, whatever the writer says.
EXCEL_SHEET_ROWS = 1_048_576
SHEET_DATA_ROWS = EXCEL_SHEET_ROWS - 1
# Enough to spill well onto a second sheet.
ROWS = 1_100_000
TENANT = "org_probe"
FIELDS = ["id", "created_at", "payload", "amount"]
ZONE = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any, database: LocalDatabase) -> Iterator[Any]:
    with probe_runtime(runtime_factory, database, {}, ROWS) as started:
        yield started


def xlsx_request() -> dict[str, Any]:
    return {
        "dataset": "memory_probe",
        "format": "xlsx",
        "fields": FIELDS,
        "time_range": {
            "start": BASE_TIME.isoformat(),
            "end": (BASE_TIME + timedelta(seconds=ROWS + 1)).isoformat(),
        },
        "options": {"timezone": ZONE.key},
    }


@dataclass(frozen=True)
class SheetRead:
    """What one pass over a sheet saw: its header, data rows, and first and last data row."""

    name: str
    dimension_rows: int
    header: tuple[Any, ...]
    rows: int
    first: tuple[Any, ...]
    last: tuple[Any, ...]


def read_sheets(body: bytes) -> tuple[list[SheetRead], int]:
    """Stream every sheet in read-only mode (constant memory), checking that the ids run on
    from 1 without a gap across sheets; the sheets, and the id a next row would have had."""
    workbook = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    sheets: list[SheetRead] = []
    next_id = 1
    try:
        for sheet in workbook.worksheets:
            rows = sheet.iter_rows(values_only=True)
            header = next(rows)
            first: tuple[Any, ...] = ()
            last: tuple[Any, ...] = ()
            count = 0
            for row in rows:
                assert row[0] == next_id, f"{sheet.title} row {count + 2}: {row[0]} != {next_id}"
                if not count:
                    first = row
                last = row
                count += 1
                next_id += 1
            sheets.append(SheetRead(sheet.title, sheet.max_row, header, count, first, last))
    finally:
        workbook.close()
    return sheets, next_id


def source_row(superuser: Any, position: int) -> list[Any]:
    """The export's row at `position` (from 1) in its order, as PostgreSQL holds it."""
    (row,) = superuser.run(
        f"SELECT {', '.join(FIELDS)} FROM demo.memory_probe WHERE org_id = :tenant "
        "ORDER BY id OFFSET :skip LIMIT 1",
        tenant=TENANT,
        skip=position - 1,
    )
    return list(row)


def assert_same_row(cells: tuple[Any, ...], values: list[Any], resolved: ResolvedExport) -> None:
    """Each cell equal to PostgreSQL's value and of the type a reader gets for it: ints as
    int (not float or text), decimals as float, time stamps as datetime in the zone."""
    for cell, value, column in zip(cells, values, resolved.columns, strict=True):
        wanted = excel_value(value, column.type, ZONE)
        # Whole seconds: openpyxl reads the serial back exactly, no millisecond tolerance.
        assert (type(cell), cell) == (type(wanted), wanted), column.name


def test_an_xlsx_export_past_the_sheet_limit_continues_on_a_second_sheet(
    runtime: Any, superuser: Any
) -> None:
    # Given more probe rows than one sheet holds
    (count, lowest, highest), *_ = superuser.run(
        "SELECT count(*), min(id), max(id) FROM demo.memory_probe WHERE org_id = :tenant",
        tenant=TENANT,
    )
    assert (count, lowest, highest) == (ROWS, 1, ROWS)
    assert ROWS > SHEET_DATA_ROWS
    resolved = resolve_export(
        ExportRequest.model_validate(xlsx_request()), load_catalog(TEST_DATASETS)
    )

    # When an admin exports them all as XLSX and downloads the workbook
    admin = ApiClient(runtime.api_url, runtime.token("ada", TENANT, "admin"))
    started = time.monotonic()
    done, body = admin.export(xlsx_request(), timeout=3600)
    exported_in = time.monotonic() - started
    sheets, next_id = read_sheets(body)
    read_in = time.monotonic() - started - exported_in
    print(
        f"\n{ROWS:,} rows as XLSX: exported and downloaded in {exported_in:.1f} s "
        f"({len(body) / 1e6:,.1f} MB), read back with openpyxl in {read_in:.1f} s; rows per "
        f"sheet: {', '.join(f'{sheet.name} {sheet.rows:,}' for sheet in sheets)}"
    )

    # Then the first sheet is full to Excel's limit and the second holds the rest, each under
    # the header and with a dimension that covers it (streaming readers stop there)
    labels = tuple(column.label for column in resolved.columns)
    assert [sheet.name for sheet in sheets] == ["Sheet1", "Sheet2"]
    assert [sheet.rows for sheet in sheets] == [SHEET_DATA_ROWS, ROWS - SHEET_DATA_ROWS]
    assert [sheet.dimension_rows for sheet in sheets] == [sheet.rows + 1 for sheet in sheets]
    assert all(sheet.header == labels for sheet in sheets)

    # And every row is there once, in order, as many as PostgreSQL holds
    assert next_id - 1 == sum(sheet.rows for sheet in sheets) == ROWS

    # And the first row, both sides of the sheet boundary and the last row are typed cells
    # equal to PostgreSQL's values
    first, second = sheets
    for cells, position in [
        (first.first, 1),
        (first.last, SHEET_DATA_ROWS),
        (second.first, SHEET_DATA_ROWS + 1),
        (second.last, ROWS),
    ]:
        assert_same_row(cells, source_row(superuser, position), resolved)

    # And the job and its manifest count the same rows and describe the file downloaded
    sha256 = hashlib.sha256(body).hexdigest()
    assert done["rows_exported"] == ROWS
    assert (done["bytes"], done["sha256"]) == (len(body), sha256)
    manifest = done["manifest"]
    assert (manifest["rows"], manifest["bytes"], manifest["sha256"]) == (ROWS, len(body), sha256)
    assert (manifest["format"], manifest["file_count"]) == ("xlsx", 1)
    assert manifest["timezone"] == ZONE.key
    assert [column["name"] for column in manifest["schema"]] == FIELDS
