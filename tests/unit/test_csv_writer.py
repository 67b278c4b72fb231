"""CSV output read back the way users read it: Python's csv module with the same dialect."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dataexport.catalog.model import ColumnType
from dataexport.errors import InvalidRequest
from dataexport.formats.csv_writer import CsvWriter, neutralise_formula
from dataexport.formats.writer import FormatOptions, OutputColumn, PartPosition
from tests.unit.format_samples import COLUMNS, ROWS, BytesSink, render, render_in_parts

BERLIN = ZoneInfo("Europe/Berlin")


def read_back(data: bytes, delimiter: str = ",") -> list[list[str]]:
    text = data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def test_header_holds_the_labels_and_every_row_round_trips() -> None:
    # When the sample rows are written with the default options
    data, summary = render(CsvWriter, ROWS)

    # Then a csv reader gets the labels, then one record per row
    records = read_back(data)
    assert records[0] == [column.label for column in COLUMNS]
    assert len(records) == len(ROWS) + 1
    assert summary.rows == len(ROWS) and summary.bytes == len(data)


def test_values_are_rendered_by_column_type() -> None:
    records = read_back(render(CsvWriter, ROWS)[0])[1:]
    first, second, nulls, fourth, naive = records[:5]

    assert first == [
        "2026-03-29T00:30:00.000000+00:00",
        "Zoë Müller",
        "200",
        "0.0000000001",
        "0.1",
        "true",
        "2026-03-29",
        '{"tags":["a","李"],"n":1}',
    ]
    # embedded comma, quotes and newline survive; a negative number is not a formula
    assert second[1] == 'comma, "quote"\nnew line'
    assert second[2] == "-5"
    assert second[3] == "12345678901234567890.123456789"
    assert second[4] == "-2.5e-07"
    assert second[5] == "false"
    assert second[7] == "[1,2.5,null]"
    # NULL is an empty cell whatever the type
    assert nulls == [""] * len(COLUMNS)
    assert fourth[0] == "2026-07-01T19:00:00.000005+00:00"
    assert fourth[3] == "1000"  # never exponent form
    assert fourth[4] == "nan"
    assert fourth[7] == '"just text"'
    # a naive timestamp (timestamp without time zone) is taken as UTC
    assert naive[0] == "2026-01-01T00:00:00.000000+00:00"
    assert naive[1] == "李雷 🚀"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@sum", "'@sum"),
        ("\ttab", "'\ttab"),
        ("\rcr", "'\rcr"),
        ("a\rb", "a\rb"),
        ("", ""),
        ("plain = text", "plain = text"),
    ],
)
def test_text_that_a_spreadsheet_would_run_gets_an_apostrophe(cell: str, expected: str) -> None:
    assert neutralise_formula(cell) == expected
    columns = [OutputColumn("text", "Text", ColumnType.STRING)]
    data, _ = render(CsvWriter, [[cell]], columns=columns)
    assert read_back(data)[1] == [expected]


def test_timestamps_follow_the_requested_zone_across_a_dst_change() -> None:
    # Given instants around Berlin's switch to summer time on 2026-03-29 (01:00 UTC)
    columns = [OutputColumn("at", "At", ColumnType.TIMESTAMP)]
    instants = [
        [datetime(2026, 3, 29, 0, 30, tzinfo=UTC)],
        [datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC)],
        [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)],
        [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)],
    ]

    # When they are exported in Europe/Berlin
    data, _ = render(CsvWriter, instants, FormatOptions(timezone=BERLIN), columns=columns)

    # Then wall-clock time and offset change together, with six fraction digits
    assert [record[0] for record in read_back(data)[1:]] == [
        "2026-03-29T01:30:00.000000+01:00",
        "2026-03-29T01:59:59.999999+01:00",
        "2026-03-29T03:00:00.000000+02:00",
        "2026-03-29T03:30:00.000000+02:00",
    ]


def test_the_bom_is_optional_and_only_at_the_start() -> None:
    with_bom, _ = render(CsvWriter, ROWS[:2])
    without_bom, _ = render(CsvWriter, ROWS[:2], FormatOptions(bom=False))
    assert with_bom.startswith(b"\xef\xbb\xbf")
    assert with_bom.count(b"\xef\xbb\xbf") == 1
    assert without_bom == with_bom[3:]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_every_delimiter_round_trips(delimiter: str) -> None:
    # Given cells that contain every delimiter
    columns = [
        OutputColumn("a", "A", ColumnType.STRING),
        OutputColumn("b", "B;|", ColumnType.STRING),
    ]
    rows: list[list[str | None]] = [["x,y;z|w\tv", "plain"], ["", None]]

    # When written with that delimiter
    data, _ = render(CsvWriter, rows, FormatOptions(delimiter=delimiter), columns=columns)

    # Then the same dialect reads the cells back unchanged
    assert read_back(data, delimiter) == [["A", "B;|"], ["x,y;z|w\tv", "plain"], ["", ""]]


def test_lf_line_endings_still_quote_carriage_returns() -> None:
    # Given LF line endings and a cell with a bare CR (which the csv module would not quote)
    columns = [OutputColumn("a", "A", ColumnType.STRING), OutputColumn("b", "B", ColumnType.STRING)]
    rows = [["a\rb", "x"], ["c\r\nd", "y"]]

    # When written
    data, _ = render(CsvWriter, rows, FormatOptions(line_ending="\n", bom=False), columns=columns)

    # Then records end with LF only and the cells read back intact
    assert data == b'A,B\n"a\rb",x\n"c\r\nd",y\n'
    assert read_back(data)[1:] == rows


def test_crlf_is_the_default_line_ending() -> None:
    data, _ = render(CsvWriter, [[None] * len(COLUMNS)], FormatOptions(bom=False))
    assert data.endswith(b"\r\n") and data.count(b"\r\n") == 2


def test_parts_concatenate_to_the_single_file() -> None:
    # When the rows are written as three partitions and concatenated
    whole, _ = render(CsvWriter, ROWS, FormatOptions(timezone=BERLIN))
    parts = render_in_parts(
        CsvWriter, [ROWS[:1], ROWS[1:7], ROWS[7:]], FormatOptions(timezone=BERLIN)
    )

    # Then the result is byte for byte the single-part file (one BOM, one header)
    assert parts == whole


def test_only_the_first_part_writes_bom_and_header() -> None:
    later, _ = render(CsvWriter, ROWS[:1], position=PartPosition(first=False, last=True))
    assert not later.startswith(b"\xef\xbb\xbf")
    assert len(read_back(later)) == 1


def test_output_reaches_the_sink_in_bounded_chunks() -> None:
    # Given many rows (about 2 MB of CSV)
    columns = [OutputColumn("text", "Text", ColumnType.STRING)]
    rows = ([f"row {i} " + "x" * 200] for i in range(10_000))
    sink = BytesSink()
    writer = CsvWriter(columns, FormatOptions(), sink)

    # When written
    writer.open()
    writer.write_rows(rows)
    assert len(sink.writes) > 10, "flushed while writing, not only at close"
    summary = writer.close()

    # Then no chunk is much larger than the target, and every byte is counted
    assert max(len(chunk) for chunk in sink.writes) < CsvWriter.chunk_bytes + 1024
    assert summary.bytes == len(sink.data) and summary.rows == 10_000


def test_writer_misuse_is_an_error() -> None:
    writer = CsvWriter(COLUMNS, FormatOptions(), BytesSink())
    with pytest.raises(RuntimeError):
        writer.write_rows([])
    writer.open()
    with pytest.raises(ValueError, match="2 values for 8 columns"):
        writer.write_rows([[1, 2]])


@pytest.mark.parametrize(
    ("options", "field"),
    [({"delimiter": ":"}, "options.delimiter"), ({"line_ending": "\r"}, "options.line_ending")],
)
def test_unsupported_options_are_refused(options: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        FormatOptions(**options)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_decimal_text_is_exact() -> None:
    columns = [OutputColumn("n", "N", ColumnType.DECIMAL)]
    values = ["0.0000000001", "12345678901234567890.123456789", "-0.00000001", "100"]
    data, _ = render(CsvWriter, [[Decimal(v)] for v in values], columns=columns)
    assert [record[0] for record in read_back(data)[1:]] == values


def test_decimal_places_round_ties_away_from_zero_with_exactly_that_many_digits() -> None:
    columns = [
        OutputColumn("amount", "Amount", ColumnType.DECIMAL),
        OutputColumn("ratio", "Ratio", ColumnType.FLOAT),
        OutputColumn("count", "Count", ColumnType.INTEGER),
    ]
    rows: list[list[Any]] = [
        [Decimal("2.345"), 2.675, 7],
        [Decimal("-2.345"), -0.125, 8],
        [Decimal("-0.001"), 0.0, 9],
        [5, 1e-9, 10],
        [Decimal("NaN"), float("inf"), 11],
        [Decimal("1E+3"), 3.0, 12],
    ]
    options = FormatOptions(bom=False, line_ending="\n", decimal_places=2)
    data, _ = render(CsvWriter, rows, options, columns=columns)
    assert data.decode().splitlines()[1:] == [
        "2.35,2.68,7",
        "-2.35,-0.13,8",
        "0.00,0.00,9",
        "5.00,0.00,10",
        "NaN,inf,11",
        "1000.00,3.00,12",
    ]
    whole, _ = render(CsvWriter, rows[:1], FormatOptions(bom=False, decimal_places=0), columns)
    assert whole.decode().splitlines()[1] == "2,3,7"


def test_decimal_places_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        FormatOptions(decimal_places=13)
    assert refused.value.field == "options.decimal_places"
