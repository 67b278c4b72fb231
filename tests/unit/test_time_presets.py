"""Time presets resolved against fixed clocks in the caller's zone: local midnights, month and
year ends, and days of 23 or 25 hours across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dataexport.errors import InvalidDateRange, InvalidRequest
from dataexport.filters import TimeWindow, parse_time_window
from dataexport.time_presets import TimePreset, preset_bounds, start_of_day
from tests.unit.test_filters import make_dataset

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")
SANTIAGO = ZoneInfo("America/Santiago")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def bounds(preset: str, zone: ZoneInfo, now: datetime) -> tuple[datetime | None, ...]:
    return preset_bounds(TimePreset(preset), zone, now)


# New York, the day after clocks sprang forward (2026-03-08 02:00 EST -> 03:00 EDT).
NY_NOW = utc(2026, 3, 9, 16)  # 12:00 EDT


@pytest.mark.parametrize(
    ("preset", "start", "end"),
    [
        ("24h", utc(2026, 3, 8, 16), NY_NOW),
        ("7d", utc(2026, 3, 2, 5), NY_NOW),  # 2026-03-02 00:00 EST
        ("30d", utc(2026, 2, 7, 5), NY_NOW),
        ("90d", utc(2025, 12, 9, 5), NY_NOW),
        ("this_month", utc(2026, 3, 1, 5), NY_NOW),
        ("last_month", utc(2026, 2, 1, 5), utc(2026, 3, 1, 5)),
        ("this_year", utc(2026, 1, 1, 5), NY_NOW),
        ("all_time", None, None),
        ("custom", None, None),
    ],
)
def test_presets_in_new_york_after_the_spring_change(
    preset: str, start: datetime | None, end: datetime | None
) -> None:
    assert bounds(preset, NEW_YORK, NY_NOW) == (start, end)


def test_the_last_day_of_a_month_in_berlin() -> None:
    # 2026-03-31 23:30 CEST: March began in winter time, so at 23:00 UTC the day before
    now = utc(2026, 3, 31, 21, 30)
    assert bounds("this_month", BERLIN, now) == (utc(2026, 2, 28, 23), now)
    assert bounds("last_month", BERLIN, now) == (utc(2026, 1, 31, 23), utc(2026, 2, 28, 23))
    assert bounds("7d", BERLIN, now) == (utc(2026, 3, 23, 23), now)


def test_last_month_across_the_spring_change_is_an_hour_short() -> None:
    # 2026-04-01 00:30 CEST, still 2026-03-31 in UTC
    now = utc(2026, 3, 31, 22, 30)
    start, end = bounds("last_month", BERLIN, now)
    assert (start, end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert end - start == timedelta(days=31) - timedelta(hours=1)  # type: ignore[operator]
    assert bounds("this_month", BERLIN, now) == (utc(2026, 3, 31, 22), now)


def test_seven_days_across_the_autumn_change_hold_a_25_hour_day() -> None:
    # 2026-10-28 12:00 CET; on 2026-10-25 clocks went back from 03:00 CEST to 02:00 CET
    now = utc(2026, 10, 28, 11)
    start, _ = bounds("7d", BERLIN, now)
    assert start == utc(2026, 10, 20, 22)  # 2026-10-21 00:00 CEST
    assert start is not None
    assert now - start == timedelta(days=7, hours=13)


def test_a_new_year_in_kolkata_while_utc_is_still_in_the_old_one() -> None:
    now = utc(2025, 12, 31, 21, 30)  # 2026-01-01 03:00 IST
    assert bounds("this_year", KOLKATA, now) == (utc(2025, 12, 31, 18, 30), now)
    assert bounds("this_month", KOLKATA, now) == (utc(2025, 12, 31, 18, 30), now)
    assert bounds("last_month", KOLKATA, now) == (
        utc(2025, 11, 30, 18, 30),
        utc(2025, 12, 31, 18, 30),
    )
    # The same instant in New York is still 2025: its year began twelve months earlier
    assert bounds("this_year", NEW_YORK, now) == (utc(2025, 1, 1, 5), now)


def test_last_month_in_january_is_the_december_before() -> None:
    now = utc(2027, 1, 15, 12)
    assert bounds("last_month", NEW_YORK, now) == (utc(2026, 12, 1, 5), utc(2027, 1, 1, 5))


def test_a_day_whose_midnight_does_not_exist_starts_at_its_first_instant() -> None:
    # Chile moves its clocks from 00:00 to 01:00 on the first Sunday of September.
    day = next(
        datetime(2026, 9, 1) + timedelta(days=offset)
        for offset in range(7)
        if (datetime(2026, 9, 1) + timedelta(days=offset)).weekday() == 6
    ).date()
    start = start_of_day(day, SANTIAGO)
    assert start.astimezone(SANTIAGO).date() == day
    assert (start - timedelta(microseconds=1)).astimezone(SANTIAGO).date() < day
    assert start.astimezone(SANTIAGO).hour == 1


def test_a_preset_resolves_in_the_given_zone_at_the_given_time() -> None:
    window = parse_time_window({"preset": "last_month"}, make_dataset(), BERLIN, NY_NOW)
    assert window == TimeWindow(utc(2026, 1, 31, 23), utc(2026, 2, 28, 23))


def test_a_preset_takes_no_start_or_end() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_time_window(
            {"preset": "7d", "start": "2026-01-01T00:00:00Z"}, make_dataset(), BERLIN, NY_NOW
        )
    assert refused.value.field == "time_range"
    assert "custom" in refused.value.message


def test_custom_needs_both_ends_in_order() -> None:
    dataset = make_dataset()
    with pytest.raises(InvalidDateRange):
        parse_time_window({"preset": "custom", "start": "2026-01-01T00:00:00Z"}, dataset)
    with pytest.raises(InvalidDateRange):
        parse_time_window(
            {"preset": "custom", "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            dataset,
        )
    window = parse_time_window(
        {"preset": "custom", "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
        dataset,
    )
    assert window == TimeWindow(utc(2026, 1, 1), utc(2026, 2, 1))


def test_an_unknown_preset_is_named() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_time_window({"preset": "yesterday"}, make_dataset())
    assert refused.value.field == "time_range.preset"
    assert "last_month" in refused.value.message


def test_a_capped_dataset_refuses_all_time_and_too_long_presets() -> None:
    capped = make_dataset(max_span_days=31)
    with pytest.raises(InvalidDateRange) as refused:
        parse_time_window({"preset": "all_time"}, capped, NEW_YORK, NY_NOW)
    assert refused.value.detail["max_span_days"] == 31
    with pytest.raises(InvalidDateRange):
        parse_time_window({"preset": "90d"}, capped, NEW_YORK, NY_NOW)
    assert parse_time_window({"preset": "7d"}, capped, NEW_YORK, NY_NOW).end == NY_NOW
