"""Routes of /v1/exports: each calls one use case and shapes its answer."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from pydantic import ValidationError

from dataexport import components
from dataexport.adapters.audit_store import AuditTrail
from dataexport.api.idempotency import idempotent_create
from dataexport.api.job_view import job_view
from dataexport.api.openapi_document import (
    LOCATION_HEADER,
    RATE_LIMIT_HEADERS,
    URL_TOO_LONG,
    answers,
    server_url_of,
)
from dataexport.api.page_cursors import opened_cursor, page_response
from dataexport.api.request_examples import EXPORT_REQUEST_EXAMPLES
from dataexport.api.response_models import (
    DownloadRedirect,
    ExportJobView,
    ExportPage,
    PreviewView,
    StatsView,
    model_response,
)
from dataexport.audit import AuditEventType
from dataexport.client_json import load_client_json
from dataexport.config import ApiConfig, cached_config
from dataexport.errors import (
    DataExportError,
    DatasetHidden,
    InvalidRequest,
    PermissionDenied,
    RateLimitExceeded,
    Unauthenticated,
)
from dataexport.export_job import ExportStatus, HistoryFilter
from dataexport.export_request import ExportRequest, LegalHoldInput
from dataexport.field_path import field_path
from dataexport.filters import UtcTimestamp
from dataexport.identity import Caller, RequestOrigin, Role
from dataexport.services import exports
from dataexport.services.exports import ExportServices

logger = Logger(child=True)
router = Router()  # type: ignore[no-untyped-call]

JobId = Annotated[str, Path(pattern=r"^exp_[0-9A-Za-z]{26}$", description="Export job id")]


@cache
def export_services() -> ExportServices:
    config = cached_config(ApiConfig)
    return ExportServices(
        jobs=components.job_store(config),
        objects=components.object_store(config),
        audit=components.audit_trail(config),
        control=components.control_store(config),
        queue=components.export_queue(config),
        workflow=components.export_workflow(config),
        catalog=components.catalog(config),
        download_url_ttl_seconds=config.download_url_ttl_seconds,
        exports_per_hour=config.exports_per_hour,
        tenant_exports_per_hour=dict(config.tenant_exports_per_hour),
        rows_for=components.row_sources(config),
        delivery_policy=config.delivery_policy(),
    )


def current_caller() -> Caller:
    """The caller the authorizer verified; the request body never decides who this is."""
    context = router.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    try:
        return Caller.from_authorizer_context(context)
    except ValueError:
        raise Unauthenticated("A valid bearer token is required.") from None


def tenant_user() -> Caller:
    """The caller, if they act within a tenant: operators run backups and read the audit trail,
    they do not export tenants' data."""
    caller = current_caller()
    if caller.role is Role.OPERATOR:
        raise PermissionDenied(
            "Operators manage backups and the audit trail; exports belong to a tenant's users.",
            {"role": caller.role.value},
        )
    # A schedule runs with its owner's latest claims: a token without a permission stops them.
    components.principal_store(cached_config(ApiConfig)).remember(caller)
    return caller


def request_origin() -> RequestOrigin:
    """The caller's address and API Gateway's request id, for the audit trail."""
    context = router.current_event.raw_event.get("requestContext", {})
    return RequestOrigin(
        source_ip=(context.get("identity") or {}).get("sourceIp"),
        request_id=context.get("requestId"),
    )


def resource_location(path: str) -> str:
    """`path` (`/v1/exports/exp_...`) as this client reaches it, under the stage or custom domain
    base path the request came through: a Location header the client can follow as it is."""
    event = router.current_event
    base = server_url_of(event.raw_event.get("requestContext") or {}, event.path)
    return base.rstrip("/") + path


REFUSALS_AUDITED = {
    PermissionDenied: AuditEventType.PERMISSION_DENIED,
    # Answered as "not found"; the trail still records the refused permission.
    DatasetHidden: AuditEventType.PERMISSION_DENIED,
    RateLimitExceeded: AuditEventType.RATE_LIMIT_EXCEEDED,
}


def record_refusal(error: DataExportError) -> None:
    """Audit a refused request (permission or rate limit); never turns the refusal into a 500."""
    event_type = next(
        (kind for cls, kind in REFUSALS_AUDITED.items() if isinstance(error, cls)), None
    )
    if event_type is None:
        return
    try:
        caller = current_caller()
        origin = request_origin()
        event = router.current_event
        cached_audit_trail().record(
            event_type,
            org_id=caller.org_id,
            actor_id=caller.user_id,
            actor_role=caller.role,
            target_type="route",
            target_id=f"{event.http_method} {event.path}",
            source_ip=origin.source_ip,
            request_id=origin.request_id,
            detail={"error_code": error.error_code},
        )
    except Exception:
        logger.exception("Could not record a refusal in the audit trail")


def cached_audit_trail() -> AuditTrail:
    return components.audit_trail(cached_config(ApiConfig))


@router.post(
    "/v1/exports",
    tags=["Exports"],
    summary="Create an export",
    responses=answers(
        {
            202: ("Created: the new job, queued", ExportJobView),
            200: ("The same request is already live (or the Idempotency-Key's job)", ExportJobView),
        },
        400,
        (404, "DATASET_NOT_FOUND: no such dataset for this role."),
        (409, "CONFLICT: a request with this Idempotency-Key is still being handled."),
        413,
        415,
        422,
        503,
        headers={
            202: {**LOCATION_HEADER, **RATE_LIMIT_HEADERS},
            200: {**LOCATION_HEADER, **RATE_LIMIT_HEADERS},
            429: RATE_LIMIT_HEADERS,
        },
    ),
)
def create_export(
    request: Annotated[ExportRequest, Body(openapi_examples=EXPORT_REQUEST_EXAMPLES)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Retries with the same key and body answer with the same job (24 h).",
        ),
    ] = None,
) -> Response[str]:
    caller = tenant_user()
    services = export_services()
    if idempotency_key is None:
        created = exports.create_export(caller, request, services, request_origin())
    else:
        created = idempotent_create(caller, request, idempotency_key, services, request_origin())
    job = created.job
    response = model_response(202 if created.created else 200, ExportJobView, job_view(job))
    response.headers.update(created.rate.headers())
    response.headers["Location"] = resource_location(f"/v1/exports/{job.id}")
    return response


@router.get(
    "/v1/exports",
    tags=["Exports"],
    summary="List exports, newest first",
    responses=answers({200: ("A page of exports (admins: the tenant's)", ExportPage)}, 400),
)
def list_exports(
    *,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    status: Annotated[
        ExportStatus | None, Query(description="Only jobs in this status (deleted ones too)")
    ] = None,
    dataset: Annotated[str | None, Query(max_length=64)] = None,
    created_from: Annotated[
        UtcTimestamp | None, Query(description="ISO 8601 with an offset, inclusive")
    ] = None,
    created_to: Annotated[
        UtcTimestamp | None, Query(description="ISO 8601 with an offset, exclusive")
    ] = None,
) -> Response[str]:
    caller = tenant_user()
    scope = ("exports", caller.org_id, caller.user_id)
    history = HistoryFilter(status, dataset, created_from, created_to)
    page = exports.list_exports(
        caller, limit, opened_cursor(cursor, scope), export_services(), history
    )
    return page_response(ExportPage, [job_view(job) for job in page.jobs], page.next_cursor, scope)


@router.get(
    "/v1/exports/preview",
    tags=["Exports"],
    summary="Preview an export without creating it",
    responses=answers(
        {200: ("The first rows and the estimated size", PreviewView)},
        400,
        (404, "DATASET_NOT_FOUND: no such dataset for this role."),
        503,
    )
    | URL_TOO_LONG,
)
def preview_export(
    *,
    dataset: Annotated[str, Query(min_length=1, max_length=64)],
    format: Annotated[str, Query(max_length=16)] = "csv",
    fields: Annotated[str | None, Query(max_length=8192, description="Comma-separated")] = None,
    filters: Annotated[
        str | None, Query(max_length=16384, description="JSON array, as in POST /v1/exports")
    ] = None,
    preset: Annotated[str | None, Query(max_length=16)] = None,
    start: Annotated[str | None, Query(max_length=64)] = None,
    end: Annotated[str | None, Query(max_length=64)] = None,
    options: Annotated[
        str | None, Query(max_length=4096, description="JSON object, as in POST /v1/exports")
    ] = None,
    aggregate: Annotated[
        str | None, Query(max_length=8192, description="JSON object, as in POST /v1/exports")
    ] = None,
    privacy: Annotated[
        str | None,
        Query(max_length=256, description="Comma-separated privacy transforms, as in POST"),
    ] = None,
    summary: Annotated[str | None, Query(max_length=64, description="As in POST")] = None,
    compression: Annotated[
        str | None,
        Query(max_length=16, description="As in POST: the file estimated_bytes sizes"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response[str]:
    time_range = {
        key: value
        for key, value in (("preset", preset), ("start", start), ("end", end))
        if value is not None
    }
    body = {
        "dataset": dataset,
        "format": format,
        "fields": None if fields is None else [name.strip() for name in fields.split(",")],
        "filters": _json_parameter("filters", filters, []),
        "time_range": time_range or None,
        "options": _json_parameter("options", options, {}),
        "aggregate": _json_parameter("aggregate", aggregate, None),
        "privacy": [] if not privacy else [name.strip() for name in privacy.split(",")],
        "summary": summary,
    }
    if compression is not None:
        body["compression"] = compression
    try:
        request = validated_request(body)
        preview = exports.preview_export(tenant_user(), request, limit, export_services())
    except InvalidRequest as error:
        _name_as_query_parameter(error)
        raise
    return model_response(
        200,
        PreviewView,
        {
            "dataset": request.dataset,
            "format": request.format,
            "content": preview.content,
            "content_encoding": preview.content_encoding,
            "rows": preview.rows,
            "estimated_rows": preview.estimated_rows,
            "estimated_rows_exact": preview.estimated_rows_exact,
            "estimated_bytes": preview.estimated_bytes,
            "privacy": preview.privacy,
        },
    )


def _json_parameter(name: str, raw: str | None, default: Any) -> Any:
    return default if raw is None else load_client_json(raw, field=name)


def _name_as_query_parameter(error: InvalidRequest) -> None:
    """Preview's time range comes as `preset`, `start` and `end`: name those, not time_range."""
    prefix = "time_range."
    if error.field.startswith(prefix):
        parameter = error.field.removeprefix(prefix)
        error.message = error.message.replace(error.field, parameter)
        error.field = error.detail["field"] = parameter


def validated_request(body: dict[str, Any]) -> ExportRequest:
    """`body` as an ExportRequest; the first problem as an InvalidRequest naming its field."""
    try:
        return ExportRequest.model_validate(body)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = field_path(problem.get("loc", ())) or "body"
        raise InvalidRequest(field, f"{field}: {problem.get('msg', 'invalid')}") from None


@router.get(
    "/v1/exports/stats",
    tags=["Exports"],
    summary="Export counts and volumes in a time range",
    responses=answers({200: ("Counts by status, dataset and format", StatsView)}, 400),
)
def export_stats(
    start: Annotated[
        UtcTimestamp | None,
        Query(alias="from", description="ISO 8601, inclusive (default: 30 days ago)"),
    ] = None,
    end: Annotated[
        UtcTimestamp | None,
        Query(alias="to", description="ISO 8601, exclusive (default: now)"),
    ] = None,
) -> Response[str]:
    stats = exports.export_stats(tenant_user(), start, end, export_services())
    return model_response(
        200,
        StatsView,
        {
            "from": stats.start.isoformat(),
            "to": stats.end.isoformat(),
            "exports": stats.jobs,
            "by_status": stats.by_status,
            "by_dataset": stats.by_dataset,
            "by_format": stats.by_format,
            "rows_exported": stats.rows_exported,
            "bytes_exported": stats.bytes_exported,
            "truncated": stats.truncated,
        },
    )


@router.get(
    "/v1/exports/<export_id>",
    tags=["Exports"],
    summary="An export's status, progress and result",
    responses=answers({200: ("The job", ExportJobView)}, 400, 404),
)
def get_export(export_id: JobId) -> Response[str]:
    job = exports.get_export(tenant_user(), export_id, export_services())
    return model_response(200, ExportJobView, job_view(job))


@router.get(
    "/v1/exports/<export_id>/download",
    tags=["Exports"],
    summary="Download a completed export (302 to a short-lived link)",
    responses=answers(
        {302: ("Redirect to the file (a presigned URL valid for minutes)", DownloadRedirect)},
        400,
        404,
        (409, "EXPORT_NOT_READY: not completed; `message` says whether it ever will be."),
        (410, "EXPORT_EXPIRED: the file was removed; create a new export."),
        headers={302: LOCATION_HEADER},
    ),
)
def download_export(
    export_id: JobId, file: Annotated[int | None, Query(ge=1, le=100_000)] = None
) -> Response[str]:
    _, url = exports.download_url(
        tenant_user(), export_id, export_services(), request_origin(), file
    )
    response = model_response(302, DownloadRedirect, {"download_url": url})
    response.headers.update({"Location": url, "Cache-Control": "no-store"})
    return response


@router.post(
    "/v1/exports/<export_id>/cancel",
    tags=["Exports"],
    summary="Cancel a queued or running export",
    responses=answers(
        {200: ("The cancelled job", ExportJobView)},
        400,
        404,
        (409, "CONFLICT: the export has already finished."),
        413,
        415,
    ),
)
def cancel_export(export_id: JobId) -> Response[str]:
    job = exports.cancel_export(tenant_user(), export_id, export_services(), request_origin())
    return model_response(200, ExportJobView, job_view(job))


@router.put(
    "/v1/exports/<export_id>/legal-hold",
    tags=["Exports"],
    summary="Place or lift a legal hold (admins)",
    responses=answers(
        {200: ("The job with its hold", ExportJobView)},
        400,
        404,
        (409, "CONFLICT: the export is deleted, or the hold changed meanwhile."),
        413,
        415,
    ),
)
def set_legal_hold(export_id: JobId, hold: LegalHoldInput) -> Response[str]:
    job = exports.set_legal_hold(
        tenant_user(), export_id, hold, export_services(), request_origin()
    )
    return model_response(200, ExportJobView, job_view(job))


@router.delete(
    "/v1/exports/<export_id>",
    tags=["Exports"],
    summary="Delete an export's files",
    responses=answers(
        {200: ("The job, marked deleted", ExportJobView)},
        400,
        404,
        (409, "EXPORT_NOT_READY: it is queued or running; cancel it first."),
    ),
)
def delete_export(export_id: JobId) -> Response[str]:
    job = exports.delete_export(tenant_user(), export_id, export_services(), request_origin())
    return model_response(200, ExportJobView, job_view(job))
