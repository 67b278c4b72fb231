"""EventBridge Scheduler schedule expressions: parsed, checked, and their next run times.

`parse_schedule` takes the three forms EventBridge Scheduler takes, and refuses anything else
with an `InvalidRequest` that names the part at fault:

- `rate(value unit)`: a positive whole number and `minute`, `hour` or `day`, singular when the
  value is 1 and plural otherwise (`rate(1 hour)`, `rate(5 hours)`).
- `cron(minutes hours day-of-month month day-of-week year)`: six fields, all required, as the
  EventBridge cron reference has them (the Scheduler guide's prose calls the year optional; a
  five-field expression is refused so that only the form AWS documents everywhere is stored).
  Exactly one of day-of-month and day-of-week is `?`. Day-of-week counts 1-7 from Sunday
  (SUN-SAT), month is 1-12 or JAN-DEC, year 1970-2199. `,` `-` `*` and `/` everywhere but
  day-of-week, which has no `/`; `L` alone (last day), `nW` (weekday nearest day n, within
  the month) and `LW` (last weekday) in day-of-month; `L` alone (the week's last day:
  Saturday), `nL` (last day n of the month, `6L` the last Friday) and `n#k` (the k-th day n,
  `3#2` the second Tuesday; alone in the field) in day-of-week. Names are accepted in any case.
  Ranges run upwards (`FRI-MON` is refused: write `FRI-SAT,SUN-MON`).
- `at(yyyy-mm-ddThh:mm:ss)`: one run.

`next_runs` gives the times after a moment at which a schedule runs, as EventBridge Scheduler
runs it (user guide, "Schedule types", sections on time zones and daylight saving time):

- cron and at are wall-clock times in the schedule's IANA time zone.
- A local time that does not exist (clocks spring forward over it) is skipped: no run that
  day, and none at the hour after instead. A local time that happens twice (clocks fall back
  over it) runs once, at its first occurrence, before the change. This holds minute by minute,
  so `cron(0/15 * * * ? *)` in America/New_York runs four times, not eight, in the hour that
  repeats, and not in the hour that is skipped. The guide states the rule for cron; a one-time
  `at` is given the same rule (one at a time that does not exist never runs).
- rate counts fixed durations from the schedule's start (its StartDate, or when it was created:
  without a StartDate Scheduler starts invoking at once), the first run at the start itself. A
  day is 24 hours, not a calendar day, so `rate(1 day)` moves by an hour on the local clock
  across a DST change, as the guide says.
- A StartDate bounds cron runs from below too; `at` ignores it, as Scheduler does.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dataexport.errors import InvalidRequest

FIRST_YEAR = 1970
LAST_YEAR = 2199

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_SUNDAY = 1
_SATURDAY = 7


class RateUnit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"


@dataclass(frozen=True)
class RateExpression:
    """`rate(value unit)`: every `value` units from the schedule's start."""

    value: int
    unit: RateUnit

    @property
    def interval(self) -> timedelta:
        return timedelta(**{self.unit.value: self.value})


@dataclass(frozen=True)
class AtExpression:
    """`at(...)`: one run at `local_time`, a naive wall-clock time in the schedule's zone."""

    local_time: datetime


# ----- day rules: each answers which days of a given month it picks


def _aws_weekday(day: date) -> int:
    """EventBridge's day of the week: 1 is Sunday, 7 Saturday (Python's Monday is 0)."""
    return (day.weekday() + 1) % 7 + 1


def _month_days(year: int, month: int) -> range:
    return range(1, calendar.monthrange(year, month)[1] + 1)


def _weekday_at_or_before(year: int, month: int, day: int) -> int:
    """`day`, or the Friday before it when it is a Saturday or a Sunday."""
    weekday = _aws_weekday(date(year, month, day))
    return day - {_SUNDAY: 2, _SATURDAY: 1}.get(weekday, 0)


@dataclass(frozen=True)
class DaysOfMonth:
    """Listed days of the month; a day the month lacks (31 in April) is no run that month."""

    days: tuple[int, ...]

    def pick(self, year: int, month: int) -> list[int]:
        return [day for day in self.days if day in _month_days(year, month)]


@dataclass(frozen=True)
class LastDayOfMonth:
    """`L` in day-of-month."""

    def pick(self, year: int, month: int) -> list[int]:
        return [_month_days(year, month)[-1]]


@dataclass(frozen=True)
class NearestWeekday:
    """`nW`: day n, or the weekday nearest it without leaving the month (`1W` on a Saturday
    is Monday the 3rd, not the last day of the month before)."""

    day: int

    def pick(self, year: int, month: int) -> list[int]:
        days = _month_days(year, month)
        if self.day not in days:
            return []
        weekday = _aws_weekday(date(year, month, self.day))
        if weekday == _SATURDAY:
            return [self.day - 1 if self.day > 1 else self.day + 2]
        if weekday == _SUNDAY:
            return [self.day + 1 if self.day < days[-1] else self.day - 2]
        return [self.day]


@dataclass(frozen=True)
class LastWeekdayOfMonth:
    """`LW`: the month's last Monday-to-Friday day."""

    def pick(self, year: int, month: int) -> list[int]:
        return [_weekday_at_or_before(year, month, _month_days(year, month)[-1])]


@dataclass(frozen=True)
class DaysOfWeek:
    """Listed days of the week, 1 (Sunday) to 7 (Saturday)."""

    weekdays: tuple[int, ...]

    def pick(self, year: int, month: int) -> list[int]:
        return [
            d
            for d in _month_days(year, month)
            if _aws_weekday(date(year, month, d)) in self.weekdays
        ]


@dataclass(frozen=True)
class LastWeekdayInMonth:
    """`nL` in day-of-week: the month's last day n (`6L`: its last Friday)."""

    weekday: int

    def pick(self, year: int, month: int) -> list[int]:
        return DaysOfWeek((self.weekday,)).pick(year, month)[-1:]


@dataclass(frozen=True)
class NthWeekdayInMonth:
    """`n#k`: the month's k-th day n (`3#2`: its second Tuesday); none in a month without one."""

    weekday: int
    nth: int

    def pick(self, year: int, month: int) -> list[int]:
        return DaysOfWeek((self.weekday,)).pick(year, month)[self.nth - 1 : self.nth]


DayOfMonthRule = DaysOfMonth | LastDayOfMonth | NearestWeekday | LastWeekdayOfMonth
DayOfWeekRule = DaysOfWeek | LastWeekdayInMonth | NthWeekdayInMonth


@dataclass(frozen=True)
class CronExpression:
    """`cron(...)`: each field as the sorted values it allows; `days` is whichever of
    day-of-month and day-of-week is not `?`."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: DayOfMonthRule | DayOfWeekRule
    months: tuple[int, ...]
    years: tuple[int, ...]


ScheduleExpression = RateExpression | CronExpression | AtExpression


# ----- parsing


_FORM = re.compile(r"(rate|cron|at)\((.*)\)")
_RATE = re.compile(r"(\S+)\s+(\S+)")
_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_NUMBER = re.compile(r"\d+")
_RATE_UNITS = {"minute": RateUnit.MINUTES, "hour": RateUnit.HOURS, "day": RateUnit.DAYS}


def parse_schedule(expression: str, field: str = "schedule_expression") -> ScheduleExpression:
    """Parse an EventBridge Scheduler expression; InvalidRequest on `field` says what is wrong."""
    form = _FORM.fullmatch(expression)
    if form is None:
        raise InvalidRequest(
            field,
            f"{expression!r} is not a schedule expression: write rate(value unit), "
            "cron(minutes hours day-of-month month day-of-week year) or "
            "at(yyyy-mm-ddThh:mm:ss).",
        )

    def refuse(message: str) -> InvalidRequest:
        return InvalidRequest(field, f"{expression}: {message}")

    kind, body = form.groups()
    if kind == "rate":
        return _parse_rate(body, refuse)
    if kind == "at":
        return _parse_at(body, refuse)
    return _CronParser(refuse).parse(body)


# Builds the refusal of the expression being parsed from what is wrong with it.
_Refuse = Callable[[str], InvalidRequest]


def _parse_rate(body: str, refuse: _Refuse) -> RateExpression:
    parts = _RATE.fullmatch(body)
    if parts is None:
        raise refuse("a rate is a value and a unit, as in rate(5 minutes).")
    value_text, unit_text = parts.groups()
    if not _NUMBER.fullmatch(value_text) or int(value_text) == 0:
        raise refuse(f"the value {value_text} is not a positive whole number.")
    value = int(value_text)
    singular = unit_text.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise refuse(f"the unit {unit_text!r} is not one of minute(s), hour(s) or day(s).")
    # AWS requires the unit to agree with the value: rate(1 hour), rate(2 hours).
    expected = singular if value == 1 else f"{singular}s"
    if unit_text != expected:
        raise refuse(f"with the value {value} the unit is {expected!r}, not {unit_text!r}.")
    rate = RateExpression(value, _RATE_UNITS[singular])
    try:
        _ = rate.interval  # a timedelta holds at most 999,999,999 days
    except OverflowError:
        raise refuse("the interval is longer than any schedule can run.") from None
    return rate


def _parse_at(body: str, refuse: _Refuse) -> AtExpression:
    if not _AT.fullmatch(body):
        raise refuse("a one-time schedule is at(yyyy-mm-ddThh:mm:ss).")
    try:
        return AtExpression(datetime.fromisoformat(body))
    except ValueError:
        raise refuse(f"{body} is not a real date and time.") from None


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for the value low + i

    @property
    def span(self) -> str:
        if self.names:
            return f"{self.low}-{self.high} or {self.names[0]}-{self.names[-1]}"
        return f"{self.low}-{self.high}"


_MINUTES = _FieldSpec("minutes", 0, 59)
_HOURS = _FieldSpec("hours", 0, 23)
_DAY_OF_MONTH = _FieldSpec("day-of-month", 1, 31)
_MONTH = _FieldSpec("month", 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _FieldSpec("day-of-week", 1, 7, _DAY_NAMES)
_YEAR = _FieldSpec("year", FIRST_YEAR, LAST_YEAR)
_FIELDS = (_MINUTES, _HOURS, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK, _YEAR)


class _CronParser:
    """Parses one cron body; every refusal names the cron field and the value at fault."""

    def __init__(self, refuse: _Refuse) -> None:
        self.refuse = refuse

    def parse(self, body: str) -> CronExpression:
        texts = body.upper().split()
        if len(texts) != len(_FIELDS):
            raise self.refuse(
                f"a cron expression has 6 fields (minutes hours day-of-month month day-of-week "
                f"year), this one has {len(texts)}."
            )
        minutes, hours, day_of_month, month, day_of_week, year = texts
        for spec, text in zip(_FIELDS, texts, strict=True):
            if "?" in text and spec not in (_DAY_OF_MONTH, _DAY_OF_WEEK):
                raise self.refuse(f"? is only for day-of-month or day-of-week, not {spec.name}.")
        return CronExpression(
            minutes=self.values(minutes, _MINUTES),
            hours=self.values(hours, _HOURS),
            days=self.days(day_of_month, day_of_week),
            months=self.values(month, _MONTH),
            years=self.values(year, _YEAR),
        )

    def days(self, day_of_month: str, day_of_week: str) -> DayOfMonthRule | DayOfWeekRule:
        if day_of_month == "?" and day_of_week == "?":
            raise self.refuse("day-of-month and day-of-week cannot both be ?: give one of them.")
        if day_of_month != "?" and day_of_week != "?":
            raise self.refuse(
                f"day-of-month ({day_of_month}) and day-of-week ({day_of_week}) are both given: "
                "one of them must be ?."
            )
        if day_of_week == "?":
            return self.day_of_month(day_of_month)
        return self.day_of_week(day_of_week)

    def day_of_month(self, text: str) -> DayOfMonthRule:
        if text == "L":
            return LastDayOfMonth()
        if text == "LW":
            return LastWeekdayOfMonth()
        if "L" in text:
            raise self.refuse(f"day-of-month {text}: L stands alone, or as LW.")
        if "W" in text:
            day = text.removesuffix("W")
            if not _NUMBER.fullmatch(day):
                raise self.refuse(
                    f"day-of-month {text}: W follows a single day, as in 15W (or LW)."
                )
            return NearestWeekday(self.value(day, _DAY_OF_MONTH))
        return DaysOfMonth(self.values(text, _DAY_OF_MONTH))

    def day_of_week(self, text: str) -> DayOfWeekRule:
        if "#" in text:
            if "," in text:
                raise self.refuse(f"day-of-week {text}: a # expression stands alone in its field.")
            weekday, _, nth = text.partition("#")
            if nth not in {"1", "2", "3", "4", "5"}:
                raise self.refuse(
                    f"day-of-week {text}: the number after # is the week of the month, 1-5."
                )
            return NthWeekdayInMonth(self.value(weekday, _DAY_OF_WEEK), int(nth))
        if text == "L":
            return DaysOfWeek((_SATURDAY,))
        if "L" in text:  # no day name holds an L: this is the wildcard
            weekday = text.removesuffix("L")
            if "L" in weekday or not (_NUMBER.fullmatch(weekday) or weekday in _DAY_NAMES):
                raise self.refuse(
                    f"day-of-week {text}: L stands alone or after a single day, as in 6L."
                )
            return LastWeekdayInMonth(self.value(weekday, _DAY_OF_WEEK))
        if "/" in text:
            raise self.refuse(f"day-of-week {text}: day-of-week takes no / increments.")
        return DaysOfWeek(self.values(text, _DAY_OF_WEEK))

    def values(self, text: str, spec: _FieldSpec) -> tuple[int, ...]:
        """The values of a `,` list of `*`, `n`, `a-b`, each optionally `/step`."""
        allowed: set[int] = set()
        for item in text.split(","):
            allowed.update(self.item(item, spec))
        return tuple(sorted(allowed))

    def item(self, item: str, spec: _FieldSpec) -> range:
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            count = spec.high - spec.low + 1
            if not _NUMBER.fullmatch(step_text) or not 1 <= int(step_text) <= count:
                raise self.refuse(
                    f"{spec.name} {item}: the increment after / must be a whole number "
                    f"from 1 to {count}."
                )
            step = int(step_text)
        if base == "*":
            return range(spec.low, spec.high + 1, step)
        first, dash, last = base.partition("-")
        low = self.value(first, spec)
        if not dash:
            # `a/step` runs from a to the field's end; a lone value is itself.
            return range(low, spec.high + 1 if slash else low + 1, step)
        high = self.value(last, spec)
        if high < low:
            raise self.refuse(
                f"{spec.name} range {base} runs backwards: give the lower value first, "
                "or two ranges."
            )
        return range(low, high + 1, step)

    def value(self, text: str, spec: _FieldSpec) -> int:
        if text in spec.names:
            return spec.low + spec.names.index(text)
        if not _NUMBER.fullmatch(text):
            raise self.refuse(f"{spec.name} {text!r} is not a value ({spec.span}).")
        number = int(text)
        if not spec.low <= number <= spec.high:
            detail = " (1 is Sunday)" if spec is _DAY_OF_WEEK else ""
            raise self.refuse(f"{spec.name} {number} is out of range {spec.span}{detail}.")
        return number


# ----- evaluation


def next_runs(
    schedule: ScheduleExpression,
    timezone: ZoneInfo,
    after: datetime,
    count: int,
    start: datetime | None = None,
) -> list[datetime]:
    """The first `count` run times strictly after `after`, in UTC; fewer when the schedule
    ends first (an `at` already past, a cron whose years are over).

    `timezone` is the schedule's zone (ScheduleExpressionTimezone). `start` is its StartDate:
    required for a rate (a rate has no times of its own, only a distance from its start),
    a lower bound for a cron, ignored by an at.
    """
    for name, moment in (("after", after), ("start", start)):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime")
    if count <= 0:
        return []
    if isinstance(schedule, RateExpression):
        if start is None:
            raise ValueError("a rate schedule runs from its start: give start")
        return _rate_runs(schedule, start.astimezone(UTC), after.astimezone(UTC), count)
    if isinstance(schedule, AtExpression):
        instant = _first_instant(schedule.local_time, timezone)
        return [instant] if instant is not None and instant > after else []
    if start is not None and start > after:
        # A run at the start itself counts: look from just before it.
        after = start - timedelta(microseconds=1)
    return _cron_runs(schedule, timezone, after.astimezone(UTC), count)


def _rate_runs(
    rate: RateExpression, start: datetime, after: datetime, count: int
) -> list[datetime]:
    interval = rate.interval
    skipped = 0 if after < start else (after - start) // interval + 1
    runs: list[datetime] = []
    for index in range(skipped, skipped + count):
        try:
            runs.append(start + index * interval)
        except OverflowError:  # past year 9999: no datetime holds it
            break
    return runs


def _first_instant(wall_time: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant at which `zone`'s clocks show `wall_time`, in UTC; None when they
    never do (it falls in a gap where clocks spring forward)."""
    # fold=0 is the earlier of two instants that share a wall time (PEP 495).
    instant = wall_time.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # In a gap zoneinfo lends the offset from before the change; the round trip then shows
    # another wall time, which is how a time that does not exist is told apart.
    if instant.astimezone(zone).replace(tzinfo=None) != wall_time:
        return None
    return instant


def _cron_runs(cron: CronExpression, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    # Written here rather than taken from a library: croniter and cronsim read Unix cron
    # (0-6 weekdays, five fields, a skipped time run after the gap, a repeated one twice),
    # pyawscron and aws-croniter read EventBridge syntax but only in UTC, and none of them
    # applies Scheduler's DST rule. The search walks month by month, asks the day rule which
    # days of the month it picks, and only then tries that day's times: bounded by the years
    # 1970-2199 even for an expression that never runs (`cron(0 0 30 2 ? *)`).
    first_day = after.astimezone(zone).date()
    runs: list[datetime] = []
    for year, month in _months_from(cron, first_day):
        for day in cron.days.pick(year, month):
            if date(year, month, day) < first_day:
                continue
            for hour in cron.hours:
                for minute in cron.minutes:
                    instant = _first_instant(datetime(year, month, day, hour, minute), zone)
                    if instant is not None and instant > after:
                        runs.append(instant)
                        if len(runs) == count:
                            return runs
    return runs


def _months_from(cron: CronExpression, first_day: date) -> Iterator[tuple[int, int]]:
    """The (year, month) pairs the cron allows, in order, from `first_day`'s month on."""
    first = (first_day.year, first_day.month)
    return ((year, month) for year in cron.years for month in cron.months if (year, month) >= first)
