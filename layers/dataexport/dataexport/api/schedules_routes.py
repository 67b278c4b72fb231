"""Routes of /v1/schedules: each calls one use case and shapes its answer."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from dataexport import components
from dataexport.api.exports_routes import request_origin, resource_location, tenant_user
from dataexport.api.job_view import job_view
from dataexport.api.openapi_document import LOCATION_HEADER, RATE_LIMIT_HEADERS, answers
from dataexport.api.request_examples import SCHEDULE_EXAMPLES
from dataexport.api.response_models import (
    ScheduleDetailView,
    ScheduleList,
    ScheduleRunStarted,
    ScheduleView,
    model_response,
)
from dataexport.config import ApiConfig, cached_config
from dataexport.export_job import ExportStatus, utc_text
from dataexport.export_schedule import SCHEDULE_ID_PATTERN, ExportSchedule, ScheduleInput
from dataexport.services import schedules
from dataexport.services.schedules import RunView, ScheduleDetail, ScheduleServices

router = Router()  # type: ignore[no-untyped-call]

ScheduleId = Annotated[str, Path(pattern=SCHEDULE_ID_PATTERN, description="Schedule id")]


@cache
def schedule_services() -> ScheduleServices:
    return components.schedule_services(cached_config(ApiConfig))


def schedule_view(
    schedule: ExportSchedule, upcoming: list[datetime] | None = None
) -> dict[str, Any]:
    """The schedule's public shape; `upcoming`: its next runs, when the caller has them."""
    if upcoming is None:
        upcoming = schedule.upcoming_runs(datetime.now(UTC), 1)
    return {
        "id": schedule.id,
        "name": schedule.name,
        "description": schedule.description,
        "owner_id": schedule.owner_id,
        "schedule_expression": schedule.schedule_expression,
        "timezone": schedule.timezone,
        "export": schedule.export,
        "state": schedule.state.value,
        "suspension": schedule.suspension.model_dump() if schedule.suspension else None,
        "next_run_at": utc_text(upcoming[0]) if upcoming else None,
        "created_at": utc_text(schedule.created_at),
        "updated_at": utc_text(schedule.updated_at),
        "links": {
            "self": f"/v1/schedules/{schedule.id}",
            "run": f"/v1/schedules/{schedule.id}/run",
        },
    }


def run_view(view: RunView) -> dict[str, Any]:
    run, job = view.run, view.job
    return {
        "scheduled_for": utc_text(run.scheduled_for),
        "trigger": run.trigger.value,
        "outcome": run.outcome,
        "error": run.error.model_dump() if run.error else None,
        "job_id": run.job_id,
        "job_status": job.status.value if job is not None else None,
        "window": job_view(job)["window"] if job is not None else None,
        "job": f"/v1/exports/{run.job_id}" if run.job_id else None,
        "download": (
            f"/v1/exports/{run.job_id}/download"
            if job is not None and job.status is ExportStatus.COMPLETED
            else None
        ),
    }


def detail_view(detail: ScheduleDetail) -> dict[str, Any]:
    success, failure = detail.last_success, detail.last_failure
    return {
        **schedule_view(detail.schedule, detail.next_runs),
        "next_runs": [utc_text(moment) for moment in detail.next_runs],
        "last_success": run_view(success) if success is not None else None,
        "last_failure": run_view(failure) if failure is not None else None,
        "runs": [run_view(view) for view in detail.runs],
    }


NOT_FOUND = (404, "SCHEDULE_NOT_FOUND (or DATASET_NOT_FOUND for the export's dataset).")
ScheduleBody = Annotated[ScheduleInput, Body(openapi_examples=SCHEDULE_EXAMPLES)]


@router.post(
    "/v1/schedules",
    tags=["Schedules"],
    summary="Create a scheduled export",
    responses=answers(
        {201: ("Created", ScheduleView)},
        400,
        (404, "DATASET_NOT_FOUND: no such dataset for this role."),
        (409, "CONFLICT: the tenant has as many schedules as it may."),
        413,
        415,
        headers={201: LOCATION_HEADER},
    ),
)
def create_schedule(body: ScheduleBody) -> Response[str]:
    schedule = schedules.create_schedule(tenant_user(), body, schedule_services(), request_origin())
    response = model_response(201, ScheduleView, schedule_view(schedule))
    response.headers["Location"] = resource_location(f"/v1/schedules/{schedule.id}")
    return response


@router.get(
    "/v1/schedules",
    tags=["Schedules"],
    summary="Scheduled exports (admins: the tenant's)",
    responses=answers({200: ("The schedules", ScheduleList)}),
)
def list_schedules() -> Response[str]:
    found = schedules.list_schedules(tenant_user(), schedule_services())
    return model_response(
        200, ScheduleList, {"items": [schedule_view(schedule) for schedule in found]}
    )


@router.get(
    "/v1/schedules/<schedule_id>",
    tags=["Schedules"],
    summary="A schedule with its next and recent runs",
    responses=answers({200: ("The schedule", ScheduleDetailView)}, 400, NOT_FOUND),
)
def get_schedule(schedule_id: ScheduleId) -> Response[str]:
    detail = schedules.schedule_detail(tenant_user(), schedule_id, schedule_services())
    return model_response(200, ScheduleDetailView, detail_view(detail))


@router.put(
    "/v1/schedules/<schedule_id>",
    tags=["Schedules"],
    summary="Replace a schedule",
    responses=answers(
        {200: ("The schedule as it is now", ScheduleView)},
        400,
        NOT_FOUND,
        (409, "CONFLICT: the schedule changed meanwhile; retry."),
        413,
        415,
    ),
)
def update_schedule(schedule_id: ScheduleId, body: ScheduleBody) -> Response[str]:
    schedule = schedules.update_schedule(
        tenant_user(), schedule_id, body, schedule_services(), request_origin()
    )
    return model_response(200, ScheduleView, schedule_view(schedule))


@router.delete(
    "/v1/schedules/<schedule_id>",
    tags=["Schedules"],
    summary="Delete a schedule",
    responses=answers({200: ("The schedule, deleted", ScheduleView)}, 400, NOT_FOUND),
)
def delete_schedule(schedule_id: ScheduleId) -> Response[str]:
    schedule = schedules.delete_schedule(
        tenant_user(), schedule_id, schedule_services(), request_origin()
    )
    view = {**schedule_view(schedule), "state": "deleted", "next_run_at": None}
    return model_response(200, ScheduleView, view)


@router.post(
    "/v1/schedules/<schedule_id>/pause",
    tags=["Schedules"],
    summary="Pause a schedule",
    responses=answers({200: ("The schedule", ScheduleView)}, 400, NOT_FOUND, 413, 415),
)
def pause_schedule(schedule_id: ScheduleId) -> Response[str]:
    schedule = schedules.set_paused(
        tenant_user(), schedule_id, True, schedule_services(), request_origin()
    )
    return model_response(200, ScheduleView, schedule_view(schedule))


@router.post(
    "/v1/schedules/<schedule_id>/resume",
    tags=["Schedules"],
    summary="Resume a paused or suspended schedule",
    responses=answers({200: ("The schedule", ScheduleView)}, 400, NOT_FOUND, 413, 415),
)
def resume_schedule(schedule_id: ScheduleId) -> Response[str]:
    schedule = schedules.set_paused(
        tenant_user(), schedule_id, False, schedule_services(), request_origin()
    )
    return model_response(200, ScheduleView, schedule_view(schedule))


@router.post(
    "/v1/schedules/<schedule_id>/run",
    tags=["Schedules"],
    summary="Run a schedule now (counts against the owner's hourly limit)",
    responses=answers(
        {202: ("The run and the export it started", ScheduleRunStarted)},
        400,
        NOT_FOUND,
        (409, "CONFLICT: the schedule is suspended, or this run is being started."),
        413,
        415,
        headers={202: {**LOCATION_HEADER, **RATE_LIMIT_HEADERS}, 429: RATE_LIMIT_HEADERS},
    ),
)
def run_schedule(schedule_id: ScheduleId) -> Response[str]:
    result = schedules.run_now(tenant_user(), schedule_id, schedule_services(), request_origin())
    if result.refusal is not None:
        raise result.refusal
    body = run_view(RunView(result.run, result.job))
    if result.job is not None:
        body["export"] = job_view(result.job)
    response = model_response(202, ScheduleRunStarted, body)
    if result.rate is not None:
        response.headers.update(result.rate.headers())
    if result.job is not None:
        response.headers["Location"] = resource_location(f"/v1/exports/{result.job.id}")
    return response
