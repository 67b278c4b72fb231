"""Routes of /v1/exports: each calls one use case and shapes its answer."""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from dataexport import components
from dataexport.api.job_view import job_view
from dataexport.config import ApiConfig, cached_config
from dataexport.errors import Unauthenticated
from dataexport.export_request import ExportRequest
from dataexport.identity import Caller
from dataexport.services import exports
from dataexport.services.exports import ExportServices

router = Router()  # type: ignore[no-untyped-call]

JobId = Annotated[str, Path(pattern=r"^exp_[0-9A-Za-z]{26}$", description="Export job id")]


@cache
def export_services() -> ExportServices:
    config = cached_config(ApiConfig)
    return ExportServices(
        jobs=components.job_store(config),
        objects=components.object_store(config),
        workflow=components.export_workflow(config),
        catalog=components.catalog(config),
        download_url_ttl_seconds=config.download_url_ttl_seconds,
    )


def current_caller() -> Caller:
    """The caller the authorizer verified; the request body never decides who this is."""
    context = router.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    try:
        return Caller.from_authorizer_context(context)
    except ValueError:
        raise Unauthenticated("A valid bearer token is required.") from None


def _json(status: int, body: Any) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body)
    )


@router.post("/v1/exports")
def create_export(request: ExportRequest) -> Response[str]:
    job = exports.create_export(current_caller(), request, export_services())
    response = _json(202, job_view(job))
    response.headers["Location"] = f"/v1/exports/{job.id}"
    return response


@router.get("/v1/exports")
def list_exports(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response[str]:
    page = exports.list_exports(current_caller(), limit, cursor, export_services())
    return _json(
        200, {"items": [job_view(job) for job in page.jobs], "next_cursor": page.next_cursor}
    )


@router.get("/v1/exports/<export_id>")
def get_export(export_id: JobId) -> Response[str]:
    return _json(200, job_view(exports.get_export(current_caller(), export_id, export_services())))


@router.get("/v1/exports/<export_id>/download")
def download_export(export_id: JobId) -> Response[str]:
    _, url = exports.download_url(current_caller(), export_id, export_services())
    return Response(
        status_code=302,
        headers={"Location": url, "Cache-Control": "no-store"},
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"download_url": url}),
    )


@router.delete("/v1/exports/<export_id>")
def delete_export(export_id: JobId) -> Response[str]:
    job = exports.delete_export(current_caller(), export_id, export_services())
    return _json(200, job_view(job))
