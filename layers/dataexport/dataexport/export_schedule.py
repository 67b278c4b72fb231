"""A scheduled export: an export request run on an EventBridge Scheduler expression.

Each run creates an ordinary export job as the schedule's owner. A relative time range
(`last_month`, `7d`, ...) is resolved at the run's scheduled time, so every job records the
exact window it covers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID

from dataexport.errors import InvalidRequest
from dataexport.export_job import JobError, utc_text
from dataexport.export_request import ExportRequest, TimeRangeInput
from dataexport.schedule_expressions import (
    AtExpression,
    RateExpression,
    ScheduleExpression,
    next_runs,
    parse_schedule,
)
from dataexport.time_presets import TimePreset, preset_bounds

SCHEDULE_ID_PREFIX = "sch_"
SCHEDULE_ID_PATTERN = r"^sch_[0-9A-HJKMNP-TV-Z]{26}$"
# A cron's shortest gap is looked for among this many of its next runs.
CADENCE_HORIZON_RUNS = 100
NEXT_RUNS_SHOWN = 5


class ScheduleState(StrEnum):
    ENABLED = "enabled"
    PAUSED = "paused"
    # Stopped by the service: the owner lost a permission, or the request is no longer valid.
    SUSPENDED = "suspended"


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"


class ScheduleInput(BaseModel):
    """Body of POST /v1/schedules and PUT /v1/schedules/{id}."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    description: str | None = Field(default=None, max_length=1000)
    schedule_expression: str = Field(
        min_length=1,
        max_length=256,
        description="EventBridge Scheduler syntax: rate(1 day), cron(0 6 ? * MON *), at(...).",
    )
    timezone: str = Field(
        default="UTC",
        max_length=64,
        description="IANA zone the expression is read in; also the export's, unless it sets one.",
    )
    export: ExportRequest = Field(
        description="The export each run creates, as in POST /v1/exports; a time_range preset "
        "is resolved at each run's scheduled time."
    )
    enabled: bool = Field(default=True, description="false creates the schedule paused.")


class ExportSchedule(BaseModel):
    """A stored schedule; `export` is its ExportRequest as JSON."""

    model_config = ConfigDict(frozen=True)

    id: str
    org_id: str
    owner_id: str
    name: str
    description: str | None = None
    schedule_expression: str
    timezone: str
    export: dict[str, Any]
    state: ScheduleState = ScheduleState.ENABLED
    # Why the service suspended it (a safe reason for its owner).
    suspension: JobError | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def request(self) -> ExportRequest:
        return ExportRequest.model_validate(self.export)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def upcoming_runs(self, after: datetime, count: int = NEXT_RUNS_SHOWN) -> list[datetime]:
        """When it runs next (none while paused or suspended)."""
        if self.state is not ScheduleState.ENABLED:
            return []
        return next_runs(
            parse_schedule(self.schedule_expression), self.zone, after, count, self.created_at
        )


class ScheduleRun(BaseModel):
    """One run: the job it created, or why it created none."""

    model_config = ConfigDict(frozen=True)

    schedule_id: str
    scheduled_for: datetime
    trigger: RunTrigger
    outcome: Literal["started", "refused"]
    job_id: str | None = None
    error: JobError | None = None
    recorded_at: datetime


class RunScheduleEvent(BaseModel):
    """What a Scheduler schedule sends the RunSchedule function."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schedule_id: str = Field(pattern=SCHEDULE_ID_PATTERN)
    # Scheduler's <aws.scheduler.scheduled-time>: when the run was due, not when it arrived.
    scheduled_time: datetime


def new_schedule_id() -> str:
    return SCHEDULE_ID_PREFIX + str(ULID())


def schedule_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest("timezone", f"Unknown IANA time zone {name!r}.") from None


def check_cadence(
    expression: str, zone: ZoneInfo, minimum: timedelta, now: datetime
) -> ScheduleExpression:
    """The parsed expression, if it runs at all and never more often than `minimum`."""
    schedule = parse_schedule(expression)
    if isinstance(schedule, AtExpression):
        if not next_runs(schedule, zone, now, 1):
            raise InvalidRequest(
                "schedule_expression", f"{expression} is in the past; it would never run."
            )
        return schedule
    gap = shortest_gap(schedule, zone, now)
    if gap is None:
        raise InvalidRequest("schedule_expression", f"{expression} has no future runs.")
    if gap < minimum:
        raise InvalidRequest(
            "schedule_expression",
            f"{expression} runs every {_duration(gap)}; schedules may run at most every "
            f"{_duration(minimum)}.",
            {"minimum_interval_seconds": int(minimum.total_seconds())},
        )
    return schedule


def shortest_gap(schedule: ScheduleExpression, zone: ZoneInfo, now: datetime) -> timedelta | None:
    """The shortest time between two runs (None: fewer than one future run)."""
    if isinstance(schedule, RateExpression):
        return schedule.interval
    runs = next_runs(schedule, zone, now, CADENCE_HORIZON_RUNS, start=now)
    if not runs:
        return None
    if len(runs) == 1:
        return timedelta.max
    return min(later - earlier for earlier, later in pairwise(runs))


def _duration(gap: timedelta) -> str:
    seconds = int(gap.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def with_schedule_zone(request: ExportRequest, zone_name: str) -> ExportRequest:
    """The request, rendered in the schedule's zone unless it names a zone of its own."""
    if "timezone" in request.options.model_fields_set:
        return request
    options = request.options.model_copy(update={"timezone": zone_name})
    return request.model_copy(update={"options": options})


def request_for_run(request: ExportRequest, scheduled_for: datetime) -> ExportRequest:
    """The run's request: a relative time range fixed to the window it means at
    `scheduled_for`, in the export's zone (so `last_month` is the month before each run)."""
    time_range = request.time_range
    if time_range is None or time_range.preset in (None, TimePreset.CUSTOM, TimePreset.ALL_TIME):
        return request
    zone = ZoneInfo(request.options.timezone)
    start, end = preset_bounds(time_range.preset, zone, scheduled_for.astimezone(UTC))
    if start is None or end is None:
        return request
    fixed = TimeRangeInput(preset=TimePreset.CUSTOM, start=utc_text(start), end=utc_text(end))
    return request.model_copy(update={"time_range": fixed})
