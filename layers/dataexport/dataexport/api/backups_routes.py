"""Routes of /v1/backups: database backups (operators only)."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from dataexport import components
from dataexport.api.exports_routes import current_caller, request_origin, resource_location
from dataexport.api.openapi_document import LOCATION_HEADER, answers
from dataexport.api.page_cursors import opened_cursor, page_response
from dataexport.api.response_models import BackupPage, BackupView, DownloadRedirect, model_response
from dataexport.backup import BACKUP_ID_PATTERN, BackupOptions
from dataexport.config import ApiConfig, cached_config
from dataexport.services import backups
from dataexport.services.backups import BackupServices

router = Router()  # type: ignore[no-untyped-call]

BackupId = Annotated[str, Path(pattern=BACKUP_ID_PATTERN, description="Backup id")]


@cache
def backup_services() -> BackupServices:
    return components.backup_services(cached_config(ApiConfig))


@router.post(
    "/v1/backups",
    tags=["Backups"],
    summary="Start a database backup (operators)",
    responses=answers(
        {202: ("Started: the backup, running", BackupView)},
        400,
        (409, "CONFLICT: another backup is running."),
        413,
        415,
        (503, "BACKUPS_NOT_CONFIGURED: this deployment has no backup task."),
        headers={202: LOCATION_HEADER},
    ),
)
def create_backup(
    options: Annotated[BackupOptions | None, Body(description="What to dump")] = None,
) -> Response[str]:
    backup = backups.request_backup(
        current_caller(), options or BackupOptions(), backup_services(), request_origin()
    )
    response = model_response(202, BackupView, backup.view())
    response.headers["Location"] = resource_location(f"/v1/backups/{backup.id}")
    return response


@router.get(
    "/v1/backups",
    tags=["Backups"],
    summary="Backups, newest first (operators)",
    responses=answers({200: ("A page of backups", BackupPage)}, 400),
)
def list_backups(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response[str]:
    caller = current_caller()
    scope = ("backups", caller.user_id)
    page = backups.list_backups(caller, backup_services(), limit, opened_cursor(cursor, scope))
    items = [backup.view() for backup in page.backups]
    return page_response(BackupPage, items, page.next_cursor, scope)


@router.get(
    "/v1/backups/<backup_id>",
    tags=["Backups"],
    summary="One backup (operators)",
    responses=answers({200: ("The backup", BackupView)}, 400, (404, "BACKUP_NOT_FOUND")),
)
def get_backup(backup_id: BackupId) -> Response[str]:
    backup = backups.get_backup(current_caller(), backup_id, backup_services())
    return model_response(200, BackupView, backup.view())


@router.get(
    "/v1/backups/<backup_id>/download",
    tags=["Backups"],
    summary="Download a completed backup (302 to a short-lived link)",
    responses=answers(
        {302: ("Redirect to the archive (a presigned URL valid for minutes)", DownloadRedirect)},
        400,
        (404, "BACKUP_NOT_FOUND"),
        (409, "BACKUP_NOT_READY: still running, or failed."),
        (410, "BACKUP_EXPIRED: the archive was removed."),
        headers={302: LOCATION_HEADER},
    ),
)
def download_backup(backup_id: BackupId) -> Response[str]:
    url = backups.download_url(current_caller(), backup_id, backup_services(), request_origin())
    response = model_response(302, DownloadRedirect, {"download_url": url})
    response.headers.update({"Location": url, "Cache-Control": "no-store"})
    return response
