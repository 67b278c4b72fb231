"""How values of each catalog column type read as text, the same in every format.

Timestamps are shown in the export's time zone as `YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM` (always
six fraction digits and an offset with a colon), dates as `YYYY-MM-DD`, decimals in plain
positional notation (never `1E-10`), floats as Python's shortest round-trip text. A value of an
unexpected Python type (say, 'infinity' timestamps returned as text) is shown as its str().
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# JSON as text: compact, non-ASCII left readable, anything exotic (a Decimal) as its str().
JSON_TEXT_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def timestamp_text(value: Any, zone: tzinfo) -> str:
    """An instant in `zone`; a naive datetime (timestamp without time zone) is taken as UTC."""
    if not isinstance(value, datetime):
        return str(value)
    instant: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return instant.astimezone(zone).isoformat(timespec="microseconds")


def date_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def decimal_text(value: Any) -> str:
    """A number in positional notation, exact: Decimal('1E-10') -> '0.0000000001'."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def float_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def rounded_text(value: Any, places: int) -> str:
    """A decimal or float rounded to `places`, ties away from zero, written with exactly that
    many digits (as PostgreSQL's round(numeric, places)); NaN and infinities as they are."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return decimal_text(value)
    rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    # PostgreSQL has no negative zero: -0.001 rounds to 0.00.
    return format(rounded.copy_abs() if rounded.is_zero() else rounded, "f")


def boolean_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def json_text(value: Any) -> str:
    """A json/jsonb column's value (already parsed by the driver) as compact JSON text."""
    return JSON_TEXT_ENCODER.encode(value)
