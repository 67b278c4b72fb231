"""Request filters and time windows, checked and typed against the dataset catalog.

Raw filters arrive as JSON (`{"field", "op", "value"}`); here they become FilterClause objects
whose values have the Python type the column needs (Decimal for decimals, aware datetimes for
timestamps...), so the query builder only ever binds well-typed parameters. Anything wrong is an
InvalidRequest naming the offending part of the request (`filters[2].value[0]`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator

from dataexport.catalog.model import ColumnType, Dataset, FilterOperator
from dataexport.errors import InvalidDateRange, InvalidRequest
from dataexport.time_presets import TimePreset, preset_bounds

MAX_LIST_VALUES = 1000
MAX_STRING_VALUE_CHARS = 4096
# PostgreSQL bigint: a larger literal would fail in the database instead of here.
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**63 - 1
# PostgreSQL numeric: digits before and after the decimal point (larger fails in the database).
MAX_NUMERIC_INTEGER_DIGITS = 131_072
MAX_NUMERIC_FRACTION_DIGITS = 16_383
_INTEGER_TEXT = re.compile(r"^[+-]?\d{1,20}$")

LIST_OPERATORS = frozenset({FilterOperator.IN, FilterOperator.NOT_IN})
_UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class FilterClause:
    """One typed condition: `column op value`, with `column` a catalog column name.

    `value` is a single typed value, a list of them (in, not_in), a (low, high) pair (between),
    or a bool (is_null: true means "is null", false "is not null").
    """

    column: str
    op: FilterOperator
    value: Any


@dataclass(frozen=True)
class TimeWindow:
    """A half-open time range [start, end) on the dataset's time column; None = unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def is_bounded(self) -> bool:
        return self.start is not None or self.end is not None


# ----------------------------------------------------------------------- values by column type
def parse_aware_datetime(raw: Any, field: str) -> datetime:
    """An ISO 8601 text with a UTC offset (or `Z`) as an aware datetime in UTC."""
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str) and len(raw) <= 64:
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidRequest(
                field, f"{field} must be an ISO 8601 timestamp, e.g. 2026-03-01T00:00:00Z."
            ) from None
    else:
        raise InvalidRequest(field, f"{field} must be an ISO 8601 timestamp text.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(
            field, f"{field} must include a UTC offset or Z, e.g. 2026-03-01T00:00:00+01:00."
        )
    try:
        return in_utc_range(value)
    except ValueError as exc:
        raise InvalidRequest(field, f"{field}: {exc}") from None


def in_utc_range(value: datetime) -> datetime:
    """An aware `value` in UTC (a naive one unchanged); ValueError when that instant falls
    outside the years 1 to 9999 (`0001-01-01T00:00:00+05:00` is in year 0 in UTC)."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant falls outside the years 1 to 9999 in UTC") from None


# A query parameter's timestamp, refused (400 naming the parameter) outside years 1 to 9999.
UtcTimestamp = Annotated[datetime, AfterValidator(in_utc_range)]


def _as_string(raw: Any, field: str) -> str:
    if not isinstance(raw, str):
        raise InvalidRequest(field, f"{field} must be a string.")
    if len(raw) > MAX_STRING_VALUE_CHARS:
        raise InvalidRequest(field, f"{field} is longer than {MAX_STRING_VALUE_CHARS} characters.")
    if "\x00" in raw:
        raise InvalidRequest(field, f"{field} must not contain a NUL character.")
    return raw


def _as_integer(raw: Any, field: str) -> int:
    value: int
    if isinstance(raw, bool):
        raise InvalidRequest(field, f"{field} must be an integer, not a boolean.")
    integral_float = isinstance(raw, float) and raw.is_integer()
    integer_text = isinstance(raw, str) and _INTEGER_TEXT.fullmatch(raw.strip()) is not None
    if isinstance(raw, int) or integral_float or integer_text:
        value = int(raw)
    else:
        raise InvalidRequest(field, f"{field} must be an integer.")
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        raise InvalidRequest(field, f"{field} is out of range for a 64-bit integer.")
    return value


def _as_decimal(raw: Any, field: str) -> Decimal:
    if isinstance(raw, bool):
        raise InvalidRequest(field, f"{field} must be a number, not a boolean.")
    if isinstance(raw, str) and len(raw) > 100:
        raise InvalidRequest(field, f"{field} is too long for a number.")
    try:
        if isinstance(raw, int | str):
            value = Decimal(raw.strip() if isinstance(raw, str) else raw)
        elif isinstance(raw, float):
            value = Decimal(repr(raw))  # the shortest text that round-trips, not binary noise
        elif isinstance(raw, Decimal):
            value = raw
        else:
            raise InvalidRequest(field, f"{field} must be a number.")
    except InvalidOperation:
        raise InvalidRequest(field, f"{field} must be a number.") from None
    if not value.is_finite():
        raise InvalidRequest(field, f"{field} must be a finite number.")
    if value.adjusted() >= MAX_NUMERIC_INTEGER_DIGITS:
        raise InvalidRequest(field, f"{field} is too large for a decimal column.")
    if -int(value.as_tuple().exponent) > MAX_NUMERIC_FRACTION_DIGITS:
        raise InvalidRequest(
            field, f"{field} has more than {MAX_NUMERIC_FRACTION_DIGITS} decimal places."
        )
    return value


def _as_float(raw: Any, field: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidRequest(field, f"{field} must be a number.")
    try:
        value = float(raw)
    except (ValueError, OverflowError):
        raise InvalidRequest(field, f"{field} must be a number.") from None
    if not math.isfinite(value):
        raise InvalidRequest(field, f"{field} must be a finite number.")
    return value


def _as_boolean(raw: Any, field: str) -> bool:
    if not isinstance(raw, bool):
        raise InvalidRequest(field, f"{field} must be true or false.")
    return raw


def _as_date(raw: Any, field: str) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str) and len(raw) == 10:
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise InvalidRequest(field, f"{field} must be a date as YYYY-MM-DD.")


def _not_comparable(raw: Any, field: str) -> Any:
    raise InvalidRequest(field, f"{field}: values of json columns cannot be compared.")


_COERCERS: dict[ColumnType, Callable[[Any, str], Any]] = {
    ColumnType.STRING: _as_string,
    ColumnType.INTEGER: _as_integer,
    ColumnType.DECIMAL: _as_decimal,
    ColumnType.FLOAT: _as_float,
    ColumnType.BOOLEAN: _as_boolean,
    ColumnType.TIMESTAMP: parse_aware_datetime,
    ColumnType.DATE: _as_date,
    ColumnType.JSON: _not_comparable,
}


def coerce_value(column_type: ColumnType, raw: Any, field: str) -> Any:
    """`raw` (from JSON) as the Python type a `column_type` column compares with."""
    if raw is None:
        raise InvalidRequest(field, f"{field} must not be null (use the is_null operator).")
    return _COERCERS[column_type](raw, field)


# ----------------------------------------------------------------------------------- filters
def _operator(
    raw: Any, field: str, allowed: Sequence[FilterOperator], column: str
) -> FilterOperator:
    names = ", ".join(op.value for op in allowed)
    try:
        op = FilterOperator(raw) if isinstance(raw, str) else None
    except ValueError:
        op = None
    if op is None or op not in allowed:
        raise InvalidRequest(
            field,
            f"Operator {raw!r} is not allowed on {column!r}; allowed: {names}.",
            {"allowed": [op.value for op in allowed]},
        )
    return op


def _value(op: FilterOperator, column_type: ColumnType, raw: Any, field: str) -> Any:
    if op is FilterOperator.IS_NULL:
        if not isinstance(raw, bool):
            raise InvalidRequest(field, f"{field} must be true (is null) or false (is not null).")
        return raw
    if op in LIST_OPERATORS:
        if not isinstance(raw, list) or not raw:
            raise InvalidRequest(field, f"{field} must be a non-empty list for {op.value!r}.")
        if len(raw) > MAX_LIST_VALUES:
            raise InvalidRequest(field, f"{field} has more than {MAX_LIST_VALUES} values.")
        return [coerce_value(column_type, item, f"{field}[{i}]") for i, item in enumerate(raw)]
    if op is FilterOperator.BETWEEN:
        if not isinstance(raw, list) or len(raw) != 2:
            raise InvalidRequest(field, f"{field} must be a list of two values [low, high].")
        low = coerce_value(column_type, raw[0], f"{field}[0]")
        high = coerce_value(column_type, raw[1], f"{field}[1]")
        # Text order depends on the database's collation: only PostgreSQL can judge it.
        if column_type is not ColumnType.STRING and low > high:
            raise InvalidRequest(field, f"{field}: the low value is greater than the high value.")
        return (low, high)
    if isinstance(raw, list | dict):
        raise InvalidRequest(field, f"{field} must be a single value for {op.value!r}.")
    return coerce_value(column_type, raw, field)


def parse_filter(raw: Any, index: int, dataset: Dataset) -> FilterClause:
    """One raw filter `{"field", "op", "value"}` as a typed clause (index is for messages)."""
    where = f"filters[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidRequest(where, f"{where} must be an object with field, op and value.")
    unexpected = sorted(str(key) for key in raw if key not in {"field", "op", "value"})
    if unexpected:
        raise InvalidRequest(where, f"{where} has unexpected keys: {', '.join(unexpected)}.")
    name = raw.get("field")
    if not isinstance(name, str) or not dataset.has_column(name):
        raise InvalidRequest(
            f"{where}.field", f"Unknown field {name!r} for dataset {dataset.name!r}."
        )
    spec = dataset.filter_for(name)
    if spec is None:
        filterable = ", ".join(spec.column for spec in dataset.filters) or "none"
        raise InvalidRequest(
            f"{where}.field", f"Field {name!r} cannot be filtered; filterable: {filterable}."
        )
    op = _operator(raw.get("op"), f"{where}.op", spec.operators, name)
    column_type = dataset.column(name).type
    return FilterClause(name, op, _value(op, column_type, raw.get("value"), f"{where}.value"))


def parse_filters(raw: Sequence[Any] | None, dataset: Dataset) -> list[FilterClause]:
    """Every raw filter of a request as typed clauses, in order; all must hold (AND)."""
    if raw is None:
        return []
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise InvalidRequest("filters", "filters must be a list.")
    return [parse_filter(item, index, dataset) for index, item in enumerate(raw)]


# ------------------------------------------------------------------------------- time window
_TIME_RANGE_KEYS = {"preset", "start", "end"}


def parse_time_window(
    raw: Mapping[str, Any] | None,
    dataset: Dataset,
    zone: ZoneInfo = _UTC_ZONE,
    now: datetime | None = None,
) -> TimeWindow:
    """A request's time range as a TimeWindow: `{"preset"}` (a TimePreset resolved in `zone` at
    `now`) or `{"start", "end"}` ISO 8601 texts (either may be absent; both with `custom`).

    A dataset with `max_span_days` needs both ends, no further apart than that. A range the
    caller gives must have `start < end`.
    """
    if raw is not None and set(raw) - _TIME_RANGE_KEYS:
        raise InvalidRequest("time_range", "time_range accepts only preset, start and end.")
    raw = {key: value for key, value in (raw or {}).items() if value is not None}
    preset = _preset(raw.get("preset"))
    if preset is not None and preset is not TimePreset.CUSTOM:
        if "start" in raw or "end" in raw:
            raise InvalidRequest(
                "time_range",
                f"time_range.preset {preset.value!r} takes no start or end; "
                "use the preset 'custom' for a range of your own.",
            )
        start, end = preset_bounds(preset, zone, now or datetime.now(UTC))
        window = TimeWindow(start=start, end=end)
    else:
        if preset is TimePreset.CUSTOM and ("start" not in raw or "end" not in raw):
            raise InvalidDateRange(
                "time_range", "time_range.preset 'custom' needs both start and end."
            )
        window = TimeWindow(
            start=_bound(raw, "start"),
            end=_bound(raw, "end"),
        )
        if window.start is not None and window.end is not None and window.start >= window.end:
            raise InvalidDateRange("time_range", "time_range.start must be before time_range.end.")
    if window.is_bounded and dataset.time_column is None:
        raise InvalidRequest(
            "time_range", f"Dataset {dataset.name!r} has no time column; remove time_range."
        )
    if dataset.time_column is not None and dataset.max_span_days is not None:
        _check_span(window, dataset, dataset.max_span_days)
    return window


def _preset(raw: Any) -> TimePreset | None:
    if raw is None:
        return None
    try:
        return TimePreset(raw)
    except ValueError:
        names = ", ".join(preset.value for preset in TimePreset)
        raise InvalidRequest(
            "time_range.preset", f"Unknown time range preset {raw!r}; use one of {names}."
        ) from None


def _bound(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    return None if value is None else parse_aware_datetime(value, f"time_range.{key}")


def _check_span(window: TimeWindow, dataset: Dataset, max_span_days: int) -> None:
    if window.start is None or window.end is None:
        raise InvalidDateRange(
            "time_range",
            f"Dataset {dataset.name!r} needs a time_range with both ends (start and end, or a "
            f"preset other than all_time) of at most {max_span_days} days.",
            {"max_span_days": max_span_days},
        )
    if window.end - window.start > timedelta(days=max_span_days):
        raise InvalidDateRange(
            "time_range",
            f"Dataset {dataset.name!r} allows at most {max_span_days} days per export.",
            {"max_span_days": max_span_days},
        )


# ----------------------------------------------------------------------- checks at use time
def checked_fields(dataset: Dataset, fields: Sequence[str]) -> list[str]:
    """`fields` if every one is a column of `dataset`; InvalidRequest naming the others."""
    if not fields:
        raise InvalidRequest("fields", "Select at least one field.")
    unknown = [name for name in fields if not dataset.has_column(name)]
    if unknown:
        raise InvalidRequest(
            "fields",
            f"Unknown field(s) for dataset {dataset.name!r}: "
            f"{', '.join(repr(name) for name in unknown)}.",
            {"unknown": unknown},
        )
    return list(fields)


def check_clause(dataset: Dataset, clause: FilterClause, index: int) -> None:
    """Refuse a filter on a column or with an operator the dataset does not allow."""
    spec = dataset.filter_for(clause.column)
    if spec is None or not dataset.has_column(clause.column):
        raise InvalidRequest(
            f"filters[{index}].field",
            f"Field {clause.column!r} cannot be filtered in dataset {dataset.name!r}.",
        )
    if clause.op not in spec.operators:
        raise InvalidRequest(
            f"filters[{index}].op",
            f"Operator {clause.op.value!r} is not allowed on {clause.column!r}.",
        )
