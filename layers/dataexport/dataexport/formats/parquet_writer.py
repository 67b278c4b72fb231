"""Parquet: a typed columnar file (pyarrow), its schema taken from the catalog.

Types: string, int64, decimal(38, 10) (rounded half away from zero to 10 places; NaN and
infinities, which Parquet decimals cannot hold, are null), float64, bool, timestamps as UTC
microseconds labelled with the export's time zone, dates, and json columns as JSON text.
Columns are compressed with zstd inside the file, so the export takes no compression option.

PostgreSQL streams the rows as CSV (COPY) with every value in the form Arrow's CSV reader
converts fastest (timestamps as epoch microseconds, dates as epoch days); pyarrow parses
blocks of it and writes them as row groups. Each segment is a Parquet file of its own; the
Upload step copies a lone one as it is, or rewrites the row groups of all of them, in order,
into the export's one file (a Parquet footer holds absolute offsets: files cannot be spliced).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import TYPE_CHECKING, Any, ClassVar

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
    StagedContent,
    WriteSummary,
)
from dataexport.lazy_module import LazyModule
from dataexport.sql_rendering import SourceType

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as arrow_csv
    import pyarrow.parquet as pq

    from dataexport.adapters.object_store import StoredObject
    from dataexport.formats.writer import AssemblyTarget
else:
    # Imported on first use: pyarrow costs every other export's Lambda tens of MB and a
    # slower cold start.
    pa = LazyModule("pyarrow")
    arrow_csv = LazyModule("pyarrow.csv")
    pq = LazyModule("pyarrow.parquet")

DECIMAL_PRECISION = 38
DECIMAL_SCALE = 10
CODEC = "zstd"
# CSV from COPY is parsed this many bytes at a time: each block becomes row groups.
CSV_BLOCK_BYTES = 16 * 1024 * 1024
# Rows the Python path gathers before they become Arrow arrays.
PYTHON_BATCH_ROWS = 50_000
ROW_GROUP_ROWS = 128 * 1024
_QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)
_DECIMAL_CONTEXT = Context(prec=2 * DECIMAL_PRECISION)


def arrow_schema(columns: Sequence[OutputColumn], options: FormatOptions) -> pa.Schema:
    zone = options.timezone.key
    types: dict[ColumnType, pa.DataType] = {
        ColumnType.STRING: pa.string(),
        ColumnType.INTEGER: pa.int64(),
        ColumnType.DECIMAL: pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
        ColumnType.FLOAT: pa.float64(),
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.TIMESTAMP: pa.timestamp("us", tz=zone),
        ColumnType.DATE: pa.date32(),
        ColumnType.JSON: pa.string(),
    }
    return pa.schema(
        [
            pa.field(column.name, types[column.type], metadata={"label": column.label})
            for column in columns
        ]
    )


# ----------------------------------------------------------------------------- Python values
def _decimal(value: Any) -> Decimal | None:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return None
    # Enough digits for any decimal(38, 10) value: the default context stops at 28.
    return number.quantize(_QUANTUM, rounding=ROUND_HALF_UP, context=_DECIMAL_CONTEXT)


def _float(value: Any) -> float:
    return value if isinstance(value, float) else float(value)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None  # 'infinity' and other values a timestamp cannot hold
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def _string(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


_CONVERTERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.STRING: _string,
    ColumnType.INTEGER: int,
    ColumnType.DECIMAL: _decimal,
    ColumnType.FLOAT: _float,
    ColumnType.BOOLEAN: bool,
    ColumnType.TIMESTAMP: _timestamp,
    ColumnType.DATE: _date,
    ColumnType.JSON: value_text.json_text,
}


# ----------------------------------------------------------------------------- SQL rendering
_EPOCH_MICROSECONDS = "CAST(extract(epoch FROM {instant}) * 1000000 AS bigint)"


def _csv_value(column_type: ColumnType, source: SourceType, column: str) -> str | None:
    """SQL for one CSV value that Arrow converts to the column's type (NULL: null)."""
    if column_type is ColumnType.STRING and source in (SourceType.TEXT, SourceType.UUID):
        return column
    if column_type is ColumnType.INTEGER and source is SourceType.INTEGER:
        return column
    if column_type is ColumnType.DECIMAL and source in (SourceType.NUMERIC, SourceType.INTEGER):
        numeric = f"CAST({column} AS numeric)"
        return (
            f"CASE WHEN {numeric} IN ('NaN', 'Infinity', '-Infinity') THEN NULL"
            f" ELSE round({numeric}, {DECIMAL_SCALE}) END"
        )
    if column_type is ColumnType.FLOAT and source is SourceType.FLOAT:
        return column
    if column_type is ColumnType.BOOLEAN and source is SourceType.BOOLEAN:
        return column
    if column_type is ColumnType.TIMESTAMP and source in (
        SourceType.TIMESTAMPTZ,
        SourceType.TIMESTAMP,
    ):
        instant = column if source is SourceType.TIMESTAMPTZ else f"({column} AT TIME ZONE 'UTC')"
        return (
            f"CASE WHEN isfinite({column}) THEN {_EPOCH_MICROSECONDS.format(instant=instant)} END"
        )
    if column_type is ColumnType.DATE and source is SourceType.DATE:
        return f"CASE WHEN isfinite({column}) THEN {column} - DATE '1970-01-01' END"
    return None


def _csv_type(field: pa.Field) -> pa.DataType:
    """The type Arrow's CSV reader gives a column before it takes the schema's."""
    if pa.types.is_timestamp(field.type):
        return pa.int64()
    if pa.types.is_date32(field.type):
        return pa.int32()
    return field.type


class _SinkFile:
    """The writable file pyarrow writes to: hands its bytes on to the writer's sink."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        block = bytes(data)  # pyarrow may reuse its buffer once this returns
        self._write(block)
        self._position += len(block)
        return len(block)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


class ParquetWriter(FormatWriter):
    name: ClassVar[str] = "parquet"
    extension: ClassVar[str] = "parquet"
    media_type: ClassVar[str] = "application/vnd.apache.parquet"
    assembles_pieces: ClassVar[bool] = True
    compresses_itself: ClassVar[bool] = True

    def __init__(
        self,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        sink: BinarySink,
        position: PartPosition = WHOLE_FILE,
    ) -> None:
        super().__init__(columns, options, sink, position)
        self.schema = arrow_schema(self.columns, options)
        self._file = _SinkFile(self._sink_write)
        self._parquet: pq.ParquetWriter | None = None
        self._csv = bytearray()
        self._converters = [_CONVERTERS[column.type] for column in self.columns]

    def open(self) -> None:
        super().open()
        self._parquet = pq.ParquetWriter(self._file, self.schema, compression=CODEC)

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        if self._state != "open":
            raise RuntimeError(f"{type(self).__name__} is not open")
        width = len(self.columns)
        batch: list[Sequence[Any]] = []
        written = 0
        for row in rows:
            if len(row) != width:
                raise ValueError(f"a row has {len(row)} values for {width} columns")
            batch.append(row)
            if len(batch) >= PYTHON_BATCH_ROWS:
                self._write_python(batch)
                written += len(batch)
                batch = []
        if batch:
            self._write_python(batch)
            written += len(batch)
        self._rows += written
        return written

    def copy_plan(
        self, sources: Sequence[SourceType], references: Sequence[str]
    ) -> CopyPlan | None:
        values = [
            _csv_value(column.type, source, reference)
            for column, source, reference in zip(self.columns, sources, references, strict=True)
        ]
        if any(value is None for value in values):
            return None
        return CopyPlan(
            select_list=[value for value in values if value is not None],
            copy_options="FORMAT csv",
            framing=LineFraming.AS_IS,
        )

    def close(self) -> WriteSummary:
        was_open = self._state == "open"
        summary = super().close()
        if was_open:
            self._convert_csv()
            assert self._parquet is not None
            self._parquet.close()
        return WriteSummary(summary.rows, self._file.tell())

    @classmethod
    def assemble(
        cls,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        pieces: Sequence[StagedContent],
        target: AssemblyTarget,
    ) -> StoredObject:
        with_rows = [piece for piece in pieces if piece.rows]
        if len(with_rows) == 1:
            return target.join(with_rows)
        schema = arrow_schema(columns, options)

        def rewrite(sink: BinarySink) -> None:
            with pq.ParquetWriter(_SinkFile(sink.write), schema, compression=CODEC) as joined:
                for piece in with_rows:
                    staged = pq.ParquetFile(pa.BufferReader(target.read(piece)))
                    for group in range(staged.num_row_groups):
                        joined.write_table(staged.read_row_group(group))

        return target.write(rewrite)

    # ------------------------------------------------------------------ internals
    def _row(self, row: Sequence[Any]) -> str:
        raise TypeError("Parquet rows are written in batches, never as text")

    def _sink_write(self, data: bytes) -> None:
        self._sink.write(data)

    def _write_bytes(self, data: bytes) -> None:
        # CSV lines from COPY: parsed a block at a time.
        self._csv += data
        if len(self._csv) >= CSV_BLOCK_BYTES:
            self._convert_csv()

    def _convert_csv(self) -> None:
        if not self._csv:
            return
        names = [f"c{index}" for index in range(len(self.columns))]
        table = arrow_csv.read_csv(
            pa.BufferReader(bytes(self._csv)),
            read_options=arrow_csv.ReadOptions(column_names=names),
            parse_options=arrow_csv.ParseOptions(newlines_in_values=True),
            convert_options=arrow_csv.ConvertOptions(
                column_types={
                    name: _csv_type(field) for name, field in zip(names, self.schema, strict=True)
                },
                null_values=[""],
                true_values=["t"],
                false_values=["f"],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        self._csv = bytearray()
        arrays = [
            column.cast(field.type)
            for column, field in zip(table.columns, self.schema, strict=True)
        ]
        self._write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def _write_python(self, batch: list[Sequence[Any]]) -> None:
        arrays = [
            pa.array(
                [None if row[index] is None else convert(row[index]) for row in batch],
                type=field.type,
            )
            for index, (convert, field) in enumerate(
                zip(self._converters, self.schema, strict=True)
            )
        ]
        self._write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def _write_table(self, table: pa.Table) -> None:
        assert self._parquet is not None
        self._parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
