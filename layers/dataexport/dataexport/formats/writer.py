"""The one interface every output format implements: open, write_rows, close.

A writer turns rows (sequences of values in column order, as the database returns them) into
bytes and hands them to a sink in chunks of about CHUNK_BYTES, so no export is ever held in
memory whole. An export may be split into partitions that are formatted separately and then
concatenated in order: PartPosition tells a writer whether it writes the file's beginning (BOM,
header, opening bracket) and/or its end (closing bracket). An export split into several files is
written as bare pieces (PIECE: rows only) that the Upload step joins into files with the
writer's FileFraming (opening, separator between pieces, closing); a sink that is a PieceCutter
decides where one piece ends, always between rows.

Rows reach a writer one of two ways. `write_rows` takes values and renders them in Python: the
reference, and the way for every source and format. Formats that are lines of text may also offer
a `copy_plan`: the SQL that makes PostgreSQL render each row exactly as `write_rows` would, and
how the lines COPY sends become the format's bytes (`copy_target`). The Format step uses the plan
when there is one, as it is several times faster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from dataexport.catalog.model import ColumnType
from dataexport.errors import InvalidRequest
from dataexport.formats.zip_container import Deflated
from dataexport.sql_rendering import SourceType

if TYPE_CHECKING:
    from dataexport.adapters.object_store import StoredObject

CHUNK_BYTES = 64 * 1024
# Lines from COPY are gathered into larger chunks: fewer, bigger writes downstream.
COPY_CHUNK_BYTES = 256 * 1024
DELIMITERS = (",", ";", "\t", "|")
LINE_ENDINGS = ("\r\n", "\n")
BYTE_ORDER_MARK = "\ufeff"  # written as the UTF-8 bytes EF BB BF
MAX_DECIMAL_PLACES = 12


@dataclass(frozen=True)
class OutputColumn:
    """One column of the output: its key (JSON), its header (CSV) and how to render values."""

    name: str
    label: str
    type: ColumnType
    # The value is JSON text PostgreSQL rendered (nested children): written as it is.
    json_text: bool = False


@dataclass(frozen=True)
class FormatOptions:
    """Caller-chosen rendering options; formats ignore the ones that do not apply to them."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    bom: bool = True
    delimiter: str = ","
    line_ending: str = "\r\n"
    # Decimal and float cells rounded to this many places (None: as they are).
    decimal_places: int | None = None
    # JSON: the object the rows are wrapped with, {"metadata": ..., "data": [...]} (None: none).
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.delimiter not in DELIMITERS:
            raise InvalidRequest(
                "options.delimiter",
                f"Delimiter {self.delimiter!r} is not one of {', '.join(map(repr, DELIMITERS))}.",
            )
        if self.line_ending not in LINE_ENDINGS:
            raise InvalidRequest("options.line_ending", "Line ending must be CRLF or LF.")
        if self.decimal_places is not None and not 0 <= self.decimal_places <= MAX_DECIMAL_PLACES:
            raise InvalidRequest(
                "options.decimal_places",
                f"Decimal places must be between 0 and {MAX_DECIMAL_PLACES}.",
            )


@dataclass(frozen=True)
class PartPosition:
    """Where a formatted part sits in the final file.

    `separated`: whether the part's first row follows a row of an earlier part (a JSON array
    element then starts with its comma); pieces start bare, the Upload step joins them.
    """

    first: bool = True
    last: bool = True
    separated: bool = True


WHOLE_FILE = PartPosition(first=True, last=True)
PIECE = PartPosition(first=False, last=False, separated=False)


@dataclass(frozen=True)
class FileFraming:
    """What turns consecutive pieces into one whole file of the format."""

    opening: bytes
    separator: bytes
    closing: bytes


class BinarySink(Protocol):
    """Where a writer's bytes go (an S3 multipart upload, a file, a buffer in tests)."""

    def write(self, data: bytes) -> None: ...


class BufferSink:
    """A sink that keeps what it is given in memory: for small outputs only (a preview, an
    empty file, a format's framing)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


@runtime_checkable
class PieceCutter(Protocol):
    """A sink whose output is cut into pieces, each between two rows."""

    def write(self, data: bytes) -> None: ...

    def begins_piece(self, incoming: int, rows_before: int) -> bool:
        """Called before each chunk of whole rows (`incoming` bytes; `rows_before` rows were
        written before it): True when the chunk starts a new piece, which must then not begin
        with the separator that joins a row to the one before."""
        ...


@dataclass(frozen=True)
class WriteSummary:
    rows: int
    bytes: int
    # What a format that deflates its own pieces (xlsx) needs to place them in an archive.
    deflated: Deflated | None = None


@dataclass(frozen=True)
class StagedContent:
    """A finished piece in staging, as a format that assembles its pieces itself sees it."""

    key: str
    rows: int
    bytes: int
    sha256: str
    deflated: Deflated | None = None


class AssemblyTarget(Protocol):
    """Where a format that assembles its own pieces puts the export's file."""

    def join(self, parts: Sequence[bytes | StagedContent]) -> StoredObject:
        """The file made of `parts` in order: bytes as given, pieces as staged (server-side)."""
        ...

    def read(self, piece: StagedContent) -> bytes:
        """A staged piece's bytes."""
        ...

    def write(self, produce: Callable[[BinarySink], None]) -> StoredObject:
        """The file of what `produce` writes to the sink it is given."""
        ...


class LineFraming(StrEnum):
    """How one line from COPY ("...\\n") becomes the format's bytes."""

    AS_IS = "as_is"  # NDJSON, CSV with LF
    CRLF = "crlf"  # CSV with CRLF: COPY ends lines with LF only
    JSON_ARRAY = "json_array"  # an element of a JSON array: separated by ",\\n", no LF


@dataclass(frozen=True)
class CopyPlan:
    """How PostgreSQL renders a format's rows itself, for `COPY (SELECT ...) TO STDOUT`.

    `select_list` holds SQL expressions over the columns' quoted references, in output order;
    `copy_options` the COPY options (fixed text, never a caller's value); `first_separator`
    what precedes the first JSON array element of this part.
    """

    select_list: list[str]
    copy_options: str
    framing: LineFraming
    first_separator: bytes = b"\n"


class CopyTarget:
    """What COPY writes its lines to: gathered into chunks, framed, handed to the writer.

    PostgreSQL sends each row as one CopyData message, so `write` receives exactly one line,
    ending in LF, and `write_lines` the lines of one read from the database. Both only
    collect; the framing works on whole chunks at C speed (a line with a line break inside a
    quoted cell is the rare slow case).
    """

    def __init__(
        self,
        framing: LineFraming,
        emit: Callable[[bytes], None],
        on_chunk: Callable[[int], None],
        first_separator: bytes = b"\n",
        begins_piece: Callable[[int, int], bool] | None = None,
    ) -> None:
        self.rows = 0
        self._framing = framing
        self._emit = emit
        self._on_chunk = on_chunk
        self._begins_piece = begins_piece
        self._lines: list[bytes] = []
        self._pending = 0
        self._separator = first_separator

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        self._pending += len(line)
        if self._pending >= COPY_CHUNK_BYTES:
            self.flush()

    def write_lines(self, lines: list[bytes]) -> None:
        """Many lines at once, as they arrived in one read from the database."""
        self._lines += lines
        self._pending += sum(map(len, lines))
        if self._pending >= COPY_CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        lines = self._lines
        if lines:
            if self._begins_piece is not None and self._begins_piece(self._pending, self.rows):
                self._separator = b""
            self._emit(self._framed(lines))
            self.rows += len(lines)
            self._lines = []
            self._pending = 0
        self._on_chunk(self.rows)

    def _framed(self, lines: list[bytes]) -> bytes:
        data = b"".join(lines)
        if self._framing is LineFraming.AS_IS:
            return data
        # Only row ends are LFs unless a cell holds one (JSON text never does).
        only_row_ends = data.count(b"\n") == len(lines)
        if self._framing is LineFraming.CRLF:
            if only_row_ends:
                return data.replace(b"\n", b"\r\n")
            return b"".join(line[:-1] + b"\r\n" for line in lines)
        framed = self._separator + data[:-1].replace(b"\n", b",\n")
        self._separator = b",\n"
        return framed


def _no_progress(rows: int) -> None:
    return None


class FormatWriter(ABC):
    """Base of every format: buffering, counting and the open/write/close life cycle.

    Subclasses render text: `_begin` (the part's opening), `_row` (one row) and `_end`.
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    media_type: ClassVar[str]
    option_names: ClassVar[tuple[str, ...]] = ("timezone",)
    chunk_bytes: ClassVar[int] = CHUNK_BYTES
    # What joins a row to the one before it, when `_row` writes it in front of the row.
    row_separator: ClassVar[str] = ""
    # Formats whose files are containers (a ZIP archive, a Parquet file) cannot be joined by
    # framing: they write bare pieces and `assemble` makes the file of them.
    assembles_pieces: ClassVar[bool] = False
    # Formats that compress inside their own container take no compression option.
    compresses_itself: ClassVar[bool] = False
    # Formats whose rows can hold an array of child objects (options.nested).
    nests_children: ClassVar[bool] = False

    def __init__(
        self,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        sink: BinarySink,
        position: PartPosition = WHOLE_FILE,
    ) -> None:
        if not columns:
            raise ValueError("a writer needs at least one column")
        if not self.nests_children and any(column.json_text for column in columns):
            raise ValueError(f"{self.name} cannot write nested children")
        self.columns = list(columns)
        self.options = options
        self.position = position
        self._sink = sink
        self._cutter = sink if isinstance(sink, PieceCutter) else None
        self._pending: list[str] = []
        self._pending_chars = 0
        self._pending_rows = 0
        self._flushed_rows = 0
        self._rows = 0
        self._bytes = 0
        self._state = "new"
        self._copy_target: CopyTarget | None = None

    # ------------------------------------------------------------------ life cycle
    def open(self) -> None:
        """Write the part's opening (BOM, header, bracket) as its position requires."""
        if self._state != "new":
            raise RuntimeError(f"{type(self).__name__} was already opened")
        self._state = "open"
        if self.position.first and self.options.bom and self._writes_bom():
            self._emit(BYTE_ORDER_MARK)
        self._emit(self._begin())

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Format `rows` (values in column order); return how many were written."""
        if self._state != "open":
            raise RuntimeError(f"{type(self).__name__} is not open")
        width = len(self.columns)
        written = 0
        for row in rows:
            if len(row) != width:
                raise ValueError(f"a row has {len(row)} values for {width} columns")
            text = self._row(row)
            self._pending_rows += 1
            self._emit(text)
            written += 1
        self._rows += written
        return written

    def copy_plan(
        self, sources: Sequence[SourceType], references: Sequence[str]
    ) -> CopyPlan | None:
        """The SQL rendering this writer's rows exactly as `write_rows` would, given each
        column's PostgreSQL type and quoted reference; None if PostgreSQL cannot."""
        return None

    def copy_target(
        self, plan: CopyPlan, on_chunk: Callable[[int], None] = _no_progress
    ) -> CopyTarget:
        """Where COPY sends the rows of `plan` (this writer's `copy_plan`); `on_chunk` hears
        the row count every few hundred KiB."""
        if self._state != "open":
            raise RuntimeError(f"{type(self).__name__} is not open")
        self._flush()
        self._copy_target = CopyTarget(
            plan.framing,
            self._write_bytes,
            on_chunk,
            plan.first_separator,
            None if self._cutter is None else self._cutter.begins_piece,
        )
        return self._copy_target

    def close(self) -> WriteSummary:
        """Write the part's end, flush everything to the sink and report rows and bytes."""
        if self._state == "open":
            if self._copy_target is not None:
                self._copy_target.flush()
                self._rows += self._copy_target.rows
                self._copy_target = None
            self._emit(self._end())
            self._flush()
            self._state = "closed"
        elif self._state == "new":
            raise RuntimeError(f"{type(self).__name__} was never opened")
        return WriteSummary(rows=self._rows, bytes=self._bytes)

    @classmethod
    def request_options(cls) -> tuple[str, ...]:
        """The request options this format uses: its own, then how children are included."""
        return (*cls.option_names, *(("nested",) if cls.nests_children else ()), "flatten")

    @classmethod
    def whole_file(
        cls,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        rows: Iterable[Sequence[Any]],
    ) -> bytes:
        """A whole file of `rows`, written in memory (a few rows: previews, empty files)."""
        sink = BufferSink()
        writer = cls(columns, options, sink)
        writer.open()
        writer.write_rows(rows)
        writer.close()
        return bytes(sink.data)

    @classmethod
    def segment_rows(cls, requested: int) -> int:
        """How many rows a segment of this format holds when `requested` are asked for."""
        return requested

    @classmethod
    def assemble(
        cls,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        pieces: Sequence[StagedContent],
        target: AssemblyTarget,
    ) -> StoredObject:
        """The export's file made of its pieces, in order (formats with `assembles_pieces`)."""
        raise NotImplementedError(f"{cls.name} files are joined by their framing")

    def file_framing(self) -> FileFraming:
        """The opening, separator and closing that join pieces (PIECE) into a whole file."""
        bom = BYTE_ORDER_MARK if self.options.bom and self._writes_bom() else ""
        return FileFraming(
            opening=(bom + self._file_opening()).encode(),
            separator=self.row_separator.encode(),
            closing=self._file_closing().encode(),
        )

    # ------------------------------------------------------------------ for subclasses
    def _writes_bom(self) -> bool:
        return False

    def _file_opening(self) -> str:
        """A whole file's beginning before its first row (after any BOM)."""
        return ""

    def _file_closing(self) -> str:
        return ""

    def _begin(self) -> str:
        return ""

    @abstractmethod
    def _row(self, row: Sequence[Any]) -> str:
        """One row as text, including its separators."""

    def _end(self) -> str:
        return ""

    # ------------------------------------------------------------------ buffering
    def _emit(self, text: str) -> None:
        if not text:
            return
        self._pending.append(text)
        # Characters, not bytes: close enough to keep chunks near the target size.
        self._pending_chars += len(text)
        if self._pending_chars >= self.chunk_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data = "".join(self._pending).encode("utf-8")
            if self._cutter is not None and self._cutter.begins_piece(
                len(data), self._flushed_rows
            ):
                data = data.removeprefix(self.row_separator.encode())
            self._write_bytes(data)
            self._pending.clear()
            self._pending_chars = 0
            self._flushed_rows += self._pending_rows
            self._pending_rows = 0

    def _write_bytes(self, data: bytes) -> None:
        self._sink.write(data)
        self._bytes += len(data)
