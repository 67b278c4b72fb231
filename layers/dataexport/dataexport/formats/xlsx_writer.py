"""XLSX (Office Open XML workbook): typed cells, a styled and frozen header row, and a new
sheet after every 1,048,575 rows (Excel's limit with the header).

A workbook is a ZIP archive, so parts of one cannot simply be concatenated. Every segment is
instead written as a piece of sheet XML (`<row>` elements only), deflated to a full flush; the
Upload step groups the pieces into sheets by their row counts and lays the archive out around
them (zip_container): static parts, then per sheet a local header, the sheet's opening (column
widths, frozen pane, header row), its pieces and its closing, then the central directory.
PostgreSQL renders the rows' XML itself (COPY), exactly as `_row` does.

Cells: numbers are numbers where a double holds them exactly (integers up to 2**53, decimals
of up to 15 significant digits), text otherwise, so no digit is lost silently; timestamps are
Excel date serials in the export's time zone (to the microsecond) with a date-time format,
dates likewise; booleans are booleans; text is an inline string, cut at Excel's 32,767
characters. XML cannot hold most control characters: they are written as Excel's `_xHHHH_`
escapes (and a literal `_xHHHH_` text is escaped in turn, as Excel expects).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from xml.sax.saxutils import escape

from dataexport.catalog.model import ColumnType
from dataexport.errors import DataExportError
from dataexport.formats import value_text
from dataexport.formats.json_values import JSON_LINE_COPY_OPTIONS
from dataexport.formats.writer import (
    PIECE,
    WHOLE_FILE,
    BinarySink,
    BufferSink,
    CopyPlan,
    FormatOptions,
    FormatWriter,
    LineFraming,
    OutputColumn,
    PartPosition,
    StagedContent,
    WriteSummary,
)
from dataexport.formats.zip_container import (
    NOTHING,
    Deflated,
    DeflatePiece,
    ZipLayout,
    deflated_piece,
    deflated_whole,
)
from dataexport.sql_rendering import SourceType

if TYPE_CHECKING:
    from dataexport.adapters.object_store import StoredObject
    from dataexport.formats.writer import AssemblyTarget

SHEET_ROWS = 1_048_575  # 1,048,576 rows a sheet, one of them the header
MAX_CELL_CHARACTERS = 32_767
# Integers a double holds exactly; larger ones are written as text.
_EXACT_INTEGER = 2**53
_EXCEL_EPOCH = datetime(1899, 12, 30)
# Serials before 1900-03-01 mean other days in Excel (its 1900 leap-year bug): written as text.
_FIRST_SERIAL_DAY = 61
_MICROSECONDS_PER_DAY = 86_400_000_000
_EPOCH_OFFSET_MICROSECONDS = 25_569 * _MICROSECONDS_PER_DAY  # 1899-12-30 to 1970-01-01
_FIRST_SERIAL_MICROSECONDS = _FIRST_SERIAL_DAY * _MICROSECONDS_PER_DAY
_WALL_TIME_FORMAT = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"

# Style indexes of styles.xml's cellXfs.
_HEADER_STYLE = 1
_DATETIME_STYLE = 2
_DATE_STYLE = 3

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# XML 1.0 forbids these characters; TAB, LF and CR are kept as character references.
_CONTROL_CHARACTERS = [chr(code) for code in range(1, 32) if code not in (9, 10, 13)]
_NEEDS_EXCEL_ESCAPE = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f]|_x[0-9A-Fa-f]{4}_")
_LITERAL_ESCAPE = re.compile("_(x[0-9A-Fa-f]{4}_)")
_XML_ENTITIES = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}

EMPTY_CELL = "<c/>"


def _text_content(text: str) -> str:
    text = text[:MAX_CELL_CHARACTERS]
    if _NEEDS_EXCEL_ESCAPE.search(text):
        text = _LITERAL_ESCAPE.sub(r"_x005F_\1", text)
        for character in _CONTROL_CHARACTERS:
            text = text.replace(character, f"_x{ord(character):04X}_")
    return escape(text, _XML_ENTITIES)


def string_cell(text: str, style: int = 0) -> str:
    styled = f' s="{style}"' if style else ""
    content = _text_content(text)
    return f'<c t="inlineStr"{styled}><is><t xml:space="preserve">{content}</t></is></c>'


def _number_cell(text: str, style: int = 0) -> str:
    styled = f' s="{style}"' if style else ""
    return f"<c{styled}><v>{text}</v></c>"


def _holds_exactly(number: Decimal) -> bool:
    """Whether a double written with 15 significant digits gives `number` back (as
    PostgreSQL's numeric -> float8 -> numeric casts do)."""
    if not number.is_finite():
        return False
    if number.is_zero():
        return True
    if not Decimal("1e-300") <= abs(number) < Decimal("1e300"):
        return False
    return Decimal(format(float(number), ".15g")) == number


def _serial(microseconds: int) -> str:
    """An Excel serial (days since 1899-12-30) from microseconds since then: 12 decimals."""
    days, remainder = divmod(microseconds, _MICROSECONDS_PER_DAY)
    fraction = (remainder * 1_000_000 + 43_200) // 86_400
    return f"{days}.{fraction:012d}"


CellRenderer = Callable[[Any], str]


def _integer_cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) <= _EXACT_INTEGER:
            return _number_cell(str(value))
        return string_cell(str(value))
    return _decimal_cell(value)


def _decimal_cell(value: Any) -> str:
    if isinstance(value, Decimal):
        if _holds_exactly(value):
            return _number_cell(format(value, "f"))
        return string_cell(value_text.decimal_text(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return _integer_cell(value)
    return string_cell(value_text.decimal_text(value))


def _renderer(column_type: ColumnType, options: FormatOptions) -> CellRenderer:
    """The function turning one non-NULL value of `column_type` into a cell."""
    if column_type is ColumnType.INTEGER:
        return _integer_cell
    if column_type is ColumnType.DECIMAL:
        return _decimal_cell
    if column_type is ColumnType.FLOAT:

        def floating(value: Any) -> str:
            if isinstance(value, float) and math.isfinite(value):
                return _number_cell(repr(value))
            return string_cell(value_text.float_text(value))

        return floating
    if column_type is ColumnType.BOOLEAN:
        return lambda value: (
            f'<c t="b"><v>{int(value)}</v></c>'
            if isinstance(value, bool)
            else string_cell(str(value))
        )
    if column_type is ColumnType.TIMESTAMP:
        zone = options.timezone

        def timestamp(value: Any) -> str:
            if not isinstance(value, datetime):
                return string_cell(str(value))
            instant = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            wall = instant.astimezone(zone).replace(tzinfo=None)
            microseconds = (wall - _EXCEL_EPOCH) // timedelta(microseconds=1)
            if microseconds < _FIRST_SERIAL_MICROSECONDS:
                return string_cell(wall.isoformat(timespec="microseconds"))
            return _number_cell(_serial(microseconds), _DATETIME_STYLE)

        return timestamp
    if column_type is ColumnType.DATE:

        def day(value: Any) -> str:
            if isinstance(value, datetime):
                value = value.date()
            if not isinstance(value, date):
                return string_cell(str(value))
            serial = (value - _EXCEL_EPOCH.date()).days
            if serial < _FIRST_SERIAL_DAY:
                return string_cell(value.isoformat())
            return _number_cell(str(serial), _DATE_STYLE)

        return day
    if column_type is ColumnType.JSON:
        return lambda value: string_cell(value_text.json_text(value))
    return lambda value: string_cell(value if isinstance(value, str) else str(value))


# ----------------------------------------------------------------------------- SQL rendering
def _sql_text_content(text: str) -> str:
    fast = f"left({text}, {MAX_CELL_CHARACTERS})"
    slow = f"regexp_replace({fast}, '_(x[0-9A-Fa-f]{{4}}_)', '_x005F_\\1', 'g')"
    for character in _CONTROL_CHARACTERS:
        slow = f"replace({slow}, chr({ord(character)}), '_x{ord(character):04X}_')"
    chosen = (
        f"CASE WHEN {fast} ~ '[\\x01-\\x08\\x0b\\x0c\\x0e-\\x1f]|_x[0-9A-Fa-f]{{4}}_'"
        f" THEN {slow} ELSE {fast} END"
    )
    for character, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        chosen = f"replace({chosen}, '{character}', '{entity}')"
    for code, entity in ((10, "&#10;"), (13, "&#13;"), (9, "&#9;")):
        chosen = f"replace({chosen}, chr({code}), '{entity}')"
    return chosen


def _sql_string_cell(text: str) -> str:
    return (
        '\'<c t="inlineStr"><is><t xml:space="preserve">\' || '
        f"{_sql_text_content(text)} || '</t></is></c>'"
    )


def _sql_number_cell(text: str, style: int = 0) -> str:
    styled = f' s="{style}"' if style else ""
    return f"'<c{styled}><v>' || {text} || '</v></c>'"


def _sql_value_cell(column_type: ColumnType, source: SourceType, column: str) -> str | None:
    """SQL for one non-NULL cell exactly as `_renderer` writes it, or None."""
    if column_type is ColumnType.STRING and source in (SourceType.TEXT, SourceType.UUID):
        return _sql_string_cell(f"CAST({column} AS text)")
    if column_type is ColumnType.INTEGER and source is SourceType.INTEGER:
        return (
            f"CASE WHEN abs(CAST({column} AS numeric)) <= {_EXACT_INTEGER}"
            f" THEN {_sql_number_cell(f'CAST({column} AS text)')}"
            f" ELSE {_sql_string_cell(f'CAST({column} AS text)')} END"
        )
    if column_type in (ColumnType.INTEGER, ColumnType.DECIMAL) and source is SourceType.NUMERIC:
        text = f"CAST({column} AS text)"
        exact = (
            f"{column} = 0 OR (abs({column}) >= 1e-300 AND abs({column}) < 1e300"
            f" AND CAST(CAST({column} AS float8) AS numeric) = {column})"
        )
        return (
            f"CASE WHEN {text} IN ('NaN', 'Infinity', '-Infinity') THEN {_sql_string_cell(text)}"
            f" WHEN {exact} THEN {_sql_number_cell(text)} ELSE {_sql_string_cell(text)} END"
        )
    if column_type is ColumnType.DECIMAL and source is SourceType.INTEGER:
        return _sql_value_cell(ColumnType.INTEGER, source, column)
    if column_type is ColumnType.BOOLEAN and source is SourceType.BOOLEAN:
        return (
            f"CASE WHEN {column} THEN '<c t=\"b\"><v>1</v></c>' ELSE '<c t=\"b\"><v>0</v></c>' END"
        )
    if column_type is ColumnType.TIMESTAMP and source in (
        SourceType.TIMESTAMPTZ,
        SourceType.TIMESTAMP,
    ):
        # The wall time in the session's time zone (the export's): COPY runs with it set.
        instant = column if source is SourceType.TIMESTAMPTZ else f"({column} AT TIME ZONE 'UTC')"
        wall = f"CAST({instant} AS timestamp)"
        micros = (
            f"(CAST(extract(epoch FROM {wall}) * 1000000 AS bigint) + {_EPOCH_OFFSET_MICROSECONDS})"
        )
        serial = (
            f"CAST({micros} / {_MICROSECONDS_PER_DAY} AS text) || '.' || "
            f"lpad(CAST(({micros} % {_MICROSECONDS_PER_DAY} * 1000000 + 43200) / 86400"
            " AS text), 12, '0')"
        )
        as_text = _sql_string_cell(f"CAST({column} AS text)")
        early = _sql_string_cell(f"to_char({wall}, {_WALL_TIME_FORMAT})")
        return (
            f"CASE WHEN NOT isfinite({column}) THEN {as_text}"
            f" WHEN {micros} < {_FIRST_SERIAL_MICROSECONDS} THEN {early}"
            f" ELSE {_sql_number_cell(serial, _DATETIME_STYLE)} END"
        )
    if column_type is ColumnType.DATE and source is SourceType.DATE:
        serial = f"({column} - DATE '1899-12-30')"
        as_text = _sql_string_cell(f"CAST({column} AS text)")
        early = _sql_string_cell(f"to_char({column}, 'YYYY-MM-DD')")
        return (
            f"CASE WHEN NOT isfinite({column}) THEN {as_text}"
            f" WHEN {serial} < {_FIRST_SERIAL_DAY} THEN {early}"
            f" ELSE {_sql_number_cell(f'CAST({serial} AS text)', _DATE_STYLE)} END"
        )
    return None


# ----------------------------------------------------------------------------- the package
def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _sheet_opening(columns: Sequence[OutputColumn], rows: int) -> str:
    """A sheet's XML up to its first row, the header; `rows` below it. Readers in streaming
    mode (openpyxl's read_only) read only as many rows as the dimension says."""
    widths = "".join(
        f'<col min="{number}" max="{number}" width="{min(max(len(column.label) + 4, 12), 60)}"'
        ' customWidth="1"/>'
        for number, column in enumerate(columns, start=1)
    )
    header = "".join(string_cell(column.label, _HEADER_STYLE) for column in columns)
    return (
        f'{_XML_DECLARATION}<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
        f'<dimension ref="A1:{_column_letters(len(columns) - 1)}{rows + 1}"/>'
        '<sheetViews><sheetView workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
        f'<sheetFormatPr defaultRowHeight="15"/><cols>{widths}</cols><sheetData>\n'
        f"<row>{header}</row>\n"
    )


_SHEET_CLOSING = "</sheetData></worksheet>"

_STYLES = (
    f'{_XML_DECLARATION}<styleSheet xmlns="{_MAIN_NS}">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFD9E1F2"/><bgColor indexed="64"/>'
    "</patternFill></fill></fills>"
    '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>'
    '<border><left/><right/><top/><bottom style="thin"><color auto="1"/></bottom><diagonal/>'
    "</border></borders>"
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1"'
    ' applyBorder="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def sheet_name(number: int) -> str:
    return f"Sheet{number}"


def _package_parts(sheets: int) -> list[tuple[str, str]]:
    """The workbook's parts other than its sheets: (name in the archive, XML)."""
    numbers = range(1, sheets + 1)
    sheet_types = "".join(
        f'<Override PartName="/xl/worksheets/sheet{number}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for number in numbers
    )
    content_types = (
        f"{_XML_DECLARATION}<Types xmlns="
        '"http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        f"{sheet_types}</Types>"
    )
    root_relations = (
        f'{_XML_DECLARATION}<Relationships xmlns="{_PKG_REL_NS}">'
        f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    workbook = (
        f'{_XML_DECLARATION}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheets>'
        + "".join(
            f'<sheet name="{sheet_name(number)}" sheetId="{number}" r:id="rId{number}"/>'
            for number in numbers
        )
        + "</sheets></workbook>"
    )
    workbook_relations = (
        f'{_XML_DECLARATION}<Relationships xmlns="{_PKG_REL_NS}">'
        + "".join(
            f'<Relationship Id="rId{number}" Type="{_REL_NS}/worksheet"'
            f' Target="worksheets/sheet{number}.xml"/>'
            for number in numbers
        )
        + f'<Relationship Id="rId{sheets + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
        "</Relationships>"
    )
    return [
        ("[Content_Types].xml", content_types),
        ("_rels/.rels", root_relations),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", workbook_relations),
        ("xl/styles.xml", _STYLES),
    ]


def sheets_of(pieces: Sequence[StagedContent], sheet_rows: int) -> list[list[StagedContent]]:
    """Consecutive pieces grouped into sheets of at most `sheet_rows` rows (pieces without
    rows left out; a workbook without rows has one sheet, its header)."""
    sheets: list[list[StagedContent]] = []
    current: list[StagedContent] = []
    rows = 0
    for piece in pieces:
        if piece.rows == 0:
            continue
        if piece.rows > sheet_rows:
            raise DataExportError(
                f"A segment of {piece.rows} rows does not fit a sheet of {sheet_rows}."
            )
        if current and rows + piece.rows > sheet_rows:
            sheets.append(current)
            current, rows = [], 0
        current.append(piece)
        rows += piece.rows
    if current or not sheets:
        sheets.append(current)
    return sheets


class _InMemory:
    """An assembly target holding one piece in memory: returns the joined bytes' object."""

    def __init__(self, piece: bytes) -> None:
        self._piece = piece
        self.data = b""

    def join(self, parts: Sequence[bytes | StagedContent]) -> Any:
        self.data = b"".join(part if isinstance(part, bytes) else self._piece for part in parts)
        return self.data

    def read(self, piece: StagedContent) -> bytes:
        return self._piece

    def write(self, produce: Callable[[BinarySink], None]) -> Any:
        raise NotImplementedError("a workbook is joined, never rewritten")


class XlsxWriter(FormatWriter):
    name: ClassVar[str] = "xlsx"
    extension: ClassVar[str] = "xlsx"
    media_type: ClassVar[str] = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assembles_pieces: ClassVar[bool] = True
    compresses_itself: ClassVar[bool] = True
    sheet_rows: ClassVar[int] = SHEET_ROWS

    def __init__(
        self,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        sink: BinarySink,
        position: PartPosition = WHOLE_FILE,
    ) -> None:
        super().__init__(columns, options, sink, position)
        self._renderers = [_renderer(column.type, options) for column in self.columns]
        self._deflate = DeflatePiece()
        self._deflated = NOTHING

    @classmethod
    def segment_rows(cls, requested: int) -> int:
        """The largest divisor of a sheet's rows up to `requested`, so that sheets fill up
        with whole segments."""
        return max(
            divisor
            for divisor in range(1, min(requested, cls.sheet_rows) + 1)
            if cls.sheet_rows % divisor == 0
        )

    def _row(self, row: Sequence[Any]) -> str:
        cells = [
            EMPTY_CELL if value is None else render(value)
            for render, value in zip(self._renderers, row, strict=True)
        ]
        return "<row>" + "".join(cells) + "</row>\n"

    def copy_plan(
        self, sources: Sequence[SourceType], references: Sequence[str]
    ) -> CopyPlan | None:
        cells: list[str] = []
        for column, source, reference in zip(self.columns, sources, references, strict=True):
            cell = _sql_value_cell(column.type, source, reference)
            if cell is None:
                return None
            cells.append(f"CASE WHEN {reference} IS NULL THEN '{EMPTY_CELL}' ELSE {cell} END")
        return CopyPlan(
            select_list=["concat('<row>', " + ", ".join(cells) + ", '</row>')"],
            copy_options=JSON_LINE_COPY_OPTIONS,
            framing=LineFraming.AS_IS,
        )

    def _write_bytes(self, data: bytes) -> None:
        stored = self._deflate.compress(data)
        if stored:
            self._sink.write(stored)
            self._bytes += len(stored)

    def close(self) -> WriteSummary:
        was_open = self._state == "open"
        summary = super().close()
        if was_open:
            tail = self._deflate.flush()
            self._sink.write(tail)
            self._bytes += len(tail)
            self._deflated = Deflated(self._bytes, self._deflate.raw_bytes, self._deflate.crc32)
        return WriteSummary(summary.rows, self._bytes, self._deflated)

    @classmethod
    def whole_file(
        cls,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        rows: Iterable[Sequence[Any]],
    ) -> bytes:
        """A whole workbook of a few rows, in memory (previews, empty exports)."""
        sink = BufferSink()
        writer = cls(columns, options, sink, PIECE)
        writer.open()
        writer.write_rows(rows)
        written = writer.close()
        piece = StagedContent("", written.rows, written.bytes, "", written.deflated)
        target = _InMemory(bytes(sink.data))
        cls.assemble(columns, options, [piece], target)
        return target.data

    @classmethod
    def assemble(
        cls,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        pieces: Sequence[StagedContent],
        target: AssemblyTarget,
    ) -> StoredObject:
        sheets = sheets_of(pieces, cls.sheet_rows)
        layout = ZipLayout()
        parts: list[bytes | StagedContent] = []
        for name, xml in _package_parts(len(sheets)):
            body, content = deflated_whole(xml.encode())
            parts += [layout.local_header(name, content), body]
        closing, closing_content = deflated_whole(_SHEET_CLOSING.encode())
        for number, sheet in enumerate(sheets, start=1):
            rows = sum(piece.rows for piece in sheet)
            opening, content = deflated_piece(_sheet_opening(columns, rows).encode())
            for piece in sheet:
                if piece.deflated is None:
                    raise DataExportError(f"Piece {piece.key} has no deflate facts.")
                content = content.then(piece.deflated)
            content = content.then(closing_content)
            parts += [
                layout.local_header(f"xl/worksheets/sheet{number}.xml", content),
                opening,
                *sheet,
                closing,
            ]
        parts.append(layout.central_directory())
        return target.join(parts)
