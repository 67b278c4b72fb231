"""The export jobs as their users see them: create, list, read, download, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aws_lambda_powertools import Logger

from dataexport.adapters.job_store import JobPage, JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.catalog.loader import Catalog
from dataexport.errors import (
    DataExportError,
    ExportExpired,
    ExportNotFound,
    ExportNotReady,
    PermissionDenied,
)
from dataexport.export_job import (
    ExportJob,
    ExportStatus,
    JobError,
    new_job_id,
    utc_now,
)
from dataexport.export_request import ExportRequest, ResolvedExport, resolve_export
from dataexport.identity import DATA_EXPORT_PERMISSION, Caller

logger = Logger(child=True)


@dataclass(frozen=True)
class ExportServices:
    """What the API's use cases need; built once per process by the API function."""

    jobs: JobStore
    objects: ObjectStore
    workflow: ExportWorkflow
    catalog: Catalog
    download_url_ttl_seconds: int


def _require_export_permission(caller: Caller) -> None:
    if not caller.can(DATA_EXPORT_PERMISSION):
        raise PermissionDenied(
            f"The {DATA_EXPORT_PERMISSION} permission is required.",
            {"permission": DATA_EXPORT_PERMISSION},
        )


def file_name_for(job_id: str, resolved: ResolvedExport) -> str:
    """`<dataset>-<from>-<to>-<id>.<ext>`, with the time range's dates in the export's zone."""

    def day(value: datetime | None, fallback: str) -> str:
        if value is None:
            return fallback
        return value.astimezone(resolved.options.timezone).strftime("%Y%m%d")

    window = resolved.window
    start, end = day(window.start, "start"), day(window.end, "now")
    return f"{resolved.dataset.name}-{start}-{end}-{job_id}.{resolved.writer.extension}"


def create_export(caller: Caller, request: ExportRequest, services: ExportServices) -> ExportJob:
    """Validate the request, record the job as queued and start its execution."""
    _require_export_permission(caller)
    resolved = resolve_export(request, services.catalog, caller)
    job_id = new_job_id()
    job = ExportJob(
        id=job_id,
        org_id=caller.org_id,
        owner_id=caller.user_id,
        dataset=resolved.dataset.name,
        format=request.format,
        fields=resolved.fields,
        filters=[item.model_dump() for item in request.filters],
        time_range=request.time_range.model_dump() if request.time_range else None,
        options=request.options.model_dump(),
        owner_scoped=not caller.is_admin and resolved.dataset.owner_column is not None,
        file_name=file_name_for(job_id, resolved),
        created_at=utc_now(),
    )
    services.jobs.create(job)
    try:
        execution_arn = services.workflow.start(job.id)
    except Exception:
        # Nothing was started: record why instead of leaving a job queued forever.
        logger.exception("Could not start the export execution", extra={"job_id": job.id})
        services.jobs.transition(
            job.id,
            ExportStatus.FAILED,
            error=JobError(code="INTERNAL", message="The export could not be started."),
            completed_at=utc_now(),
        )
        raise DataExportError("The export could not be started; try again later.") from None
    services.jobs.update_fields(job.id, execution_arn=execution_arn)
    logger.info("Export created", extra={"job_id": job.id, "dataset": job.dataset})
    return job.model_copy(update={"execution_arn": execution_arn})


def get_export(caller: Caller, job_id: str, services: ExportServices) -> ExportJob:
    """The job if the caller may see it; otherwise 'not found', never 'forbidden'."""
    job = services.jobs.get(job_id)
    visible = job.org_id == caller.org_id and (caller.is_admin or job.owner_id == caller.user_id)
    if not visible or job.status is ExportStatus.DELETED:
        raise ExportNotFound(job_id)
    return job


def list_exports(
    caller: Caller, limit: int, cursor: str | None, services: ExportServices
) -> JobPage:
    """Newest first: an admin's whole tenant, a member's own jobs."""
    if caller.is_admin:
        return services.jobs.list_for_org(caller.org_id, limit, cursor)
    return services.jobs.list_for_owner(caller.org_id, caller.user_id, limit, cursor)


def download_url(caller: Caller, job_id: str, services: ExportServices) -> tuple[ExportJob, str]:
    """A short-lived presigned URL for a completed export."""
    _require_export_permission(caller)
    job = get_export(caller, job_id, services)
    if job.status is ExportStatus.EXPIRED or (
        job.status is ExportStatus.COMPLETED and job.is_due_for_expiry(utc_now())
    ):
        raise ExportExpired(f"Export {job_id} has expired; create a new export.", {"id": job_id})
    if job.status is not ExportStatus.COMPLETED or job.s3_key is None:
        raise ExportNotReady(
            f"Export {job_id} is {job.status.value}; it can be downloaded once completed.",
            {"id": job_id, "status": job.status.value},
        )
    url = services.objects.presigned_download_url(
        job.s3_key, job.file_name, services.download_url_ttl_seconds
    )
    logger.info("Download link issued", extra={"job_id": job.id})
    return job, url


def delete_export(caller: Caller, job_id: str, services: ExportServices) -> ExportJob:
    """Delete the export's file and mark it deleted; running jobs must be cancelled first."""
    job = get_export(caller, job_id, services)
    if job.legal_hold:
        raise PermissionDenied(
            f"Export {job_id} is under legal hold and cannot be deleted.", {"id": job_id}
        )
    if job.is_live:
        raise ExportNotReady(
            f"Export {job_id} is {job.status.value}; cancel it before deleting it.",
            {"id": job_id, "status": job.status.value},
        )
    if job.s3_key is not None and job.status is ExportStatus.COMPLETED:
        services.objects.delete(job.s3_key)
    deleted = services.jobs.transition(job.id, ExportStatus.DELETED)
    logger.info("Export deleted", extra={"job_id": job.id})
    return deleted
