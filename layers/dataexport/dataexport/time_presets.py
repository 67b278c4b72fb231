"""Named time ranges (`7d`, `last_month`, ...) resolved in the caller's IANA timezone.

Days, months and years start at local midnight, so `last_month` in Asia/Kolkata is not the same
instants as in America/New_York, and a day across a DST change lasts 23 or 25 hours. Where a
zone skips midnight (a DST change at 00:00), the day starts at its first instant. Every window is
half-open, [start, end), and ends `now` except `last_month`, which ends where this month starts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class TimePreset(StrEnum):
    LAST_24_HOURS = "24h"
    LAST_7_DAYS = "7d"
    LAST_30_DAYS = "30d"
    LAST_90_DAYS = "90d"
    THIS_MONTH = "this_month"
    LAST_MONTH = "last_month"
    THIS_YEAR = "this_year"
    ALL_TIME = "all_time"
    CUSTOM = "custom"


_DAYS = {TimePreset.LAST_7_DAYS: 7, TimePreset.LAST_30_DAYS: 30, TimePreset.LAST_90_DAYS: 90}


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`, in UTC (midnight, or the first time after a gap)."""
    midnight = datetime.combine(day, time(), tzinfo=zone)
    # A midnight inside a DST gap does not exist: zoneinfo gives it the offset before the
    # change, and the round trip through UTC lands on the day's real first instant.
    return midnight.astimezone(UTC)


def preset_bounds(
    preset: TimePreset, zone: ZoneInfo, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """[start, end) of `preset` at `now` in `zone` (None: unbounded); `custom` has none."""
    today = now.astimezone(zone).date()
    if preset is TimePreset.LAST_24_HOURS:
        return now - timedelta(hours=24), now
    if preset in _DAYS:
        # As the seeds' reports do: from the start of the day N days ago until now.
        return start_of_day(today - timedelta(days=_DAYS[preset]), zone), now
    first_of_month = today.replace(day=1)
    if preset is TimePreset.THIS_MONTH:
        return start_of_day(first_of_month, zone), now
    if preset is TimePreset.LAST_MONTH:
        first_of_last_month = (first_of_month - timedelta(days=1)).replace(day=1)
        return start_of_day(first_of_last_month, zone), start_of_day(first_of_month, zone)
    if preset is TimePreset.THIS_YEAR:
        return start_of_day(date(today.year, 1, 1), zone), now
    return None, None
