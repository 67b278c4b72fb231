"""The export jobs as their users see them: create, list, read, download, cancel, delete."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.control_store import ControlStore
from dataexport.adapters.job_store import JobPage, JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.audit import AuditEventType
from dataexport.catalog.loader import Catalog
from dataexport.delivery import DeliveryPolicy, LinkDelivery, initial_record
from dataexport.errors import (
    Conflict,
    DataExportError,
    ExportExpired,
    ExportNotDownloadable,
    ExportNotFound,
    ExportNotReady,
    IllegalTransition,
    InvalidDateRange,
    InvalidRequest,
    PermissionDenied,
    RateLimitExceeded,
)
from dataexport.export_job import (
    UNDELETED_JOBS,
    ExportJob,
    ExportStatus,
    HistoryFilter,
    JobError,
    export_key,
    new_job_id,
    numbered_file_name,
    utc_now,
)
from dataexport.export_request import (
    ExportRequest,
    LegalHoldInput,
    ResolvedExport,
    resolve_export,
)
from dataexport.formats.size_estimate import SAMPLE_ROWS, estimated_file_bytes
from dataexport.identity import DATA_EXPORT_PERMISSION, Caller, RequestOrigin
from dataexport.query_builder import RowScope
from dataexport.rate_limit import RateDecision, limit_for
from dataexport.row_sources import RowSourceFor
from dataexport.services.export_files import clear_staging, manifest_file_name, remove_files
from dataexport.services.export_queue import ExportQueue

logger = Logger(child=True)

# Identical requests are folded into a live job for as long as a job may reasonably run.
LIVE_REQUEST_TTL = timedelta(days=2)
LIVE_JOB_WAIT_SECONDS = 2.0


@dataclass(frozen=True, kw_only=True)
class CreationServices:
    """What creating an export needs: the API's requests and schedules' runs both create."""

    jobs: JobStore
    audit: AuditTrail
    control: ControlStore
    queue: ExportQueue
    catalog: Catalog
    exports_per_hour: int
    tenant_exports_per_hour: dict[str, int]
    # What the deployment allows as delivery targets (checked when a job is created).
    delivery_policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    def rate_limit_for(self, org_id: str) -> int:
        return limit_for(org_id, self.exports_per_hour, self.tenant_exports_per_hour)


@dataclass(frozen=True, kw_only=True)
class ExportServices(CreationServices):
    """What the API's use cases need; built once per process by the API function."""

    objects: ObjectStore
    workflow: ExportWorkflow
    download_url_ttl_seconds: int
    rows_for: RowSourceFor


@dataclass(frozen=True)
class CreatedExport:
    """The answer to a create: the job, whether it was new, and the caller's rate-limit state."""

    job: ExportJob
    created: bool
    rate: RateDecision


def require_export_permission(caller: Caller) -> None:
    if not caller.can(DATA_EXPORT_PERMISSION):
        raise PermissionDenied(
            f"The {DATA_EXPORT_PERMISSION} permission is required.",
            {"permission": DATA_EXPORT_PERMISSION},
        )


def file_name_for(job_id: str, resolved: ResolvedExport) -> str:
    """`<dataset>-<from>-<to>-<id>.<ext>`, with the time range's dates in the export's zone
    (`<dataset>-<summary>-...` for a summary)."""

    def day(value: datetime | None, fallback: str) -> str:
        if value is None:
            return fallback
        return value.astimezone(resolved.options.timezone).strftime("%Y%m%d")

    window = resolved.window
    start, end = day(window.start, "start"), day(window.end, "now")
    extension = resolved.writer.extension + resolved.compression.suffix
    name = resolved.dataset.name
    if resolved.summary is not None:
        name += "-" + resolved.summary.name.replace("_", "-")
    return f"{name}-{start}-{end}-{job_id}.{extension}"


def stored_time_range(request: ExportRequest) -> dict[str, str] | None:
    """The request's time range as the job keeps it: only the keys it gave."""
    if request.time_range is None:
        return None
    return request.time_range.model_dump(mode="json", exclude_none=True)


def stored_aggregate(request: ExportRequest) -> dict[str, Any] | None:
    """The request's aggregate as the job keeps it."""
    if request.aggregate is None:
        return None
    return request.aggregate.model_dump(mode="json", exclude_none=True)


def request_hash(request: ExportRequest, resolved: ResolvedExport) -> str:
    """A digest that is equal for requests that would export the same thing."""
    normalized = {
        "dataset": resolved.dataset.name,
        "format": request.format,
        "compression": resolved.compression.value,
        "max_file_size_mb": request.max_file_size_mb,
        "fields": resolved.fields,
        "filters": sorted(
            json.dumps(item.model_dump(), sort_keys=True, default=str) for item in request.filters
        ),
        "time_range": stored_time_range(request),
        "options": request.options.model_dump(),
        "aggregate": stored_aggregate(request),
        "summary": request.summary,
        # The profile in effect, forced transforms included.
        "privacy": resolved.privacy.names(),
    }
    if not isinstance(request.delivery, LinkDelivery):
        # Only requests going to the same place are the same request.
        normalized["delivery"] = request.delivery.model_dump(mode="json")
    return hashlib.sha256(json.dumps(normalized, sort_keys=True).encode()).hexdigest()


def visible_to(caller: Caller, job: ExportJob) -> bool:
    """Whether the caller may see the job: an admin, their tenant's; a member, their own.

    Every job handed to a caller passes this, whatever key found it, so a store key that
    pointed at another's job could still not show it to them."""
    return job.belongs_to(caller.org_id, None if caller.is_admin else caller.user_id)


def _live_job(caller: Caller, job_id: str | None, services: CreationServices) -> ExportJob | None:
    """The live job the caller's identical request was folded into (None: none of theirs)."""
    if job_id is None:
        return None
    # The job is written right after its live-request claim: allow a concurrent creator that
    # much time before concluding it is gone.
    deadline = time.monotonic() + LIVE_JOB_WAIT_SECONDS
    while True:
        try:
            job = services.jobs.get(job_id)
        except ExportNotFound:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
            continue
        return job if job.is_live and job.belongs_to(caller.org_id, caller.user_id) else None


def record(
    event_type: AuditEventType,
    caller: Caller,
    origin: RequestOrigin,
    services: CreationServices,
    job: ExportJob,
    **detail: str,
) -> None:
    """Append what the caller did to their tenant's audit trail (before answering them)."""
    services.audit.record(
        event_type,
        org_id=caller.org_id,
        actor_id=caller.user_id,
        actor_role=caller.role,
        target_type="export",
        target_id=job.id,
        source_ip=origin.source_ip,
        request_id=origin.request_id,
        detail={"dataset": job.dataset, "format": job.format, **detail},
    )


@dataclass(frozen=True)
class ScheduledCreation:
    """A job a schedule creates. Each run is a job of its own, never folded into a live one;
    a run on the schedule's clock is bounded by the schedule's cadence rather than the owner's
    hourly limit, while a run asked for by hand counts against it like any export."""

    schedule_id: str
    rate_limited: bool


def create_export(
    caller: Caller,
    request: ExportRequest,
    services: CreationServices,
    origin: RequestOrigin,
    scheduled: ScheduledCreation | None = None,
) -> CreatedExport:
    """Validate, fold into an identical live job, apply the rate limit, queue and start."""
    require_export_permission(caller)
    now = utc_now()
    resolved = resolve_export(request, services.catalog, caller, now)
    services.delivery_policy.check(request.delivery)
    digest = request_hash(request, resolved)
    limit = services.rate_limit_for(caller.org_id)
    previous = None
    if scheduled is None:
        previous = services.control.live_job_for(caller.org_id, caller.user_id, digest)
        live = _live_job(caller, previous, services)
        if live is not None:
            rate = services.control.rate_state(caller.org_id, caller.user_id, limit, utc_now())
            return CreatedExport(live, created=False, rate=rate)

    if scheduled is not None and not scheduled.rate_limited:
        rate = services.control.rate_state(caller.org_id, caller.user_id, limit, utc_now())
    else:
        rate = services.control.admit(caller.org_id, caller.user_id, limit, utc_now())
        if not rate.allowed:
            raise RateLimitExceeded(
                f"At most {limit} exports may be created per hour; "
                f"try again in {rate.retry_after_seconds} seconds.",
                rate.retry_after_seconds,
                rate.headers(),
            )
    job_id = new_job_id()
    if scheduled is None and not services.control.claim_live_request(
        caller.org_id,
        caller.user_id,
        digest,
        job_id=job_id,
        replacing=previous,
        expires_at=now + LIVE_REQUEST_TTL,
    ):
        # An identical request won the race: answer with its job.
        winner = _live_job(
            caller, services.control.live_job_for(caller.org_id, caller.user_id, digest), services
        )
        if winner is not None:
            return CreatedExport(winner, created=False, rate=rate)
        raise Conflict("An identical export is being created; retry in a moment.")
    job = ExportJob(
        id=job_id,
        org_id=caller.org_id,
        owner_id=caller.user_id,
        dataset=resolved.dataset.name,
        format=request.format,
        compression=resolved.compression.value,
        max_file_size_mb=request.max_file_size_mb,
        fields=resolved.fields,
        filters=[item.model_dump() for item in request.filters],
        time_range=stored_time_range(request),
        options=request.options.model_dump(),
        aggregate=stored_aggregate(request),
        summary=request.summary,
        privacy=resolved.privacy.names(),
        owner_scoped=_owner_scoped(caller, resolved),
        request_hash=digest,
        file_name=file_name_for(job_id, resolved),
        schedule_id=scheduled.schedule_id if scheduled is not None else None,
        delivery=request.delivery,
        delivery_record=initial_record(request.delivery),
        created_at=now,
    )
    services.jobs.create(job)
    schedule_detail = {"schedule_id": scheduled.schedule_id} if scheduled is not None else {}
    record(AuditEventType.DATA_EXPORT, caller, origin, services, job, **schedule_detail)
    _start_queued(job, services)
    logger.info("Export created", extra={"job_id": job.id, "dataset": job.dataset})
    return CreatedExport(services.jobs.get(job.id), created=True, rate=rate)


def _start_queued(job: ExportJob, services: CreationServices) -> None:
    """Start the tenant's queue (this job included, if a slot is free and it is next)."""
    try:
        services.queue.drain(job.org_id)
    except Exception:
        # Nothing may stay queued without a way to start: record why and free the slot.
        logger.exception("Could not start the export execution", extra={"job_id": job.id})
        services.jobs.transition(
            job.id,
            ExportStatus.FAILED,
            error=JobError(code="INTERNAL", message="The export could not be started."),
            completed_at=utc_now(),
        )
        services.control.release_running_slot(job.org_id, job.id)
        raise DataExportError("The export could not be started; try again later.") from None


def get_export(caller: Caller, job_id: str, services: ExportServices) -> ExportJob:
    """The job if the caller may see it; otherwise 'not found', never 'forbidden'."""
    job = services.jobs.get(job_id)
    if not visible_to(caller, job) or job.status is ExportStatus.DELETED:
        raise ExportNotFound(job_id)
    return job


def list_exports(
    caller: Caller,
    limit: int,
    cursor: str | None,
    services: ExportServices,
    history: HistoryFilter = UNDELETED_JOBS,
) -> JobPage:
    """Newest first: an admin's whole tenant, a member's own jobs; deleted ones only when
    `history` asks for that status."""
    start, end = history.created_from, history.created_to
    for name, moment in (("created_from", start), ("created_to", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequest(name, f"{name} needs a UTC offset (e.g. Z).")
    if start is not None and end is not None and start >= end:
        raise InvalidDateRange("created_from", "created_from must be before created_to.")
    if caller.is_admin:
        page = services.jobs.list_for_org(caller.org_id, limit, cursor, history)
    else:
        page = services.jobs.list_for_owner(caller.org_id, caller.user_id, limit, cursor, history)
    return JobPage([job for job in page.jobs if visible_to(caller, job)], page.next_cursor)


# A preview counts rows exactly up to this many, and asks PostgreSQL's planner beyond.
PREVIEW_COUNT_BOUND = 100_000


@dataclass(frozen=True)
class ExportPreview:
    content: str
    # "utf-8" for text formats; a workbook or Parquet file comes whole, in base64.
    content_encoding: str
    rows: int
    estimated_rows: int
    estimated_rows_exact: bool
    estimated_bytes: int
    # The privacy profile applied to the rows shown, as an export would apply it.
    privacy: list[str]


def preview_export(
    caller: Caller, request: ExportRequest, limit: int, services: ExportServices
) -> ExportPreview:
    """The first `limit` rows of a request, formatted exactly as its file would hold them
    (uncompressed), how many rows the whole export would have, and how many bytes its file
    (compressed as asked) would hold, estimated from a fixed sample of rows; no job."""
    require_export_permission(caller)
    resolved = resolve_export(request, services.catalog, caller, utc_now())
    scope = RowScope(
        org_id=caller.org_id,
        owner_id=caller.user_id if _owner_scoped(caller, resolved) else None,
    )
    source = services.rows_for(resolved.dataset)
    # One read serves the rows shown and the sample the size is estimated from.
    sample = source.first_rows(resolved, scope, max(limit, SAMPLE_ROWS))
    rows = sample[:limit]
    estimate = source.estimate(resolved, scope, PREVIEW_COUNT_BOUND)
    content = resolved.writer.whole_file(resolved.columns, resolved.options, rows)
    estimated_bytes = estimated_file_bytes(
        resolved.writer,
        resolved.columns,
        resolved.options,
        compression=resolved.compression,
        sample=sample,
        total_rows=estimate.rows,
    )
    binary = resolved.writer.compresses_itself
    return ExportPreview(
        content=base64.b64encode(content).decode() if binary else content.decode("utf-8"),
        content_encoding="base64" if binary else "utf-8",
        rows=len(rows),
        estimated_rows=estimate.rows,
        estimated_rows_exact=estimate.exact,
        estimated_bytes=estimated_bytes,
        privacy=resolved.privacy.names(),
    )


def _owner_scoped(caller: Caller, resolved: ResolvedExport) -> bool:
    """Members see only their own rows of datasets that have an owner."""
    return not caller.is_admin and resolved.dataset.owner_column is not None


# Stats read at most this many jobs; beyond, the answer says it is truncated.
MAX_STATS_JOBS = 10_000
DEFAULT_STATS_DAYS = 30


@dataclass(frozen=True)
class ExportStats:
    start: datetime
    end: datetime
    jobs: int
    by_status: dict[str, int]
    by_dataset: dict[str, int]
    by_format: dict[str, int]
    rows_exported: int
    bytes_exported: int
    truncated: bool


def export_stats(
    caller: Caller, start: datetime | None, end: datetime | None, services: ExportServices
) -> ExportStats:
    """Counts of the exports created in [start, end) (default: the last 30 days): an admin's
    whole tenant, a member's own; rows and bytes of those that completed."""
    if (start is not None and start.tzinfo is None) or (end is not None and end.tzinfo is None):
        raise InvalidRequest("from", "from and to need a UTC offset (e.g. Z).")
    end = end or utc_now()
    if start is None:
        # A `to` in the first days of year 1 has no 30 days before it: count from the first.
        earliest = datetime.min.replace(tzinfo=UTC)
        start = max(earliest + timedelta(days=DEFAULT_STATS_DAYS), end) - timedelta(
            days=DEFAULT_STATS_DAYS
        )
    if start >= end:
        raise InvalidDateRange("from", "from must be before to.")
    owner = None if caller.is_admin else caller.user_id
    jobs = services.jobs.created_between(caller.org_id, owner, start, end, MAX_STATS_JOBS + 1)
    jobs = [job for job in jobs if visible_to(caller, job)]
    truncated = len(jobs) > MAX_STATS_JOBS
    jobs = jobs[:MAX_STATS_JOBS]
    completed = [job for job in jobs if job.completed_at is not None and job.bytes is not None]
    return ExportStats(
        start=start,
        end=end,
        jobs=len(jobs),
        by_status=dict(Counter(job.status.value for job in jobs)),
        by_dataset=dict(Counter(job.dataset for job in jobs)),
        by_format=dict(Counter(job.format for job in jobs)),
        rows_exported=sum(job.rows_exported or 0 for job in completed),
        bytes_exported=sum(job.bytes or 0 for job in completed),
        truncated=truncated,
    )


def download_url(
    caller: Caller,
    job_id: str,
    services: ExportServices,
    origin: RequestOrigin,
    file_number: int | None = None,
) -> tuple[ExportJob, str]:
    """A short-lived presigned URL for a completed export: its file, or for one split into
    files its manifest.json or file `file_number` (from 1)."""
    require_export_permission(caller)
    job = get_export(caller, job_id, services)
    if job.status is ExportStatus.EXPIRED or (
        job.status is ExportStatus.COMPLETED and job.is_due_for_expiry(utc_now())
    ):
        raise ExportExpired(f"Export {job_id} has expired; create a new export.", {"id": job_id})
    if job.status in (ExportStatus.CANCELLED, ExportStatus.FAILED):
        raise ExportNotDownloadable(
            f"Export {job_id} is {job.status.value}; it has no file and never will. "
            "Create a new export.",
            {"id": job_id, "status": job.status.value},
        )
    if job.status is not ExportStatus.COMPLETED or job.s3_key is None:
        raise ExportNotReady(
            f"Export {job_id} is {job.status.value}; it can be downloaded once completed.",
            {"id": job_id, "status": job.status.value},
        )
    key, file_name = download_target(job, file_number)
    record(AuditEventType.DATA_EXPORTED, caller, origin, services, job)
    url = services.objects.presigned_download_url(key, file_name, services.download_url_ttl_seconds)
    logger.info("Download link issued", extra={"job_id": job.id})
    return job, url


def download_target(job: ExportJob, file_number: int | None = None) -> tuple[str, str]:
    """The S3 key and download name of what was asked for: the file, or a split export's
    manifest.json (or its file `file_number`)."""
    assert job.s3_key is not None
    if file_number is None:
        return job.s3_key, manifest_file_name(job) if job.is_split else job.file_name
    if not job.is_split:
        raise InvalidRequest("file", f"Export {job.id} is one file; ask for it without `file`.")
    if not 1 <= file_number <= job.file_count:
        raise InvalidRequest(
            "file",
            f"Export {job.id} has files 1 to {job.file_count}; there is no file {file_number}.",
            {"files": job.file_count},
        )
    listed = job.file(file_number)
    if listed is not None:
        return listed.s3_key, listed.file_name
    # Past the files the job lists: named as every file is (the manifest has them all).
    name = numbered_file_name(job.file_name, file_number)
    return export_key(job, name), name


def cancel_export(
    caller: Caller, job_id: str, services: ExportServices, origin: RequestOrigin
) -> ExportJob:
    """Stop a queued or running export: mark it cancelled, stop its execution, remove what it
    wrote so far, and hand its running slot to the tenant's next queued export.

    Cancelling a cancelled job answers with it again; a job that already ended is a conflict.
    """
    require_export_permission(caller)
    job = get_export(caller, job_id, services)
    if not job.is_live and job.status is not ExportStatus.CANCELLED:
        raise _not_cancellable(job)
    if job.status is not ExportStatus.CANCELLED:
        job, cancelled_now = _mark_cancelled(job, services)
        if cancelled_now:
            record(AuditEventType.EXPORT_CANCELLED, caller, origin, services, job)
    # Each of these is idempotent: a repeated cancel finishes what an interrupted one began.
    # Executions are named after their job, so this also stops one started after `job` was read.
    services.workflow.stop(job.execution_arn or services.workflow.execution_arn(job.id))
    _remove_partial_output(job, services.objects)
    services.queue.finished(job.org_id, job.id)
    logger.info("Export cancelled", extra={"job_id": job.id})
    return job


def _mark_cancelled(job: ExportJob, services: ExportServices) -> tuple[ExportJob, bool]:
    """The cancelled job, and whether this call cancelled it (rather than a concurrent one)."""
    try:
        # The conditional write settles races with the steps: a job that completed or failed
        # meanwhile stays so.
        cancelled = services.jobs.transition(job.id, ExportStatus.CANCELLED, completed_at=utc_now())
    except IllegalTransition:
        current = services.jobs.get(job.id)
        if current.status is ExportStatus.CANCELLED:
            return current, False
        raise _not_cancellable(current) from None
    return cancelled, True


def _not_cancellable(job: ExportJob) -> Conflict:
    return Conflict(
        f"Export {job.id} is {job.status.value}; only a queued or running export can be cancelled.",
        {"id": job.id, "status": job.status.value},
    )


def _remove_partial_output(job: ExportJob, objects: ObjectStore) -> None:
    """Abort the job's unfinished uploads and delete its staging parts and any final object.

    A Format step still running when this runs stops by itself at its next progress write and
    removes what it wrote after this (see export_steps.format_partition).
    """
    clear_staging(job.id, objects)
    remove_files(job, objects)


# A hold keeps a file that exists or will: not one already expired, deleted or never made.
HOLDABLE = frozenset({ExportStatus.QUEUED, ExportStatus.RUNNING, ExportStatus.COMPLETED})


def set_legal_hold(
    caller: Caller,
    job_id: str,
    hold: LegalHoldInput,
    services: ExportServices,
    origin: RequestOrigin,
) -> ExportJob:
    """Place or lift a legal hold (admins): a held export is neither expired nor deleted, by
    its execution, by retention or by anyone, until the hold is lifted. Audited with its reason."""
    if not caller.is_admin:
        raise PermissionDenied("Only admins may place or lift a legal hold.", {"id": job_id})
    job = get_export(caller, job_id, services)
    if job.legal_hold == hold.hold:
        return job  # already so: nothing to record
    held = services.jobs.set_legal_hold(job.id, hold.hold, HOLDABLE)
    if held is None:
        current = services.jobs.get(job.id)
        if current.status is ExportStatus.COMPLETED:
            # Refused only while retention purges it (see JobStore.set_legal_hold).
            raise Conflict(
                f"Export {job_id} reached the end of its retention and is being removed.",
                {"id": job_id, "status": current.status.value},
            )
        raise Conflict(
            f"Export {job_id} is {current.status.value}; only a queued, running or completed "
            "export can be held.",
            {"id": job_id, "status": current.status.value},
        )
    event = AuditEventType.LEGAL_HOLD_SET if hold.hold else AuditEventType.LEGAL_HOLD_CLEARED
    record(event, caller, origin, services, held, reason=hold.reason)
    logger.info("Legal hold changed", extra={"job_id": job.id, "legal_hold": hold.hold})
    return held


def delete_export(
    caller: Caller, job_id: str, services: ExportServices, origin: RequestOrigin
) -> ExportJob:
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
    if job.status is ExportStatus.COMPLETED:
        remove_files(job, services.objects)
    deleted = services.jobs.transition(job.id, ExportStatus.DELETED)
    record(AuditEventType.DATA_DELETED, caller, origin, services, job)
    logger.info("Export deleted", extra={"job_id": job.id})
    return deleted
