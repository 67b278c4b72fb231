"""PostgreSQL rendering each value exactly as the formats' Python writers do: their SQL twin.

COPY is the fastest way out of PostgreSQL, so for the formats that are lines of text (CSV, JSON
lines) the export query renders every cell itself and COPY streams the lines. Each fragment here
produces, byte for byte, what `value_text` and `json_values` produce for the same value; the
writers stay the reference and the tests compare the two on awkward data.

A rendering exists only for the pairs of catalog type and PostgreSQL type known to match
(`None` otherwise: that export then streams through the Python writer). Fragments take a column
reference that the query builder quoted from the catalog; they hold no values.

Time stamps are rendered in the session's TimeZone, which the reader sets to the export's zone.
Before 1990 some zones had offsets with seconds (local mean time, Monrovia until 1972), which
`TZH:TZM` would cut off, so older instants take a slower exact branch.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from dataexport.catalog.model import IDENTIFIER_PATTERN, ColumnType


class SourceType(StrEnum):
    """What PostgreSQL type a column has, in the classes that matter for rendering."""

    TEXT = "text"
    UUID = "uuid"
    INTEGER = "integer"
    NUMERIC = "numeric"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TIMESTAMPTZ = "timestamptz"
    TIMESTAMP = "timestamp"
    DATE = "date"
    OTHER = "other"


# pg_type OIDs of the built-in types (stable across PostgreSQL versions).
_TYPE_OIDS: dict[int, SourceType] = {
    25: SourceType.TEXT,
    1043: SourceType.TEXT,  # varchar
    1042: SourceType.TEXT,  # bpchar
    19: SourceType.TEXT,  # name
    2950: SourceType.UUID,
    20: SourceType.INTEGER,
    21: SourceType.INTEGER,
    23: SourceType.INTEGER,
    1700: SourceType.NUMERIC,
    700: SourceType.FLOAT,
    701: SourceType.FLOAT,
    16: SourceType.BOOLEAN,
    1184: SourceType.TIMESTAMPTZ,
    1114: SourceType.TIMESTAMP,
    1082: SourceType.DATE,
}


def source_type(type_oid: int) -> SourceType:
    return _TYPE_OIDS.get(type_oid, SourceType.OTHER)


# Characters that make a spreadsheet run a cell as a formula: TAB, CR, +, -, =, @ (csv_writer).
_FORMULA_CODES = "9, 13, 43, 45, 61, 64"
_EXACT_TIME_FROM = "TIMESTAMPTZ '1990-01-01 00:00:00+00'"
_LOCAL_TIME_FORMAT = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"
_ZONED_TIME_FORMAT = "'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM'"

Fragment = Callable[[str], str]


def _offset_text(instant: str) -> str:
    """`+HH:MM`, or `+HH:MM:SS` when the offset has seconds, as Python's isoformat writes."""
    seconds = f"CAST(EXTRACT(TIMEZONE FROM {instant}) AS integer)"
    magnitude = f"abs({seconds})"
    return (
        f"CASE WHEN {seconds} < 0 THEN '-' ELSE '+' END"
        f" || lpad(CAST({magnitude} / 3600 AS text), 2, '0')"
        f" || ':' || lpad(CAST({magnitude} % 3600 / 60 AS text), 2, '0')"
        f" || CASE WHEN {magnitude} % 60 <> 0"
        f" THEN ':' || lpad(CAST({magnitude} % 60 AS text), 2, '0') ELSE '' END"
    )


def _instant_text(instant: str) -> str:
    """A timestamptz as value_text.timestamp_text writes it; infinities as PostgreSQL's text."""
    return (
        f"CASE WHEN NOT isfinite({instant}) THEN CAST({instant} AS text)"
        f" WHEN {instant} >= {_EXACT_TIME_FROM} THEN to_char({instant}, {_ZONED_TIME_FORMAT})"
        f" ELSE to_char({instant}, {_LOCAL_TIME_FORMAT}) || {_offset_text(instant)} END"
    )


def _timestamp_text(column: str, source: SourceType) -> str | None:
    if source is SourceType.TIMESTAMPTZ:
        return _instant_text(column)
    if source is SourceType.TIMESTAMP:
        # A timestamp without time zone is taken as UTC, as the Python writers do.
        return _instant_text(f"({column} AT TIME ZONE 'UTC')")
    return None


def _date_text(column: str, source: SourceType) -> str | None:
    if source is not SourceType.DATE:
        return None
    return (
        f"CASE WHEN isfinite({column}) THEN to_char({column}, 'YYYY-MM-DD')"
        f" ELSE CAST({column} AS text) END"
    )


def _boolean_text(column: str, source: SourceType) -> str | None:
    if source is not SourceType.BOOLEAN:
        return None
    return f"CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' END"


def csv_cell(
    column_type: ColumnType, source: SourceType, column: str, decimal_places: int | None = None
) -> str | None:
    """The SQL for one CSV cell as csv_writer renders it (NULL for an empty cell), or None."""
    if column_type is ColumnType.STRING:
        if source is SourceType.TEXT:
            # COPY quotes an empty string; the csv module writes an empty cell, as for NULL.
            return (
                f"CASE WHEN ascii({column}) IN ({_FORMULA_CODES}) THEN '''' || {column}"
                f" ELSE NULLIF({column}, '') END"
            )
        return column if source is SourceType.UUID else None
    if column_type in (ColumnType.INTEGER, ColumnType.DECIMAL):
        if source not in (SourceType.INTEGER, SourceType.NUMERIC):
            return None
        if column_type is ColumnType.DECIMAL and decimal_places is not None:
            # round(numeric, n) rounds ties away from zero and keeps n digits, as rounded_text.
            return f"round(CAST({column} AS numeric), {int(decimal_places)})"
        # COPY writes integers and numerics (NaN, Infinity included) as Python's str/format do.
        return column
    if column_type is ColumnType.BOOLEAN:
        return _boolean_text(column, source)
    if column_type is ColumnType.TIMESTAMP:
        return _timestamp_text(column, source)
    if column_type is ColumnType.DATE:
        return _date_text(column, source)
    # Floats (Python's repr and PostgreSQL's shortest text differ) and JSON: the writer renders.
    return None


def _json_number(column: str, source: SourceType) -> str | None:
    if source is SourceType.INTEGER:
        return f"CAST({column} AS text)"
    if source is SourceType.NUMERIC:
        # JSON has no NaN or infinities: json_values writes them as null.
        return (
            f"CASE WHEN {column} IN ('NaN', 'Infinity', '-Infinity') THEN 'null'"
            f" ELSE CAST({column} AS text) END"
        )
    return None


def _quoted(text: str | None) -> str | None:
    # The texts quoted here (times, dates) never hold a character JSON must escape.
    return None if text is None else f"'\"' || {text} || '\"'"


def json_value(column_type: ColumnType, source: SourceType, column: str) -> str | None:
    """The SQL for one value as json_values encodes it (NULL for JSON null), or None."""
    if column_type is ColumnType.STRING:
        if source in (SourceType.TEXT, SourceType.UUID):
            # to_json escapes exactly as Python's json module with ensure_ascii=False.
            return f"CAST(to_json(CAST({column} AS text)) AS text)"
        return None
    if column_type in (ColumnType.INTEGER, ColumnType.DECIMAL):
        return _json_number(column, source)
    if column_type is ColumnType.BOOLEAN:
        return _boolean_text(column, source)
    if column_type is ColumnType.TIMESTAMP:
        return _quoted(_timestamp_text(column, source))
    if column_type is ColumnType.DATE:
        return _quoted(_date_text(column, source))
    return None


def json_object(members: list[tuple[str, str]]) -> str:
    """One compact JSON object from (name, value SQL) pairs; names are catalog identifiers."""
    parts: list[str] = []
    for position, (name, value) in enumerate(members):
        if not IDENTIFIER_PATTERN.fullmatch(name):
            raise ValueError(f"{name!r} is not a catalog identifier")
        opening = "{" if position == 0 else ","
        parts += [f"'{opening}\"{name}\":'", f"COALESCE({value}, 'null')"]
    parts.append("'}'")
    return "concat(" + ", ".join(parts) + ")"
