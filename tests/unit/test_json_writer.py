"""JSON output read back with json.loads: exact numbers, strings, arrays across parts."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dataexport.catalog.model import ColumnType
from dataexport.errors import InvalidRequest
from dataexport.formats import FORMATS, get_format
from dataexport.formats.csv_writer import CsvWriter
from dataexport.formats.json_writer import JsonWriter
from dataexport.formats.ndjson_writer import NdjsonWriter
from dataexport.formats.parquet_writer import ParquetWriter
from dataexport.formats.writer import FormatOptions, OutputColumn, PartPosition
from dataexport.formats.xlsx_writer import XlsxWriter
from tests.unit.format_samples import COLUMNS, ROWS, render, render_in_parts

BERLIN = ZoneInfo("Europe/Berlin")


def load(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"), parse_float=Decimal)


def test_the_file_is_one_array_of_objects_keyed_by_column_name() -> None:
    # When the sample rows are written
    data, summary = render(JsonWriter, ROWS)

    # Then it parses as an array with one object per row, keyed by name (not label)
    objects = load(data)
    assert isinstance(objects, list) and len(objects) == len(ROWS) == summary.rows
    assert all(list(item) == [column.name for column in COLUMNS] for item in objects)
    assert summary.bytes == len(data)


def test_values_keep_their_json_types_and_exact_numbers() -> None:
    first, second, nulls, fourth, fifth, sixth = load(render(JsonWriter, ROWS)[0])[:6]

    assert first == {
        "created_at": "2026-03-29T00:30:00.000000+00:00",
        "user_name": "Zoë Müller",
        "status_code": 200,
        "cost_usd": Decimal("0.0000000001"),
        "ratio": Decimal("0.1"),
        "cached": True,
        "day": "2026-03-29",
        "meta": {"tags": ["a", "李"], "n": 1},
    }
    assert second["cost_usd"] == Decimal("12345678901234567890.123456789")
    assert second["user_name"] == 'comma, "quote"\nnew line'
    assert second["meta"] == [1, Decimal("2.5"), None]
    assert nulls == {column.name: None for column in COLUMNS}
    assert fourth["cost_usd"] == 1000
    assert fourth["ratio"] is None  # NaN has no JSON form
    assert fourth["user_name"].startswith("=HYPERLINK")  # only CSV needs formula escaping
    assert fourth["meta"] == "just text"
    assert fifth["ratio"] is None  # nor has infinity
    assert sixth["cost_usd"] is None  # Decimal NaN
    assert sixth["ratio"] == Decimal("1e22")


def test_decimals_are_written_as_their_exact_text() -> None:
    data, _ = render(JsonWriter, ROWS[:2])
    assert b'"cost_usd":0.0000000001' in data
    assert b'"cost_usd":12345678901234567890.123456789' in data


def test_text_is_utf8_not_escaped_and_one_object_per_line() -> None:
    data, _ = render(JsonWriter, ROWS)
    assert "李雷 🚀".encode() in data
    lines = data.decode().splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    assert len(lines) == len(ROWS) + 2
    assert all(line.startswith("{") for line in lines[1:-1])


def test_timestamps_use_the_requested_zone() -> None:
    objects = load(render(JsonWriter, ROWS[:2], FormatOptions(timezone=BERLIN))[0])
    assert [item["created_at"] for item in objects] == [
        "2026-03-29T01:30:00.000000+01:00",
        "2026-03-29T03:30:00.000000+02:00",
    ]


def test_an_empty_export_is_an_empty_array() -> None:
    data, summary = render(JsonWriter, [])
    assert load(data) == [] and summary.rows == 0


@pytest.mark.parametrize("split", [[1, 1, 10], [5, 7], [11, 1], [1] * 12])
def test_parts_concatenate_to_the_single_file(split: list[int]) -> None:
    # Given the rows cut into consecutive partitions
    parts, start = [], 0
    for size in split:
        parts.append(ROWS[start : start + size])
        start += size

    # When each is formatted on its own and the parts are concatenated
    joined = render_in_parts(JsonWriter, parts)

    # Then the bytes equal the single-part file and parse as one array
    assert joined == render(JsonWriter, ROWS)[0]
    assert len(load(joined)) == len(ROWS)


def test_a_middle_part_has_no_brackets() -> None:
    data, _ = render(JsonWriter, ROWS[:2], position=PartPosition(first=False, last=False))
    assert data.startswith(b",\n{") and not data.rstrip().endswith(b"]")


def test_the_registry_names_every_format() -> None:
    assert dict(FORMATS) == {
        "csv": CsvWriter,
        "json": JsonWriter,
        "ndjson": NdjsonWriter,
        "xlsx": XlsxWriter,
        "parquet": ParquetWriter,
    }
    assert get_format("json") is JsonWriter
    assert {(w.extension, w.media_type) for w in FORMATS.values()} == {
        ("csv", "text/csv; charset=utf-8"),
        ("json", "application/json"),
        ("ndjson", "application/x-ndjson"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("parquet", "application/vnd.apache.parquet"),
    }


def test_an_unknown_format_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequest) as refused:
        get_format("xlsx-macro")
    assert refused.value.field == "format"
    assert "csv, json, ndjson" in refused.value.message


def test_integers_stay_integers_even_when_huge() -> None:
    columns = [OutputColumn("n", "N", ColumnType.INTEGER)]
    data, _ = render(JsonWriter, [[2**63 - 1], [-(2**63)]], columns=columns)
    assert load(data) == [{"n": 2**63 - 1}, {"n": -(2**63)}]
