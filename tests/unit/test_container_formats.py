"""The pieces of the container formats: ZIP layout with combined CRCs, XLSX cells and sheets,
Parquet types, each read back with the library users would use."""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataexport.catalog.model import ColumnType
from dataexport.errors import DataExportError
from dataexport.formats.parquet_writer import ParquetWriter
from dataexport.formats.writer import FormatOptions, OutputColumn, StagedContent
from dataexport.formats.xlsx_writer import XlsxWriter, sheets_of, string_cell
from dataexport.formats.zip_container import (
    NOTHING,
    ZipLayout,
    crc32_combine,
    deflated_piece,
    deflated_whole,
)
from tests.unit.format_samples import COLUMNS, ROWS


def test_crc32_of_joined_data_combines_from_its_parts() -> None:
    generator = random.Random(7)
    for _ in range(100):
        first = generator.randbytes(generator.randint(0, 5000))
        second = generator.randbytes(generator.randint(0, 5000))
        combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
        assert combined == zlib.crc32(first + second)


def test_full_flushed_pieces_make_one_entry_zipfile_reads() -> None:
    layout = ZipLayout()
    archive = bytearray()
    small, small_content = deflated_whole(b"hello")
    archive += layout.local_header("a.txt", small_content) + small
    texts = [bytes([65 + n]) * (1000 * n + 1) for n in range(5)]
    pieces = [deflated_piece(text) for text in texts]
    closing, closing_content = deflated_whole(b"END")
    content = NOTHING
    for _, piece_content in pieces:
        content = content.then(piece_content)
    content = content.then(closing_content)
    archive += layout.local_header("dir/b.txt", content)
    archive += b"".join(body for body, _ in pieces) + closing
    archive += layout.central_directory()

    with zipfile.ZipFile(io.BytesIO(bytes(archive))) as read:
        assert read.testzip() is None
        assert read.read("a.txt") == b"hello"
        assert read.read("dir/b.txt") == b"".join(texts) + b"END"


def piece(rows: int) -> StagedContent:
    return StagedContent(key=f"k{rows}", rows=rows, bytes=1, sha256="")


def test_sheets_take_whole_pieces_up_to_their_rows() -> None:
    pieces = [piece(3), piece(0), piece(3), piece(4), piece(1)]
    assert [[p.rows for p in sheet] for sheet in sheets_of(pieces, 6)] == [[3, 3], [4, 1]]
    assert sheets_of([piece(0)], 6) == [[]]
    with pytest.raises(DataExportError):
        sheets_of([piece(7)], 6)


def test_segments_of_a_workbook_divide_its_sheets() -> None:
    assert XlsxWriter.segment_rows(250_000) == 209_715
    assert 1_048_575 % XlsxWriter.segment_rows(1_000) == 0
    assert XlsxWriter.segment_rows(5_000_000) == 1_048_575


def test_text_cells_escape_what_xml_cannot_hold() -> None:
    cell = string_cell("a<b&c>\n\r\t\x01 _x0041_")
    assert "&lt;b&amp;c&gt;&#10;&#13;&#9;_x0001_ _x005F_x0041_" in cell
    assert string_cell("x" * 40_000).count("x") == 32_767 + 1  # the cell's text, and its 'x'ml


def workbook_values(columns: list[OutputColumn], rows: list[list[Any]], zone: str) -> list[Any]:
    data = XlsxWriter.whole_file(columns, FormatOptions(timezone=ZoneInfo(zone)), rows)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return list(sheet.iter_rows(values_only=True))


def test_cells_are_numbers_only_where_a_double_holds_them() -> None:
    columns = [
        OutputColumn("i", "Integer", ColumnType.INTEGER),
        OutputColumn("d", "Decimal", ColumnType.DECIMAL),
        OutputColumn("f", "Float", ColumnType.FLOAT),
    ]
    header, exact, inexact = workbook_values(
        columns,
        [[2**53, Decimal("1234.5678"), 0.1], [2**53 + 1, Decimal("0.1234567890123456"), None]],
        "UTC",
    )
    assert header == ("Integer", "Decimal", "Float")
    assert exact == (2**53, 1234.5678, 0.1)
    assert inexact == (str(2**53 + 1), "0.1234567890123456", None)


def test_times_are_serials_in_the_zone_and_dates_are_days() -> None:
    columns = [
        OutputColumn("t", "Time", ColumnType.TIMESTAMP),
        OutputColumn("d", "Day", ColumnType.DATE),
        OutputColumn("b", "Flag", ColumnType.BOOLEAN),
    ]
    rows = [
        [datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC), date(2026, 3, 29), True],
        [datetime(2026, 3, 29, 1, 0, tzinfo=UTC), date(1900, 1, 1), False],
    ]
    _, before, after = workbook_values(columns, rows, "Europe/Berlin")
    assert before == (datetime(2026, 3, 29, 1, 59, 59), datetime(2026, 3, 29), True)
    # After the clocks went forward, and a day Excel's 1900 leap-year bug would shift: text.
    assert after == (datetime(2026, 3, 29, 3, 0), "1900-01-01", False)


def test_the_sample_rows_round_trip_through_parquet() -> None:
    data = ParquetWriter.whole_file(
        COLUMNS, FormatOptions(timezone=ZoneInfo("Europe/Berlin")), ROWS
    )
    table = pq.read_table(pa.BufferReader(data))
    assert table.num_rows == len(ROWS)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="Europe/Berlin")
    assert table.schema.field("meta").type == pa.string()
    assert table.schema.field("created_at").metadata == {b"label": b"Time"}
    for column in COLUMNS:
        assert len(table.column(column.name)) == len(ROWS)


def test_an_empty_parquet_file_still_has_its_schema() -> None:
    data = ParquetWriter.whole_file(COLUMNS, FormatOptions(), [])
    table = pq.read_table(pa.BufferReader(data))
    assert table.num_rows == 0
    assert table.column_names == [column.name for column in COLUMNS]
