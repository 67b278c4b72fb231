"""A schedule's cadence check, and the window each run of it exports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dataexport.errors import InvalidRequest
from dataexport.export_request import ExportRequest
from dataexport.export_schedule import (
    check_cadence,
    request_for_run,
    schedule_zone,
    shortest_gap,
    with_schedule_zone,
)
from dataexport.schedule_expressions import parse_schedule

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("rate(1 hour)", HOUR),
        ("rate(2 days)", timedelta(days=2)),
        ("cron(0 6 * * ? *)", timedelta(days=1)),
        ("cron(0/15 * * * ? *)", timedelta(minutes=15)),
        # Twice a day, close together: the shortest gap counts, not the average.
        ("cron(0,10 6 * * ? *)", timedelta(minutes=10)),
        ("cron(0 6 ? * MON-FRI *)", timedelta(days=1)),
    ],
)
def test_the_shortest_gap_between_runs(expression: str, gap: timedelta) -> None:
    assert shortest_gap(parse_schedule(expression), PARIS, NOW) == gap


def test_a_schedule_more_frequent_than_the_minimum_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_cadence("cron(0/15 * * * ? *)", PARIS, HOUR, NOW)
    assert refused.value.field == "schedule_expression"
    assert "15 minutes" in refused.value.message and "1 hour" in refused.value.message
    assert refused.value.detail["minimum_interval_seconds"] == 3600


def test_schedules_at_the_minimum_or_slower_pass() -> None:
    for expression in ("rate(1 hour)", "cron(0 * * * ? *)", "cron(0 6 L * ? *)"):
        check_cadence(expression, PARIS, HOUR, NOW)


def test_a_one_time_schedule_must_be_in_the_future() -> None:
    check_cadence("at(2027-01-01T06:00:00)", PARIS, HOUR, NOW)
    with pytest.raises(InvalidRequest, match="in the past"):
        check_cadence("at(2026-01-01T06:00:00)", PARIS, HOUR, NOW)


def test_a_cron_whose_years_are_over_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="no future runs"):
        check_cadence("cron(0 6 * * ? 2020)", PARIS, HOUR, NOW)


def test_an_unknown_zone_is_refused_naming_timezone() -> None:
    with pytest.raises(InvalidRequest) as refused:
        schedule_zone("Europe/Atlantis")
    assert refused.value.field == "timezone"


def _request(**body: object) -> ExportRequest:
    return ExportRequest.model_validate({"dataset": "usage_logs", **body})


def test_last_month_is_the_month_before_each_run_in_the_exports_zone() -> None:
    request = with_schedule_zone(_request(time_range={"preset": "last_month"}), "Asia/Kolkata")
    for scheduled_for, start, end in (
        # 1 March 00:30 in Kolkata is still 28 February in UTC: Kolkata's calendar counts.
        (
            datetime(2026, 2, 28, 19, 0, tzinfo=UTC),
            datetime(2026, 1, 31, 18, 30, tzinfo=UTC),
            datetime(2026, 2, 28, 18, 30, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 1, 0, 30, tzinfo=UTC),
            datetime(2026, 10, 31, 18, 30, tzinfo=UTC),
            datetime(2026, 11, 30, 18, 30, tzinfo=UTC),
        ),
    ):
        fixed = request_for_run(request, scheduled_for).time_range
        assert fixed is not None and fixed.preset == "custom"
        assert datetime.fromisoformat(str(fixed.start)) == start
        assert datetime.fromisoformat(str(fixed.end)) == end


def test_a_rolling_window_ends_at_the_scheduled_time() -> None:
    scheduled_for = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    fixed = request_for_run(_request(time_range={"preset": "24h"}), scheduled_for).time_range
    assert fixed is not None
    assert datetime.fromisoformat(str(fixed.end)) == scheduled_for
    assert datetime.fromisoformat(str(fixed.start)) == scheduled_for - timedelta(hours=24)


def test_absolute_ranges_and_all_time_are_left_as_they_are() -> None:
    for time_range in (
        None,
        {"preset": "all_time"},
        {"preset": "custom", "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
    ):
        request = _request(time_range=time_range)
        assert request_for_run(request, NOW) == request


def test_the_schedules_zone_applies_unless_the_export_names_its_own() -> None:
    assert with_schedule_zone(_request(), "Europe/Paris").options.timezone == "Europe/Paris"
    own = _request(options={"timezone": "America/New_York"})
    assert with_schedule_zone(own, "Europe/Paris").options.timezone == "America/New_York"
