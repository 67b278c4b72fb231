"""EventBridge Scheduler expressions: what they parse to, the times they run at in their zone
(checked by hand against the calendar and the zone's DST changes), and what they refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dataexport.errors import InvalidRequest
from dataexport.schedule_expressions import (
    AtExpression,
    CronExpression,
    DaysOfMonth,
    DaysOfWeek,
    LastDayOfMonth,
    LastWeekdayInMonth,
    LastWeekdayOfMonth,
    NearestWeekday,
    NthWeekdayInMonth,
    RateExpression,
    RateUnit,
    next_runs,
    parse_schedule,
)

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def runs(
    expression: str,
    zone: ZoneInfo,
    after: datetime,
    count: int,
    start: datetime | None = None,
) -> list[datetime]:
    return next_runs(parse_schedule(expression), zone, after, count, start)


# (expression, zone, after, the next runs). Comments give the local times and why.
CRON_AND_AT_CASES = {
    "the daily retention rule, in UTC": (
        "cron(0 2 * * ? *)",
        UTC_ZONE,
        utc(2026, 5, 10, 12),
        [utc(2026, 5, 11, 2), utc(2026, 5, 12, 2), utc(2026, 5, 13, 2)],
    ),
    "a run at `after` itself is already past": (
        "cron(0 2 * * ? *)",
        UTC_ZONE,
        utc(2026, 5, 11, 2),
        [utc(2026, 5, 12, 2)],
    ),
    # Paris moves from CET (+1) to CEST (+2) on Sunday 2026-03-29: 09:00 stays 09:00 locally.
    "Paris weekdays across the end-of-March change": (
        "cron(0 9 ? * MON-FRI *)",
        PARIS,
        utc(2026, 3, 26, 12),  # Thursday 13:00 CET
        [
            utc(2026, 3, 27, 8),  # Friday 09:00 CET
            utc(2026, 3, 30, 7),  # Monday 09:00 CEST: the weekend is skipped
            utc(2026, 3, 31, 7),
            utc(2026, 4, 1, 7),
        ],
    ),
    "month ends of 2027, February of 28 days": (
        "cron(0 0 L * ? *)",
        UTC_ZONE,
        utc(2027, 1, 15),
        [utc(2027, 1, 31), utc(2027, 2, 28), utc(2027, 3, 31)],
    ),
    "month ends of the leap year 2028": (
        "cron(0 0 L * ? *)",
        UTC_ZONE,
        utc(2028, 1, 15),
        [utc(2028, 1, 31), utc(2028, 2, 29), utc(2028, 3, 31)],
    ),
    "the last day is Tokyo's, nine hours before UTC's midnight": (
        "cron(0 0 L * ? *)",
        TOKYO,
        utc(2028, 2, 1),
        [utc(2028, 2, 28, 15), utc(2028, 3, 30, 15)],  # 02-29 and 03-31, 00:00 JST
    ),
    # New York springs forward on 2026-03-08: 02:00 EST becomes 03:00 EDT, 02:30 never exists.
    "02:30 in New York is skipped the day it does not exist": (
        "cron(30 2 * * ? *)",
        NEW_YORK,
        utc(2026, 3, 6, 12),
        [
            utc(2026, 3, 7, 7, 30),  # 02:30 EST
            utc(2026, 3, 9, 6, 30),  # 02:30 EDT; nothing on the 8th, not even 03:30
            utc(2026, 3, 10, 6, 30),
        ],
    ),
    # New York falls back on 2026-11-01: 02:00 EDT becomes 01:00 EST, 01:00-01:59 happen twice.
    "02:30 in New York runs once on the fall-back day (it is not repeated)": (
        "cron(30 2 * * ? *)",
        NEW_YORK,
        utc(2026, 10, 30, 12),
        [utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)],
    ),
    "01:30 in New York, which happens twice, runs at its first occurrence only": (
        "cron(30 1 * * ? *)",
        NEW_YORK,
        utc(2026, 10, 31, 12),
        [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],  # 01:30 EDT, then 01:30 EST
    ),
    "every 15 minutes runs four times, not eight, in the hour that repeats": (
        "cron(0/15 * * * ? *)",
        NEW_YORK,
        utc(2026, 11, 1, 4, 50),  # 00:50 EDT
        [
            utc(2026, 11, 1, 5),  # 01:00 EDT
            utc(2026, 11, 1, 5, 15),
            utc(2026, 11, 1, 5, 30),
            utc(2026, 11, 1, 5, 45),  # 01:45 EDT; 01:00-01:45 EST are the same wall times
            utc(2026, 11, 1, 7),  # 02:00 EST
        ],
    ),
    "every 15 minutes goes from 01:45 straight to 03:00 when clocks spring forward": (
        "cron(0/15 * * * ? *)",
        NEW_YORK,
        utc(2026, 3, 8, 6, 40),  # 01:40 EST
        [utc(2026, 3, 8, 6, 45), utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 15)],
    ),
    "every 15 minutes from the top of the hour": (
        "cron(0/15 * * * ? *)",
        UTC_ZONE,
        utc(2026, 5, 10, 10, 7),
        [utc(2026, 5, 10, 10, 15), utc(2026, 5, 10, 10, 30), utc(2026, 5, 10, 10, 45)],
    ),
    "the third Friday (6 is Friday: 1 is Sunday)": (
        "cron(0 12 ? * 6#3 *)",
        UTC_ZONE,
        utc(2026, 1, 1),
        [utc(2026, 1, 16, 12), utc(2026, 2, 20, 12), utc(2026, 3, 20, 12)],
    ),
    "a fifth Tuesday only in months that have one": (
        "cron(0 12 ? * 3#5 *)",
        UTC_ZONE,
        utc(2026, 1, 1),
        [utc(2026, 3, 31, 12), utc(2026, 6, 30, 12)],
    ),
    "15W when the 15th is a Sunday is Monday the 16th": (
        "cron(0 8 15W * ? *)",
        UTC_ZONE,
        utc(2026, 2, 1),
        [utc(2026, 2, 16, 8), utc(2026, 3, 16, 8)],  # 2026-02-15 and 03-15 are Sundays
    ),
    "15W when the 15th is a Saturday is Friday the 14th": (
        "cron(0 8 15W * ? *)",
        UTC_ZONE,
        utc(2026, 8, 1),
        [utc(2026, 8, 14, 8), utc(2026, 9, 15, 8)],  # 2026-09-15 is a Tuesday
    ),
    "31W when the 31st is a Sunday stays in its month, and June has no 31st": (
        "cron(0 8 31W * ? *)",
        UTC_ZONE,
        utc(2026, 5, 1),
        [utc(2026, 5, 29, 8), utc(2026, 7, 31, 8), utc(2026, 8, 31, 8)],
    ),
    "1W on a Saturday stays in its month: Monday the 3rd": (
        "cron(0 8 1W * ? *)",
        UTC_ZONE,
        utc(2026, 7, 15),
        [utc(2026, 8, 3, 8), utc(2026, 9, 1, 8)],
    ),
    "LW, the last weekday, when months end on a Saturday": (
        "cron(0 8 LW * ? *)",
        UTC_ZONE,
        utc(2026, 1, 1),
        [utc(2026, 1, 30, 8), utc(2026, 2, 27, 8), utc(2026, 3, 31, 8)],
    ),
    "LW when May ends on a Sunday": (
        "cron(0 8 LW * ? *)",
        UTC_ZONE,
        utc(2026, 5, 1),
        [utc(2026, 5, 29, 8), utc(2026, 6, 30, 8)],
    ),
    "the last Friday of 2027, and no run once the year field is over": (
        "cron(15 10 ? * 6L 2027)",
        UTC_ZONE,
        utc(2027, 10, 1),
        [utc(2027, 10, 29, 10, 15), utc(2027, 11, 26, 10, 15), utc(2027, 12, 31, 10, 15)],
    ),
    "a year field that is over has no runs at all": (
        "cron(15 10 ? * 6L 2027)",
        UTC_ZONE,
        utc(2028, 1, 1),
        [],
    ),
    "months by name": (
        "cron(0 6 1 JAN-MAR ? *)",
        UTC_ZONE,
        utc(2026, 2, 15),
        [utc(2026, 3, 1, 6), utc(2027, 1, 1, 6), utc(2027, 2, 1, 6)],
    ),
    "day-of-week 1 is Sunday": (
        "cron(0 0 ? * 1 *)",
        UTC_ZONE,
        utc(2026, 3, 2),  # a Monday
        [utc(2026, 3, 8), utc(2026, 3, 15)],
    ),
    "L alone in day-of-week is the week's last day, Saturday": (
        "cron(0 0 ? * L *)",
        UTC_ZONE,
        utc(2026, 3, 2),
        [utc(2026, 3, 7), utc(2026, 3, 14)],
    ),
    "the 31st skips months of 30 days": (
        "cron(0 0 31 * ? *)",
        UTC_ZONE,
        utc(2026, 4, 1),
        [utc(2026, 5, 31), utc(2026, 7, 31), utc(2026, 8, 31)],
    ),
    "an expression whose day never comes never runs": (
        "cron(0 0 30 2 ? *)",
        UTC_ZONE,
        utc(2026, 1, 1),
        [],
    ),
    "a one-time schedule at Tokyo's new year": (
        "at(2027-01-01T00:00:00)",
        TOKYO,
        utc(2026, 6, 1),
        [utc(2026, 12, 31, 15)],
    ),
    "a one-time schedule already past": (
        "at(2027-01-01T00:00:00)",
        TOKYO,
        utc(2026, 12, 31, 15),
        [],
    ),
    "a one-time schedule at a time that does not exist never runs": (
        "at(2026-03-08T02:30:00)",
        NEW_YORK,
        utc(2026, 1, 1),
        [],
    ),
}


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    list(CRON_AND_AT_CASES.values()),
    ids=list(CRON_AND_AT_CASES),
)
def test_next_runs_in_the_schedule_zone(
    expression: str, zone: ZoneInfo, after: datetime, expected: list[datetime]
) -> None:
    # Given a schedule in its zone, when asked for as many runs as the case lists (three
    # where it lists none), then those are the runs, in UTC.
    found = runs(expression, zone, after, len(expected) or 3)
    assert found == expected
    assert all(run.tzinfo is UTC for run in found)


def test_schedules_that_end_return_fewer_runs_than_asked() -> None:
    assert len(runs("cron(15 10 ? * 6L 2027)", UTC_ZONE, utc(2027, 10, 1), 10)) == 3
    assert runs("at(2027-01-01T00:00:00)", TOKYO, utc(2026, 6, 1), 10) == [utc(2026, 12, 31, 15)]
    assert runs("cron(0 0 L * ? 2199)", UTC_ZONE, utc(2199, 11, 1), 5) == [
        utc(2199, 11, 30),
        utc(2199, 12, 31),
    ]


def test_a_rate_of_one_minute_counts_from_its_start() -> None:
    start = utc(2026, 5, 10, 10, 0, second=30)
    assert runs("rate(1 minute)", UTC_ZONE, utc(2026, 5, 10, 10, 5), 3, start) == [
        utc(2026, 5, 10, 10, 5, second=30),
        utc(2026, 5, 10, 10, 6, second=30),
        utc(2026, 5, 10, 10, 7, second=30),
    ]


def test_a_rate_runs_first_at_its_start_then_every_interval() -> None:
    start = utc(2026, 5, 10, 10)
    assert runs("rate(5 minutes)", UTC_ZONE, utc(2026, 5, 1), 2, start) == [
        start,
        start + timedelta(minutes=5),
    ]
    assert runs("rate(5 minutes)", UTC_ZONE, start, 1, start) == [start + timedelta(minutes=5)]


def test_rate_days_are_24_hours_so_the_local_time_moves_across_dst() -> None:
    # Monday 2026-03-02 09:00 EST; New York springs forward on the 8th.
    start = utc(2026, 3, 2, 14)
    weekly = runs("rate(7 days)", NEW_YORK, utc(2026, 3, 1), 3, start)
    assert weekly == [utc(2026, 3, 2, 14), utc(2026, 3, 9, 14), utc(2026, 3, 16, 14)]
    assert [run.astimezone(NEW_YORK).hour for run in weekly] == [9, 10, 10]


def test_a_start_date_bounds_a_cron_from_below_and_counts_itself() -> None:
    start = utc(2026, 6, 1, 2)
    assert runs("cron(0 2 * * ? *)", UTC_ZONE, utc(2026, 5, 1), 2, start) == [
        utc(2026, 6, 1, 2),
        utc(2026, 6, 2, 2),
    ]


def test_a_one_time_schedule_ignores_the_start_date() -> None:
    late_start = utc(2028, 1, 1)
    found = runs("at(2027-01-01T00:00:00)", TOKYO, utc(2026, 6, 1), 1, late_start)
    assert found == [utc(2026, 12, 31, 15)]


def test_after_may_be_given_in_any_zone() -> None:
    after = datetime(2026, 5, 10, 14, tzinfo=PARIS)  # 12:00 UTC
    assert runs("cron(0 13 * * ? *)", UTC_ZONE, after, 1) == [utc(2026, 5, 10, 13)]


def test_callers_mistakes_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="start"):
        runs("rate(1 hour)", UTC_ZONE, utc(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="aware"):
        runs("cron(0 2 * * ? *)", UTC_ZONE, datetime(2026, 1, 1), 1)
    assert runs("cron(0 2 * * ? *)", UTC_ZONE, utc(2026, 1, 1), 0) == []


ALL_MONTHS = tuple(range(1, 13))
ALL_YEARS = tuple(range(1970, 2200))


@pytest.mark.parametrize(
    ("expression", "parsed"),
    [
        ("rate(1 minute)", RateExpression(1, RateUnit.MINUTES)),
        ("rate(5 minutes)", RateExpression(5, RateUnit.MINUTES)),
        ("rate(1 hour)", RateExpression(1, RateUnit.HOURS)),
        ("rate(2 days)", RateExpression(2, RateUnit.DAYS)),
        ("at(2027-01-01T00:00:00)", AtExpression(datetime(2027, 1, 1))),
        (
            "cron(0 9 ? * MON-FRI *)",
            CronExpression((0,), (9,), DaysOfWeek((2, 3, 4, 5, 6)), ALL_MONTHS, ALL_YEARS),
        ),
        (
            "cron(0 9 ? * mon-fri *)",
            CronExpression((0,), (9,), DaysOfWeek((2, 3, 4, 5, 6)), ALL_MONTHS, ALL_YEARS),
        ),
        (
            "cron(0/20,5 8-12/2 1,15 JAN,JUN-AUG ? 2026-2030/2)",
            CronExpression(
                (0, 5, 20, 40), (8, 10, 12), DaysOfMonth((1, 15)), (1, 6, 7, 8), (2026, 2028, 2030)
            ),
        ),
        ("cron(0 0 L * ? *)", CronExpression((0,), (0,), LastDayOfMonth(), ALL_MONTHS, ALL_YEARS)),
        (
            "cron(0 0 LW * ? *)",
            CronExpression((0,), (0,), LastWeekdayOfMonth(), ALL_MONTHS, ALL_YEARS),
        ),
        (
            "cron(0 0 15W * ? *)",
            CronExpression((0,), (0,), NearestWeekday(15), ALL_MONTHS, ALL_YEARS),
        ),
        (
            "cron(0 0 ? * 3#2 *)",
            CronExpression((0,), (0,), NthWeekdayInMonth(3, 2), ALL_MONTHS, ALL_YEARS),
        ),
        (
            "cron(0 0 ? * FRI#3 *)",
            CronExpression((0,), (0,), NthWeekdayInMonth(6, 3), ALL_MONTHS, ALL_YEARS),
        ),
        (
            "cron(0 0 ? * 5L *)",
            CronExpression((0,), (0,), LastWeekdayInMonth(5), ALL_MONTHS, ALL_YEARS),
        ),
        ("cron(0 0 ? * L *)", CronExpression((0,), (0,), DaysOfWeek((7,)), ALL_MONTHS, ALL_YEARS)),
    ],
)
def test_what_an_expression_parses_to(expression: str, parsed: object) -> None:
    assert parse_schedule(expression) == parsed


def test_a_rate_knows_its_interval() -> None:
    assert RateExpression(5, RateUnit.MINUTES).interval == timedelta(minutes=5)
    assert RateExpression(1, RateUnit.HOURS).interval == timedelta(hours=1)
    assert RateExpression(7, RateUnit.DAYS).interval == timedelta(days=7)


# (expression, words the refusal must hold): each names the field and the value at fault.
REFUSED = {
    "both day fields given": ("cron(0 0 1 * MON *)", "day-of-month (1) and day-of-week (MON)"),
    "both day fields *": ("cron(0 0 * * * *)", "are both given: one of them must be ?"),
    "both day fields ?": ("cron(0 0 ? * ? *)", "cannot both be ?"),
    "? in hours": ("cron(0 ? * * ? *)", "? is only for day-of-month or day-of-week, not hours"),
    "? in month": ("cron(0 0 ? ? * *)", "not month"),
    "day-of-week 0": ("cron(0 0 ? * 0 *)", "day-of-week 0 is out of range 1-7 or SUN-SAT"),
    "day-of-week 8": ("cron(0 0 ? * 8 *)", "day-of-week 8 is out of range"),
    "day-of-week range to 8": ("cron(0 0 ? * 2-8 *)", "day-of-week 8"),
    "rate(1 minutes)": ("rate(1 minutes)", "with the value 1 the unit is 'minute'"),
    "rate(5 minute)": ("rate(5 minute)", "with the value 5 the unit is 'minutes'"),
    "rate(0 hours)": ("rate(0 hours)", "the value 0 is not a positive whole number"),
    "rate(-1 hours)": ("rate(-1 hours)", "the value -1"),
    "rate(1.5 hours)": ("rate(1.5 hours)", "the value 1.5"),
    "unknown unit": ("rate(3 weeks)", "the unit 'weeks' is not one of"),
    "rate without a unit": ("rate(5)", "a value and a unit"),
    "rate too long": ("rate(9999999999999 days)", "longer than any schedule"),
    "# week 6": ("cron(0 0 ? * 3#6 *)", "day-of-week 3#6: the number after # is the week"),
    "# week 0": ("cron(0 0 ? * 3#0 *)", "3#0"),
    "# in a list": ("cron(0 0 ? * 3#1,6#3 *)", "a # expression stands alone"),
    "# on day 9": ("cron(0 0 ? * 9#2 *)", "day-of-week 9 is out of range"),
    "year 2200": ("cron(0 0 * * ? 2200)", "year 2200 is out of range 1970-2199"),
    "year 1969": ("cron(0 0 * * ? 1969)", "year 1969"),
    "five fields": ("cron(0 0 * * ?)", "has 6 fields (minutes hours day-of-month month"),
    "seven fields": ("cron(0 0 0 * * ? *)", "this one has 7"),
    "minute 60": ("cron(60 0 * * ? *)", "minutes 60 is out of range 0-59"),
    "hour 24": ("cron(0 24 * * ? *)", "hours 24 is out of range 0-23"),
    "day 32": ("cron(0 0 32 * ? *)", "day-of-month 32 is out of range 1-31"),
    "month 13": ("cron(0 0 * 13 ? *)", "month 13 is out of range 1-12 or JAN-DEC"),
    "unknown month name": ("cron(0 0 * FOO ? *)", "month 'FOO' is not a value"),
    "day name in minutes": ("cron(MON 0 * * ? *)", "minutes 'MON' is not a value (0-59)"),
    "backwards range": ("cron(0 0 ? * FRI-MON *)", "day-of-week range FRI-MON runs backwards"),
    "increment 0": ("cron(0/0 0 * * ? *)", "minutes 0/0: the increment after / must be"),
    "increment past the field": ("cron(0/61 0 * * ? *)", "from 1 to 60"),
    "/ in day-of-week": ("cron(0 0 ? * 1/2 *)", "day-of-week takes no / increments"),
    "L in a list": ("cron(0 0 1,L * ? *)", "day-of-month 1,L: L stands alone"),
    "W on a range": ("cron(0 0 1-5W * ? *)", "W follows a single day"),
    "W on day 32": ("cron(0 0 32W * ? *)", "day-of-month 32 is out of range"),
    "L on a range of days": ("cron(0 0 ? * 1-5L *)", "L stands alone or after a single day"),
    "not a date": ("at(2027-02-30T00:00:00)", "2027-02-30T00:00:00 is not a real date and time"),
    "at with a space": ("at(2027-01-01 00:00:00)", "at(yyyy-mm-ddThh:mm:ss)"),
    "garbage": ("every day at noon", "is not a schedule expression"),
    "empty": ("", "is not a schedule expression"),
    "upper-case form": ("CRON(0 0 * * ? *)", "is not a schedule expression"),
    "unclosed": ("cron(0 0 * * ? *", "is not a schedule expression"),
}


@pytest.mark.parametrize(("expression", "words"), list(REFUSED.values()), ids=list(REFUSED))
def test_invalid_expressions_are_refused_with_what_is_wrong(expression: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_schedule(expression)
    assert refused.value.field == "schedule_expression"
    assert words in refused.value.message
    assert expression in refused.value.message


def test_the_refusal_names_the_field_the_caller_gives() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_schedule("rate(0 hours)", field="schedules[2].expression")
    assert refused.value.field == "schedules[2].expression"
    assert refused.value.detail == {"field": "schedules[2].expression"}
    assert refused.value.http_status == 400
