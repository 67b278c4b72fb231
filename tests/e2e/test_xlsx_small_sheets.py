"""An xlsx export larger than a sheet continues on further sheets, each full but the last, with
typed cells under a frozen, styled header."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from dataexport.catalog.model import ColumnType
from dataexport_local.postgres import LocalDatabase
from tests.conftest import WORKER_SETUP
from tests.e2e.test_container_formats import (
    END,
    FIELDS,
    START,
    container_runtime,
    excel_value,
    exported,
    source_rows,
)

# The sheet size worker_setup/small_xlsx_sheets.py gives this module's runtime, so that the demo
# rows fill several sheets (the real one holds 1,048,575). Not imported here: it changes the
# class it imports.
SHEET_ROWS = 825


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[Any]:
    # Every worker of this runtime sets the small sheet before it imports its handler.
    small_sheets = WORKER_SETUP / "small_xlsx_sheets.py"
    with container_runtime(runtime_factory, [small_sheets]) as started:
        yield started


def test_an_xlsx_export_fills_sheets_with_typed_cells(
    runtime: Any, database: LocalDatabase
) -> None:
    # Given an export larger than one (small) sheet, in a zone with a DST change
    zone = ZoneInfo("America/New_York")
    request = {
        "dataset": "usage_logs",
        "format": "xlsx",
        "fields": FIELDS,
        "time_range": {"start": START, "end": END},
        "options": {"timezone": zone.key},
    }
    resolved, expected = source_rows(database, request)
    assert len(expected) > 2 * SHEET_ROWS

    # When it runs and the workbook is downloaded
    done, body = exported(runtime, request)
    assert done["file_name"].endswith(".xlsx")

    # Then its sheets hold every row in order, under a frozen, styled header
    workbook = openpyxl.load_workbook(io.BytesIO(body), read_only=False)
    assert len(workbook.worksheets) == -(-len(expected) // SHEET_ROWS)
    labels = [column.label for column in resolved.columns]
    read: list[tuple[Any, ...]] = []
    for sheet in workbook.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        assert list(rows[0]) == labels
        assert sheet.freeze_panes == "A2"
        assert sheet["A1"].font.b
        assert len(rows) - 1 <= SHEET_ROWS
        read += rows[1:]
    assert [len(sheet["A"]) - 1 for sheet in workbook.worksheets[:-1]] == [SHEET_ROWS] * (
        len(workbook.worksheets) - 1
    )
    assert len(read) == done["rows_exported"] == len(expected)
    # Readers in streaming mode trust each sheet's dimension: it covers every row.
    streamed = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    assert sum(len(list(sheet.iter_rows())) - 1 for sheet in streamed.worksheets) == len(read)
    types = [column.type for column in resolved.columns]
    for got, want in zip(read, expected, strict=True):
        for cell, value, column_type in zip(got, want, types, strict=True):
            wanted = excel_value(value, column_type, zone)
            if column_type is ColumnType.TIMESTAMP:
                # openpyxl reads a serial to the millisecond (the cell holds microseconds).
                assert abs(cell - wanted) <= timedelta(milliseconds=1)
            else:
                assert cell == wanted
