"""CSV (RFC 4180) with a header of column labels, for spreadsheets and scripts alike.

Quoting is Python's csv module (QUOTE_MINIMAL, doubled quotes). Text cells that a spreadsheet
would run as a formula (starting with = + - @ TAB or CR) get a leading apostrophe. NULL is an
empty cell, booleans are true/false, and the first part may start with a UTF-8 BOM so that
Excel reads the file as UTF-8.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from dataexport import sql_rendering
from dataexport.catalog.model import ColumnType
from dataexport.formats import value_text
from dataexport.formats.writer import (
    WHOLE_FILE,
    BinarySink,
    CopyPlan,
    FormatOptions,
    FormatWriter,
    LineFraming,
    OutputColumn,
    PartPosition,
)
from dataexport.sql_rendering import SourceType

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# The csv module quotes a cell only for characters of its own line terminator, so it always
# writes CRLF (quoting any CR or LF in a cell); LF output swaps the terminator afterwards.
_CSV_MODULE_TERMINATOR = "\r\n"
# COPY's DELIMITER for each allowed delimiter, as fixed SQL text.
_COPY_DELIMITERS = {",": "','", ";": "';'", "\t": "E'\\t'", "|": "'|'"}

CellRenderer = Callable[[Any], str]


def neutralise_formula(text: str) -> str:
    """`text`, with a leading apostrophe if a spreadsheet would otherwise run it as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _string_cell(value: Any) -> str:
    if value is None:
        return ""
    return neutralise_formula(value if isinstance(value, str) else str(value))


def _renderer(column_type: ColumnType, options: FormatOptions) -> CellRenderer:
    """The function turning one value of `column_type` into a cell (NULL -> empty)."""
    if column_type is ColumnType.STRING:
        return _string_cell
    text: Callable[[Any], str]
    places = options.decimal_places
    if column_type is ColumnType.TIMESTAMP:
        zone = options.timezone

        def text(value: Any) -> str:
            return value_text.timestamp_text(value, zone)

    elif places is not None and column_type in (ColumnType.DECIMAL, ColumnType.FLOAT):

        def text(value: Any) -> str:
            return value_text.rounded_text(value, places)

    else:
        by_type: dict[ColumnType, Callable[[Any], str]] = {
            ColumnType.INTEGER: str,
            ColumnType.DECIMAL: value_text.decimal_text,
            ColumnType.FLOAT: value_text.float_text,
            ColumnType.BOOLEAN: value_text.boolean_text,
            ColumnType.DATE: value_text.date_text,
            ColumnType.JSON: value_text.json_text,
        }
        text = by_type[column_type]

    def cell(value: Any) -> str:
        return "" if value is None else text(value)

    return cell


class _LineCatcher:
    """The file object the csv module writes to: it keeps the last line written."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line = ""

    def write(self, text: str) -> int:
        self.line = text
        return len(text)


class CsvWriter(FormatWriter):
    name: ClassVar[str] = "csv"
    extension: ClassVar[str] = "csv"
    media_type: ClassVar[str] = "text/csv; charset=utf-8"
    option_names: ClassVar[tuple[str, ...]] = (
        "timezone",
        "bom",
        "delimiter",
        "line_ending",
        "decimal_places",
    )

    def __init__(
        self,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        sink: BinarySink,
        position: PartPosition = WHOLE_FILE,
    ) -> None:
        super().__init__(columns, options, sink, position)
        self._renderers = [_renderer(column.type, self.options) for column in self.columns]
        self._catcher = _LineCatcher()
        self._csv = csv.writer(
            self._catcher,
            delimiter=self.options.delimiter,
            quotechar='"',
            doublequote=True,
            quoting=csv.QUOTE_MINIMAL,
            lineterminator=_CSV_MODULE_TERMINATOR,
        )
        self._swap_terminator = self.options.line_ending != _CSV_MODULE_TERMINATOR

    def _line(self, cells: Sequence[str]) -> str:
        self._csv.writerow(cells)
        line = self._catcher.line
        if self._swap_terminator:
            line = line[: -len(_CSV_MODULE_TERMINATOR)] + self.options.line_ending
        return line

    def _writes_bom(self) -> bool:
        return True

    def _begin(self) -> str:
        return self._file_opening() if self.position.first else ""

    def _file_opening(self) -> str:
        return self._line([column.label for column in self.columns])

    def _row(self, row: Sequence[Any]) -> str:
        return self._line(
            [render(value) for render, value in zip(self._renderers, row, strict=True)]
        )

    def copy_plan(
        self, sources: Sequence[SourceType], references: Sequence[str]
    ) -> CopyPlan | None:
        # With a single column the csv module quotes an empty cell ("") and COPY quotes a lone
        # "\\." : the two disagree, so such exports take the Python path.
        if len(self.columns) < 2:
            return None
        cells = [
            sql_rendering.csv_cell(column.type, source, reference, self.options.decimal_places)
            for column, source, reference in zip(self.columns, sources, references, strict=True)
        ]
        select_list = [cell for cell in cells if cell is not None]
        if len(select_list) != len(cells):
            return None
        delimiter = _COPY_DELIMITERS[self.options.delimiter]
        return CopyPlan(
            select_list=select_list,
            copy_options=f"FORMAT csv, DELIMITER {delimiter}, QUOTE '\"', ESCAPE '\"', NULL ''",
            framing=LineFraming.CRLF if self.options.line_ending == "\r\n" else LineFraming.AS_IS,
        )
