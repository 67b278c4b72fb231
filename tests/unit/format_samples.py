"""Columns, rows and a byte sink shared by the format writer tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from dataexport.catalog.model import ColumnType
from dataexport.formats.writer import (
    FormatOptions,
    FormatWriter,
    OutputColumn,
    PartPosition,
    WriteSummary,
)

COLUMNS = [
    OutputColumn("created_at", "Time", ColumnType.TIMESTAMP),
    OutputColumn("user_name", "User", ColumnType.STRING),
    OutputColumn("status_code", "Status Code", ColumnType.INTEGER),
    OutputColumn("cost_usd", "Cost (USD)", ColumnType.DECIMAL),
    OutputColumn("ratio", "Ratio", ColumnType.FLOAT),
    OutputColumn("cached", "Cached", ColumnType.BOOLEAN),
    OutputColumn("day", "Day", ColumnType.DATE),
    OutputColumn("meta", "Meta", ColumnType.JSON),
]

BERLIN_DST_START = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 02:00 CET becomes 03:00 CEST

ROWS: list[list[Any]] = [
    [
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        "Zoë Müller",
        200,
        Decimal("0.0000000001"),
        0.1,
        True,
        date(2026, 3, 29),
        {"tags": ["a", "李"], "n": 1},
    ],
    [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        'comma, "quote"\nnew line',
        -5,
        Decimal("12345678901234567890.123456789"),
        -2.5e-7,
        False,
        date(2026, 1, 1),
        [1, 2.5, None],
    ],
    [None, None, None, None, None, None, None, None],
    [
        datetime(2026, 7, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=-7))),
        '=HYPERLINK("http://evil.example","x")',
        0,
        Decimal("1E+3"),
        float("nan"),
        True,
        date(2026, 12, 31),
        "just text",
    ],
    [
        datetime(2026, 1, 1),
        "李雷 🚀",
        1,
        Decimal("-0.5"),
        float("inf"),
        False,
        date(2026, 1, 2),
        {},
    ],
    [BERLIN_DST_START, "+1", 2, Decimal("NaN"), 1e22, True, date(2026, 3, 29), None],
    [BERLIN_DST_START, "-1", 3, Decimal("0E-8"), 3.0, True, date(2026, 3, 29), None],
    [BERLIN_DST_START, "@sum", 4, Decimal("7"), 0.0, True, date(2026, 3, 29), None],
    [BERLIN_DST_START, "\ttab", 5, Decimal("7"), 0.0, True, date(2026, 3, 29), None],
    [BERLIN_DST_START, "\rcr", 6, Decimal("7"), 0.0, True, date(2026, 3, 29), None],
    [BERLIN_DST_START, "a\rb", 7, Decimal("7"), 0.0, True, date(2026, 3, 29), None],
    [BERLIN_DST_START, "", 8, Decimal("7"), 0.0, True, date(2026, 3, 29), None],
]


class BytesSink:
    """Collects what a writer sends, remembering each write (to check chunking)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)


def render(
    writer: type[FormatWriter],
    rows: Sequence[Sequence[Any]],
    options: FormatOptions | None = None,
    columns: Sequence[OutputColumn] = COLUMNS,
    position: PartPosition | None = None,
) -> tuple[bytes, WriteSummary]:
    """Write `rows` as one part; return the bytes and the writer's summary."""
    sink = BytesSink()
    instance = writer(columns, options or FormatOptions(), sink, position or PartPosition())
    instance.open()
    instance.write_rows(iter(rows))
    summary = instance.close()
    return sink.data, summary


def render_in_parts(
    writer: type[FormatWriter],
    parts: Sequence[Sequence[Sequence[Any]]],
    options: FormatOptions | None = None,
) -> bytes:
    """Write each part separately, as partitions are, and concatenate them in order."""
    output = b""
    for index, rows in enumerate(parts):
        position = PartPosition(first=index == 0, last=index == len(parts) - 1)
        output += render(writer, rows, options, position=position)[0]
    return output
