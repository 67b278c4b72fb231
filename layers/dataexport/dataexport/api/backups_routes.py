"""Routes of /v1/backups: database backups (operators only)."""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from dataexport import components
from dataexport.api.exports_routes import current_caller, json_response, request_origin
from dataexport.api.page_cursors import opened_cursor, sealed_cursor
from dataexport.backup import BACKUP_ID_PATTERN, BackupOptions
from dataexport.config import ApiConfig, cached_config
from dataexport.services import backups
from dataexport.services.backups import BackupServices

router = Router()  # type: ignore[no-untyped-call]

BackupId = Annotated[str, Path(pattern=BACKUP_ID_PATTERN, description="Backup id")]


@cache
def backup_services() -> BackupServices:
    return components.backup_services(cached_config(ApiConfig))


@router.post("/v1/backups")
def create_backup(
    options: Annotated[BackupOptions | None, Body(description="What to dump")] = None,
) -> Response[str]:
    backup = backups.request_backup(
        current_caller(), options or BackupOptions(), backup_services(), request_origin()
    )
    response = json_response(202, backup.view())
    response.headers["Location"] = f"/v1/backups/{backup.id}"
    return response


@router.get("/v1/backups")
def list_backups(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response[str]:
    caller = current_caller()
    scope = ("backups", caller.user_id)
    page = backups.list_backups(caller, backup_services(), limit, opened_cursor(cursor, scope))
    return json_response(
        200,
        {
            "items": [backup.view() for backup in page.backups],
            "next_cursor": sealed_cursor(page.next_cursor, scope),
        },
    )


@router.get("/v1/backups/<backup_id>")
def get_backup(backup_id: BackupId) -> Response[str]:
    backup = backups.get_backup(current_caller(), backup_id, backup_services())
    return json_response(200, backup.view())


@router.get("/v1/backups/<backup_id>/download")
def download_backup(backup_id: BackupId) -> Response[str]:
    url = backups.download_url(current_caller(), backup_id, backup_services(), request_origin())
    return Response(
        status_code=302,
        headers={"Location": url, "Cache-Control": "no-store"},
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"download_url": url}),
    )
