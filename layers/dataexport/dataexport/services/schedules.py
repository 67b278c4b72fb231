"""Scheduled exports as their users see them, and each run of one.

A schedule is stored here and mirrored by an EventBridge Scheduler schedule that invokes the
RunSchedule function. A run creates an export job as the schedule's owner, with the owner's
latest claims and through the same checks as an API request; a run the owner may no longer
make, or whose request is no longer valid, is recorded as refused and suspends the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from dataexport.adapters.export_scheduler import ExportScheduler
from dataexport.adapters.principal_store import PrincipalStore
from dataexport.adapters.schedule_store import ScheduleStore
from dataexport.audit import AuditEventType
from dataexport.errors import (
    Conflict,
    DataExportError,
    DatasetNotFound,
    ExportNotFound,
    InvalidRequest,
    PermissionDenied,
    ScheduleNotFound,
)
from dataexport.export_job import ExportJob, ExportStatus, JobError, utc_now
from dataexport.export_request import ExportRequest, resolve_export
from dataexport.export_schedule import (
    ExportSchedule,
    RunTrigger,
    ScheduleInput,
    ScheduleRun,
    ScheduleState,
    check_cadence,
    new_schedule_id,
    request_for_run,
    schedule_zone,
    with_schedule_zone,
)
from dataexport.identity import Caller, RequestOrigin
from dataexport.rate_limit import RateDecision
from dataexport.services.exports import (
    CreationServices,
    ScheduledCreation,
    create_export,
    require_export_permission,
)

logger = Logger(child=True)

RUN_HISTORY = 20
SUCCEEDED = frozenset({ExportStatus.COMPLETED, ExportStatus.EXPIRED})
FAILED = frozenset({ExportStatus.FAILED})


@dataclass(frozen=True)
class ScheduleServices:
    exports: CreationServices
    schedules: ScheduleStore
    scheduler: ExportScheduler
    principals: PrincipalStore
    min_interval: timedelta
    max_per_tenant: int


@dataclass(frozen=True)
class RunView:
    """A run with the job it created (None: refused, or the job is gone)."""

    run: ScheduleRun
    job: ExportJob | None

    @property
    def succeeded(self) -> bool:
        return self.job is not None and self.job.status in SUCCEEDED

    @property
    def failed(self) -> bool:
        return self.run.outcome == "refused" or (self.job is not None and self.job.status in FAILED)


@dataclass(frozen=True)
class ScheduleDetail:
    schedule: ExportSchedule
    runs: list[RunView]
    next_runs: list[datetime]

    @property
    def last_success(self) -> RunView | None:
        return next((view for view in self.runs if view.succeeded), None)

    @property
    def last_failure(self) -> RunView | None:
        return next((view for view in self.runs if view.failed), None)


@dataclass(frozen=True)
class RunResult:
    run: ScheduleRun
    job: ExportJob | None
    # Why a refused run created no job.
    refusal: DataExportError | None = None
    # The owner's rate-limit state after the run took its slot (a run that created a job).
    rate: RateDecision | None = None


# ----------------------------------------------------------------------------- use cases
def create_schedule(
    caller: Caller, body: ScheduleInput, services: ScheduleServices, origin: RequestOrigin
) -> ExportSchedule:
    """Check the expression, zone, cadence and export as the caller, store the schedule, then
    create its Scheduler schedule (removing the stored one if that fails)."""
    require_export_permission(caller)
    now = utc_now()
    request = _checked(body, caller, services, now)
    if services.schedules.count_for_org(caller.org_id) >= services.max_per_tenant:
        raise Conflict(
            f"A tenant may have at most {services.max_per_tenant} schedules; delete one first.",
            {"max_schedules": services.max_per_tenant},
        )
    schedule = ExportSchedule(
        id=new_schedule_id(),
        org_id=caller.org_id,
        owner_id=caller.user_id,
        name=body.name,
        description=body.description,
        schedule_expression=body.schedule_expression,
        timezone=body.timezone,
        export=request.model_dump(mode="json", exclude_unset=True),
        state=ScheduleState.ENABLED if body.enabled else ScheduleState.PAUSED,
        created_at=now,
        updated_at=now,
    )
    services.principals.remember(caller)
    services.schedules.create(schedule)
    try:
        services.scheduler.create(schedule)
    except Exception:
        logger.exception("Could not create the Scheduler schedule", extra={"id": schedule.id})
        services.schedules.delete(schedule.id)
        raise DataExportError("The schedule could not be created; try again later.") from None
    _record(AuditEventType.SCHEDULE_CREATED, caller, origin, services, schedule, action="create")
    logger.info("Schedule created", extra={"schedule_id": schedule.id})
    return schedule


def list_schedules(caller: Caller, services: ScheduleServices) -> list[ExportSchedule]:
    """Newest first: an admin's whole tenant, a member's own."""
    schedules = services.schedules.list_for_org(caller.org_id, services.max_per_tenant)
    if caller.is_admin:
        return schedules
    return [schedule for schedule in schedules if schedule.owner_id == caller.user_id]


def get_schedule(caller: Caller, schedule_id: str, services: ScheduleServices) -> ExportSchedule:
    """The schedule if the caller may see it; otherwise 'not found', never 'forbidden'."""
    schedule = services.schedules.get(schedule_id)
    if schedule.org_id != caller.org_id or not (
        caller.is_admin or schedule.owner_id == caller.user_id
    ):
        raise ScheduleNotFound(schedule_id)
    return schedule


def schedule_detail(caller: Caller, schedule_id: str, services: ScheduleServices) -> ScheduleDetail:
    """The schedule with its latest runs (each with its job), and when it runs next."""
    schedule = get_schedule(caller, schedule_id, services)
    runs = [
        RunView(run, _job(run.job_id, schedule, services))
        for run in services.schedules.recent_runs(schedule.id, RUN_HISTORY)
    ]
    return ScheduleDetail(schedule, runs, schedule.upcoming_runs(utc_now()))


def update_schedule(
    caller: Caller,
    schedule_id: str,
    body: ScheduleInput,
    services: ScheduleServices,
    origin: RequestOrigin,
) -> ExportSchedule:
    """Replace what the schedule runs and when; its owner stays. An edit clears a suspension
    (the next run checks the owner's permissions again)."""
    require_export_permission(caller)
    current = get_schedule(caller, schedule_id, services)
    now = utc_now()
    request = _checked(body, _owner(current, services) or caller, services, now)
    updated = current.model_copy(
        update={
            "name": body.name,
            "description": body.description,
            "schedule_expression": body.schedule_expression,
            "timezone": body.timezone,
            "export": request.model_dump(mode="json", exclude_unset=True),
            "state": ScheduleState.ENABLED if body.enabled else ScheduleState.PAUSED,
            "suspension": None,
            "updated_at": now,
        }
    )
    services.schedules.replace(updated)
    services.scheduler.sync(updated)
    _record(AuditEventType.SCHEDULE_UPDATED, caller, origin, services, updated, action="update")
    return updated


def set_paused(
    caller: Caller,
    schedule_id: str,
    paused: bool,
    services: ScheduleServices,
    origin: RequestOrigin,
) -> ExportSchedule:
    """Pause (its Scheduler schedule is disabled) or resume (enabled again, a suspension
    cleared: whoever resumes must hold the export permission themselves)."""
    require_export_permission(caller)
    current = get_schedule(caller, schedule_id, services)
    target = ScheduleState.PAUSED if paused else ScheduleState.ENABLED
    if current.state is target:
        return current
    updated = services.schedules.set_state(current.id, target, utc_now())
    services.scheduler.sync(updated)
    action = "pause" if paused else "resume"
    _record(AuditEventType.SCHEDULE_UPDATED, caller, origin, services, updated, action=action)
    return updated


def delete_schedule(
    caller: Caller, schedule_id: str, services: ScheduleServices, origin: RequestOrigin
) -> ExportSchedule:
    """Delete the Scheduler schedule first (nothing runs after this answers), then ours.
    The jobs its runs created stay, as any export does."""
    schedule = get_schedule(caller, schedule_id, services)
    services.scheduler.delete(schedule.id)
    services.schedules.delete(schedule.id)
    _record(AuditEventType.SCHEDULE_DELETED, caller, origin, services, schedule, action="delete")
    logger.info("Schedule deleted", extra={"schedule_id": schedule.id})
    return schedule


def run_now(
    caller: Caller, schedule_id: str, services: ScheduleServices, origin: RequestOrigin
) -> RunResult:
    """Run the schedule now, as its owner; counts against the owner's hourly export limit."""
    require_export_permission(caller)
    schedule = get_schedule(caller, schedule_id, services)
    if schedule.state is ScheduleState.SUSPENDED:
        raise Conflict(
            f"Schedule {schedule_id} is suspended; resume it first.",
            {"id": schedule_id, "state": schedule.state.value},
        )
    return _run(schedule, RunTrigger.MANUAL, utc_now(), services, origin=origin, actor=caller)


def run_scheduled(
    schedule_id: str, scheduled_for: datetime, services: ScheduleServices
) -> RunResult | None:
    """A run the Scheduler started; None when there is nothing to run (the schedule was
    deleted or paused after Scheduler decided to invoke)."""
    try:
        schedule = services.schedules.get(schedule_id)
    except ScheduleNotFound:
        # A Scheduler schedule outlived its export schedule (deleted halfway): finish that.
        logger.warning("Run of a deleted schedule", extra={"schedule_id": schedule_id})
        services.scheduler.delete(schedule_id)
        return None
    if schedule.state is not ScheduleState.ENABLED:
        logger.info("Run of a schedule that is not enabled", extra={"schedule_id": schedule_id})
        return None
    return _run(schedule, RunTrigger.SCHEDULE, scheduled_for, services, origin=RequestOrigin())


# ----------------------------------------------------------------------------- the run
def _run(
    schedule: ExportSchedule,
    trigger: RunTrigger,
    scheduled_for: datetime,
    services: ScheduleServices,
    *,
    origin: RequestOrigin,
    actor: Caller | None = None,
) -> RunResult:
    if not services.schedules.claim_run(schedule.id, scheduled_for, trigger):
        earlier = services.schedules.get_run(schedule.id, scheduled_for, trigger)
        if earlier is None:
            raise Conflict("This run is being started; retry in a moment.")
        logger.info("Run already recorded", extra={"schedule_id": schedule.id})
        return RunResult(earlier, _job(earlier.job_id, schedule, services))
    run = ScheduleRun(
        schedule_id=schedule.id,
        scheduled_for=scheduled_for,
        trigger=trigger,
        outcome="started",
        recorded_at=utc_now(),
    )
    try:
        owner = _owner(schedule, services)
        if owner is None:
            raise PermissionDenied("The schedule's owner has never been seen with a valid token.")
        request = request_for_run(schedule.request, scheduled_for)
        created = create_export(
            owner,
            request,
            services.exports,
            origin,
            ScheduledCreation(schedule.id, rate_limited=trigger is RunTrigger.MANUAL),
        )
    except (PermissionDenied, InvalidRequest, DatasetNotFound) as refusal:
        return _refuse(schedule, run, refusal, services, origin=origin, actor=actor)
    except BaseException:
        # Nothing was decided: let a retry (Scheduler's, or the caller's) run it.
        services.schedules.release_run(schedule.id, scheduled_for, trigger)
        raise
    run = run.model_copy(update={"job_id": created.job.id, "recorded_at": utc_now()})
    services.schedules.finish_run(run)
    _record_run(run, schedule, services, origin, actor)
    logger.info("Schedule ran", extra={"schedule_id": schedule.id, "job_id": created.job.id})
    return RunResult(run, created.job, rate=created.rate)


def _refuse(
    schedule: ExportSchedule,
    run: ScheduleRun,
    refusal: PermissionDenied | InvalidRequest | DatasetNotFound,
    services: ScheduleServices,
    *,
    origin: RequestOrigin,
    actor: Caller | None,
) -> RunResult:
    """Record the refused run and suspend the schedule: it would be refused every time."""
    if isinstance(refusal, PermissionDenied):
        reason = f"The schedule's owner may no longer run it: {refusal.message}"
    else:
        reason = f"The schedule's export is no longer valid: {refusal.message}"
    error = JobError(code=refusal.error_code, message=reason)
    run = run.model_copy(update={"outcome": "refused", "error": error, "recorded_at": utc_now()})
    services.schedules.finish_run(run)
    suspended = services.schedules.set_state(
        schedule.id, ScheduleState.SUSPENDED, utc_now(), suspension=error
    )
    services.scheduler.sync(suspended)
    _record_run(run, schedule, services, origin, actor)
    logger.warning(
        "Schedule run refused; schedule suspended",
        extra={"schedule_id": schedule.id, "error_code": refusal.error_code},
    )
    return RunResult(run, None, refusal)


# ----------------------------------------------------------------------------- helpers
def _checked(
    body: ScheduleInput, caller: Caller, services: ScheduleServices, now: datetime
) -> ExportRequest:
    """The schedule's export request, checked as a run at `now` by `caller` would be."""
    zone = schedule_zone(body.timezone)
    check_cadence(body.schedule_expression, zone, services.min_interval, now)
    request = with_schedule_zone(body.export, body.timezone)
    try:
        resolve_export(request_for_run(request, now), services.exports.catalog, caller, now)
        services.exports.delivery_policy.check(request.delivery)
    except InvalidRequest as exc:
        detail = {key: value for key, value in exc.detail.items() if key != "field"}
        raise type(exc)(f"export.{exc.field}", exc.message, detail) from None
    except DatasetNotFound as exc:
        raise type(exc)(request.dataset, "export.dataset") from None
    return request


def _owner(schedule: ExportSchedule, services: ScheduleServices) -> Caller | None:
    return services.principals.latest(schedule.org_id, schedule.owner_id)


def _job(
    job_id: str | None, schedule: ExportSchedule, services: ScheduleServices
) -> ExportJob | None:
    """The job of one of the schedule's runs: always one its owner created in its tenant (the
    caller was checked against the schedule), never anyone else's."""
    if job_id is None:
        return None
    try:
        job = services.exports.jobs.get(job_id)
    except ExportNotFound:
        return None
    return job if job.belongs_to(schedule.org_id, schedule.owner_id) else None


def _record(
    event_type: AuditEventType,
    caller: Caller,
    origin: RequestOrigin,
    services: ScheduleServices,
    schedule: ExportSchedule,
    **detail: Any,
) -> None:
    services.exports.audit.record(
        event_type,
        org_id=schedule.org_id,
        actor_id=caller.user_id,
        actor_role=caller.role,
        target_type="schedule",
        target_id=schedule.id,
        source_ip=origin.source_ip,
        request_id=origin.request_id,
        detail={
            "name": schedule.name,
            "schedule_expression": schedule.schedule_expression,
            "timezone": schedule.timezone,
            "dataset": str(schedule.export.get("dataset")),
            **detail,
        },
    )


def _record_run(
    run: ScheduleRun,
    schedule: ExportSchedule,
    services: ScheduleServices,
    origin: RequestOrigin,
    actor: Caller | None,
) -> None:
    detail: dict[str, Any] = {
        "trigger": run.trigger.value,
        "outcome": run.outcome,
        "scheduled_for": run.scheduled_for.isoformat(),
        "dataset": str(schedule.export.get("dataset")),
    }
    if run.job_id is not None:
        detail["job_id"] = run.job_id
    if run.error is not None:
        detail["error_code"] = run.error.code
    services.exports.audit.record(
        AuditEventType.SCHEDULE_RUN,
        org_id=schedule.org_id,
        actor_id=actor.user_id if actor is not None else schedule.owner_id,
        actor_role=actor.role if actor is not None else "system",
        target_type="schedule",
        target_id=schedule.id,
        source_ip=origin.source_ip,
        request_id=origin.request_id,
        detail=detail,
    )
