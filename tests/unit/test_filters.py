"""Request filters and time ranges: typed by the catalog, refused by name when wrong."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from dataexport.catalog.model import Dataset, FilterOperator
from dataexport.errors import InvalidDateRange, InvalidRequest
from dataexport.filters import (
    MAX_LIST_VALUES,
    FilterClause,
    TimeWindow,
    parse_filters,
    parse_time_window,
)

EVERY_OPERATOR = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null"]


def make_dataset(**changes: Any) -> Dataset:
    declaration: dict[str, Any] = {
        "name": "things",
        "title": "Things",
        "source": "app.things",
        "tenant_column": "org_id",
        "time_column": "at",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "at", "type": "timestamp", "label": "At"},
            {"name": "name", "type": "string", "label": "Name"},
            {"name": "amount", "type": "decimal", "label": "Amount"},
            {"name": "ratio", "type": "float", "label": "Ratio"},
            {"name": "ok", "type": "boolean", "label": "OK"},
            {"name": "day", "type": "date", "label": "Day"},
            {"name": "doc", "type": "json", "label": "Doc"},
            {"name": "note", "type": "string", "label": "Note"},
        ],
        "filters": [
            {"column": "id", "operators": EVERY_OPERATOR},
            {"column": "at", "operators": EVERY_OPERATOR},
            {"column": "name", "operators": [*EVERY_OPERATOR, "prefix"]},
            {"column": "amount", "operators": EVERY_OPERATOR},
            {"column": "ratio", "operators": ["gt", "lt"]},
            {"column": "ok", "operators": ["eq", "is_null"]},
            {"column": "day", "operators": ["eq", "between"]},
            {"column": "doc", "operators": ["is_null"]},
        ],
    }
    declaration.update(changes)
    return Dataset.model_validate(declaration)


DATASET = make_dataset()


def one(field: str, op: str, value: Any) -> FilterClause:
    [clause] = parse_filters([{"field": field, "op": op, "value": value}], DATASET)
    return clause


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("id", "eq", 7, 7),
        ("id", "eq", "7", 7),
        ("id", "eq", 7.0, 7),
        ("id", "eq", 2**63 - 1, 2**63 - 1),
        ("amount", "eq", "0.0000000001", Decimal("0.0000000001")),
        ("amount", "eq", 0.1, Decimal("0.1")),  # the float's shortest text, not binary noise
        ("amount", "eq", 12, Decimal(12)),
        (
            "amount",
            "eq",
            "12345678901234567890.123456789",
            Decimal("12345678901234567890.123456789"),
        ),
        ("ratio", "gt", 2, 2.0),
        ("ratio", "lt", "1.5", 1.5),
        ("ok", "eq", False, False),
        ("day", "eq", "2026-03-29", date(2026, 3, 29)),
        ("at", "eq", "2026-03-29T03:00:00+02:00", datetime(2026, 3, 29, 1, tzinfo=UTC)),
        ("at", "eq", "2026-03-29T01:00:00Z", datetime(2026, 3, 29, 1, tzinfo=UTC)),
        ("name", "eq", "Zoë", "Zoë"),
        ("name", "prefix", "50%_", "50%_"),
    ],
)
def test_values_are_coerced_to_the_column_type(
    field: str, op: str, value: Any, expected: Any
) -> None:
    clause = one(field, op, value)
    assert clause == FilterClause(field, FilterOperator(op), expected)
    assert type(clause.value) is type(expected)


def test_timestamps_become_utc() -> None:
    value = one("at", "gte", "2026-07-01T12:00:00-07:00").value
    assert value.utcoffset() == timedelta(0) and value.hour == 19


def test_list_and_pair_operators_shape_their_values() -> None:
    assert one("id", "in", [1, "2"]).value == [1, 2]
    assert one("name", "not_in", ["a", "b"]).value == ["a", "b"]
    assert one("amount", "between", ["1.5", 3]).value == (Decimal("1.5"), Decimal(3))
    assert one("day", "between", ["2026-01-01", "2026-01-31"]).value == (
        date(2026, 1, 1),
        date(2026, 1, 31),
    )
    assert one("doc", "is_null", True).value is True
    assert one("id", "is_null", False).value is False
    # text order is the database's (collation): a reversed text range is not judged here
    assert one("name", "between", ["b", "a"]).value == ("b", "a")


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"field": "ghost", "op": "eq", "value": 1}, "filters[0].field", "Unknown field 'ghost'"),
        ({"field": "note", "op": "eq", "value": "x"}, "filters[0].field", "cannot be filtered"),
        ({"field": "ratio", "op": "eq", "value": 1}, "filters[0].op", "allowed: gt, lt"),
        ({"field": "name", "op": "like", "value": "x"}, "filters[0].op", "'like' is not allowed"),
        ({"field": "id", "op": "eq", "value": "seven"}, "filters[0].value", "integer"),
        ({"field": "id", "op": "eq", "value": True}, "filters[0].value", "not a boolean"),
        ({"field": "id", "op": "eq", "value": 1.5}, "filters[0].value", "integer"),
        ({"field": "id", "op": "eq", "value": 2**63}, "filters[0].value", "out of range"),
        ({"field": "id", "op": "eq", "value": None}, "filters[0].value", "is_null"),
        ({"field": "id", "op": "eq", "value": [1]}, "filters[0].value", "single value"),
        ({"field": "amount", "op": "eq", "value": "NaN"}, "filters[0].value", "finite"),
        ({"field": "amount", "op": "eq", "value": "1,5"}, "filters[0].value", "number"),
        ({"field": "ratio", "op": "gt", "value": "inf"}, "filters[0].value", "finite"),
        ({"field": "ok", "op": "eq", "value": "true"}, "filters[0].value", "true or false"),
        ({"field": "day", "op": "eq", "value": "29.03.2026"}, "filters[0].value", "YYYY-MM-DD"),
        (
            {"field": "at", "op": "eq", "value": "2026-03-29T01:00:00"},
            "filters[0].value",
            "UTC offset",
        ),
        ({"field": "at", "op": "eq", "value": "yesterday"}, "filters[0].value", "ISO 8601"),
        ({"field": "name", "op": "eq", "value": 5}, "filters[0].value", "must be a string"),
        ({"field": "name", "op": "eq", "value": "a\x00b"}, "filters[0].value", "NUL"),
        ({"field": "name", "op": "eq", "value": "x" * 5000}, "filters[0].value", "longer"),
        ({"field": "id", "op": "in", "value": []}, "filters[0].value", "non-empty list"),
        ({"field": "id", "op": "in", "value": 3}, "filters[0].value", "non-empty list"),
        (
            {"field": "id", "op": "in", "value": list(range(MAX_LIST_VALUES + 1))},
            "filters[0].value",
            "more than 1000",
        ),
        ({"field": "id", "op": "in", "value": [1, "x"]}, "filters[0].value[1]", "integer"),
        ({"field": "id", "op": "between", "value": [1]}, "filters[0].value", "two values"),
        ({"field": "id", "op": "between", "value": [5, 1]}, "filters[0].value", "greater"),
        ({"field": "id", "op": "between", "value": [1, None]}, "filters[0].value[1]", "null"),
        ({"field": "id", "op": "is_null", "value": "yes"}, "filters[0].value", "true (is null)"),
        ({"field": "id", "op": "eq"}, "filters[0].value", "must not be null"),
        ({"field": "id", "op": "eq", "value": 1, "x": 1}, "filters[0]", "unexpected keys: x"),
        ("id = 1", "filters[0]", "must be an object"),
    ],
)
def test_a_bad_filter_is_refused_naming_the_part(raw: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_filters([raw], DATASET)
    assert refused.value.field == field
    assert refused.value.detail["field"] == field
    assert message in refused.value.message
    assert refused.value.error_code == "VALIDATION_ERROR"


def test_the_index_in_the_message_is_the_filter_position() -> None:
    raw = [{"field": "id", "op": "eq", "value": 1}, {"field": "id", "op": "eq", "value": "x"}]
    with pytest.raises(InvalidRequest) as refused:
        parse_filters(raw, DATASET)
    assert refused.value.field == "filters[1].value"


def test_no_filters_is_an_empty_list() -> None:
    assert parse_filters(None, DATASET) == []
    assert parse_filters([], DATASET) == []
    with pytest.raises(InvalidRequest):
        parse_filters("id=1", DATASET)


# ------------------------------------------------------------------------------ time window
def test_a_time_range_becomes_a_utc_window() -> None:
    window = parse_time_window(
        {"start": "2026-03-01T00:00:00+01:00", "end": "2026-04-01T00:00:00Z"}, DATASET
    )
    assert window == TimeWindow(
        datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert window.start is not None and window.start.tzinfo is not None


def test_either_end_may_be_open() -> None:
    assert parse_time_window(None, DATASET) == TimeWindow()
    assert parse_time_window({"start": None, "end": None}, DATASET) == TimeWindow()
    only_start = parse_time_window({"start": "2026-03-01T00:00:00Z"}, DATASET)
    assert only_start.end is None and only_start.is_bounded


@pytest.mark.parametrize(
    "raw",
    [
        {"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        {"start": "2026-03-01T01:00:00+01:00", "end": "2026-03-01T00:00:00Z"},
    ],
)
def test_start_must_be_before_end(raw: dict[str, str]) -> None:
    with pytest.raises(InvalidDateRange) as refused:
        parse_time_window(raw, DATASET)
    assert refused.value.field == "time_range"
    assert refused.value.error_code == "INVALID_DATE_RANGE"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"start": "2026-03-01T00:00:00"}, "time_range.start"),
        ({"end": "2026-03-01"}, "time_range.end"),
        ({"start": 1700000000}, "time_range.start"),
        ({"start": "2026-03-01T00:00:00Z", "preset": "7d"}, "time_range"),
    ],
)
def test_bad_time_range_values_are_named(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_time_window(raw, DATASET)
    assert refused.value.field == field


def test_a_dataset_without_time_column_takes_no_time_range() -> None:
    timeless = make_dataset(
        time_column=None,
        filters=[],
        columns=[{"name": "id", "type": "integer", "label": "ID"}],
    )
    assert parse_time_window(None, timeless) == TimeWindow()
    with pytest.raises(InvalidRequest) as refused:
        parse_time_window({"start": "2026-03-01T00:00:00Z"}, timeless)
    assert refused.value.field == "time_range"
    assert not isinstance(refused.value, InvalidDateRange)


def test_a_dataset_may_cap_the_span() -> None:
    capped = make_dataset(max_span_days=31)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ok = {"start": start.isoformat(), "end": (start + timedelta(days=31)).isoformat()}
    too_long = {
        "start": start.isoformat(),
        "end": (start + timedelta(days=31, seconds=1)).isoformat(),
    }

    assert parse_time_window(ok, capped).end == start + timedelta(days=31)
    for raw in (too_long, {"start": start.isoformat()}, None):
        with pytest.raises(InvalidDateRange) as refused:
            parse_time_window(raw, capped)
        assert refused.value.field == "time_range"
        assert "31 days" in refused.value.message or "both" in refused.value.message


def test_an_aware_datetime_is_accepted_as_is() -> None:
    moment = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert one("at", "eq", moment).value == moment


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e131072", "too large"),
        ("-1e200000", "too large"),
        ("1e-16384", "decimal places"),
    ],
)
def test_decimals_postgresql_cannot_hold_are_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as refused:
        one("amount", "gte", value)
    assert refused.value.field == "filters[0].value"


def test_decimals_at_postgresqls_limits_are_kept() -> None:
    assert one("amount", "gte", "1e131071").value == Decimal("1e131071")
    assert one("amount", "gte", "1e-16383").value == Decimal("1e-16383")


@pytest.mark.parametrize(
    ("key", "bound"),
    [("start", "0001-01-01T00:00:00+05:00"), ("end", "9999-12-31T23:59:59-05:00")],
)
def test_time_range_instants_outside_years_1_to_9999_are_refused(key: str, bound: str) -> None:
    raw = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", key: bound}
    with pytest.raises(InvalidRequest, match="years 1 to 9999") as refused:
        parse_time_window(raw, make_dataset())
    assert refused.value.field == f"time_range.{key}"


def test_timestamp_filter_values_outside_years_1_to_9999_are_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        one("at", "gte", "0001-01-01T00:00:00+00:01")
    assert refused.value.field == "filters[0].value"
