"""NDJSON output read back line by line: the same values as JSON, one object per line."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from dataexport.formats.json_writer import JsonWriter
from dataexport.formats.ndjson_writer import NdjsonWriter
from dataexport.formats.writer import FormatOptions
from tests.unit.format_samples import ROWS, render, render_in_parts


def load_lines(data: bytes) -> list[Any]:
    text = data.decode("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line, parse_float=Decimal) for line in text.split("\n")[:-1]]


def test_each_row_is_one_line_encoded_like_json() -> None:
    # When the sample rows are written as NDJSON and as JSON
    data, summary = render(NdjsonWriter, ROWS)
    as_json, _ = render(JsonWriter, ROWS)

    # Then every line is one object, equal to the JSON array's element
    objects = load_lines(data)
    assert summary.rows == len(objects) == len(ROWS)
    assert objects == json.loads(as_json, parse_float=Decimal)
    assert b"\r" not in data.replace(b"\\r", b"")  # no CR other than inside escaped strings


def test_no_bom_even_when_asked() -> None:
    data, _ = render(NdjsonWriter, ROWS[:1], FormatOptions(bom=True))
    assert data.startswith(b"{")


def test_an_empty_export_is_an_empty_file() -> None:
    assert render(NdjsonWriter, [])[0] == b""


def test_parts_concatenate_to_the_single_file() -> None:
    joined = render_in_parts(NdjsonWriter, [ROWS[:3], [], ROWS[3:]])
    assert joined == render(NdjsonWriter, ROWS)[0]
