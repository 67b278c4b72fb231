"""Rows as JSON objects: the one value encoding shared by the json and ndjson formats.

Objects are keyed by column name. Numbers stay numbers: integers as they are, decimals as their
exact text (never through float), floats as their shortest text; NaN and infinities, which JSON
cannot hold, become null. Timestamps and dates are strings (see value_text), json columns are
embedded as JSON, and text is UTF-8, not \\u-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import tzinfo
from decimal import Decimal
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

# COPY in CSV mode with a quote and a delimiter that never occur in JSON text (control
# characters are always escaped there) sends each line exactly as the SQL built it.
JSON_LINE_COPY_OPTIONS = "FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01'"

ValueEncoder = Callable[[Any], str]
RowEncoder = Callable[[Sequence[Any]], str]

_encode_json = value_text.JSON_TEXT_ENCODER.encode


def _string(value: Any) -> str:
    return _encode_json(value if isinstance(value, str) else str(value))


def _integer(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _decimal(value)


def _decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else "null"
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _string(value)


def _float(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return _decimal(value)
    return _string(value)


def _boolean(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _string(value)


def value_encoder(column_type: ColumnType, zone: tzinfo) -> ValueEncoder:
    """The function turning one non-NULL value of `column_type` into JSON text."""
    if column_type is ColumnType.TIMESTAMP:

        def timestamp(value: Any) -> str:
            return _encode_json(value_text.timestamp_text(value, zone))

        return timestamp
    if column_type is ColumnType.DATE:
        return lambda value: _encode_json(value_text.date_text(value))
    encoders: dict[ColumnType, ValueEncoder] = {
        ColumnType.STRING: _string,
        ColumnType.INTEGER: _integer,
        ColumnType.DECIMAL: _decimal,
        ColumnType.FLOAT: _float,
        ColumnType.BOOLEAN: _boolean,
        ColumnType.JSON: value_text.json_text,
    }
    return encoders[column_type]


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else value_text.json_text(value)


def row_encoder(columns: Sequence[OutputColumn], zone: tzinfo) -> RowEncoder:
    """The function turning one row (values in column order) into one compact JSON object."""
    keys = [_encode_json(column.name) + ":" for column in columns]
    encoders = [
        _json_text if column.json_text else value_encoder(column.type, zone) for column in columns
    ]
    fields = list(zip(keys, encoders, strict=True))

    def encode(row: Sequence[Any]) -> str:
        members = [
            key + ("null" if value is None else encode_value(value))
            for (key, encode_value), value in zip(fields, row, strict=True)
        ]
        return "{" + ",".join(members) + "}"

    return encode


class JsonObjectsWriter(FormatWriter):
    """Base of the formats that write each row as one JSON object (json, ndjson)."""

    def __init__(
        self,
        columns: Sequence[OutputColumn],
        options: FormatOptions,
        sink: BinarySink,
        position: PartPosition = WHOLE_FILE,
    ) -> None:
        super().__init__(columns, options, sink, position)
        self._encode = row_encoder(self.columns, self.options.timezone)

    copy_framing: ClassVar[LineFraming] = LineFraming.AS_IS
    nests_children: ClassVar[bool] = True

    def copy_plan(
        self, sources: Sequence[SourceType], references: Sequence[str]
    ) -> CopyPlan | None:
        values = [
            reference
            if column.json_text
            else sql_rendering.json_value(column.type, source, reference)
            for column, source, reference in zip(self.columns, sources, references, strict=True)
        ]
        members = [
            (column.name, value)
            for column, value in zip(self.columns, values, strict=True)
            if value is not None
        ]
        if len(members) != len(self.columns):
            return None
        return CopyPlan(
            select_list=[sql_rendering.json_object(members)],
            copy_options=JSON_LINE_COPY_OPTIONS,
            framing=self.copy_framing,
            first_separator=self._first_separator().encode(),
        )

    def _first_separator(self) -> str:
        """What precedes this part's first row as a JSON array element."""
        if self.position.first:
            return "\n"
        return ",\n" if self.position.separated else ""
