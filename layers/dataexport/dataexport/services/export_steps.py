"""The export state machine's steps: plan, format a partition, complete, expire, fail.

Every step is idempotent: Step Functions may run it again after a timeout or retry, and the
result is the same (same staging key, same final key, conditional status changes).
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from dataexport import errors
from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.job_store import RECORD_TTL_AFTER_EXPIRY, JobStore
from dataexport.adapters.object_store import ObjectStore, content_disposition
from dataexport.audit import AuditEventType
from dataexport.catalog.loader import Catalog
from dataexport.errors import DataExportError, ExportCancelled, IllegalTransition
from dataexport.export_job import (
    ExportJob,
    ExportStatus,
    JobError,
    PartSummary,
    export_key,
    staging_key,
    staging_prefix,
    utc_now,
)
from dataexport.export_request import ExportRequest, ResolvedExport, resolve_export
from dataexport.formats.writer import PartPosition
from dataexport.query_builder import RowScope
from dataexport.row_sources import RowSourceFor
from dataexport.services.export_queue import ExportQueue

logger = Logger(child=True)

PROGRESS_INTERVAL_SECONDS = 5.0
GENERIC_FAILURE = JobError(code="INTERNAL", message="The export failed unexpectedly.")


@dataclass(frozen=True)
class Partition:
    """One slice of an export, formatted by one Map iteration."""

    job_id: str
    index: int
    count: int

    def to_payload(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "index": self.index, "count": self.count}


@dataclass(frozen=True)
class ExportPlan:
    job_id: str
    rows_total: int
    partitions: list[Partition]

    def to_payload(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "rows_total": self.rows_total,
            "partitions": [partition.to_payload() for partition in self.partitions],
        }


@dataclass(frozen=True)
class ExpiryOutcome:
    job_id: str
    wait_again: bool
    expires_at: datetime | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"job_id": self.job_id, "wait_again": self.wait_again}
        if self.expires_at is not None:
            payload["expires_at"] = state_machine_timestamp(self.expires_at)
        return payload


def state_machine_timestamp(value: datetime) -> str:
    """The timestamp form a Wait state's TimestampPath accepts."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_job(job: ExportJob, catalog: Catalog) -> ResolvedExport:
    request = ExportRequest.model_validate(
        {
            "dataset": job.dataset,
            "format": job.format,
            "compression": job.compression,
            "fields": job.fields,
            "filters": job.filters,
            "time_range": job.time_range,
            "options": job.options,
        }
    )
    return resolve_export(request, catalog)


def row_scope(job: ExportJob) -> RowScope:
    return RowScope(org_id=job.org_id, owner_id=job.owner_id if job.owner_scoped else None)


# --------------------------------------------------------------------------- Query
def plan_export(
    job_id: str, *, jobs: JobStore, rows_for: RowSourceFor, catalog: Catalog
) -> ExportPlan:
    """Mark the job running, count its rows and split it into partitions."""
    job = jobs.get(job_id)
    if job.status is ExportStatus.QUEUED:
        job = jobs.transition(job_id, ExportStatus.RUNNING, started_at=utc_now())
    elif job.status is not ExportStatus.RUNNING:
        raise IllegalTransition(f"Export {job_id} is {job.status.value}; it cannot run.")
    resolved = resolve_job(job, catalog)
    rows_total = rows_for(resolved.dataset).count(resolved, row_scope(job))
    jobs.update_fields(job_id, rows_total=rows_total)
    logger.info("Export planned", extra={"job_id": job_id, "rows_total": rows_total})
    return ExportPlan(job_id, rows_total, [Partition(job_id, index=0, count=1)])


# --------------------------------------------------------------------------- Format
class _ProgressReporter:
    """Writes rows_exported to the job at most every few seconds."""

    def __init__(self, job_id: str, rows_total: int | None, jobs: JobStore) -> None:
        self._job_id = job_id
        self._rows_total = rows_total
        self._jobs = jobs
        self._last = time.monotonic()

    def __call__(self, rows_done: int) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL_SECONDS:
            return
        self._last = now
        progress = 0
        if self._rows_total:
            # 99 at most: the job reaches 100 only when its file is in place.
            progress = min(99, rows_done * 100 // self._rows_total)
        still_running = self._jobs.update_fields_while(
            self._job_id, ExportStatus.RUNNING, rows_exported=rows_done, progress=progress
        )
        if not still_running:
            # Cancelled meanwhile: StopExecution does not stop this Lambda, so it stops itself;
            # the sink's `with` block aborts the multipart upload.
            raise ExportCancelled(f"Export {self._job_id} is no longer running.")


def format_partition(
    partition: Partition,
    *,
    jobs: JobStore,
    rows_for: RowSourceFor,
    objects: ObjectStore,
    catalog: Catalog,
) -> PartSummary:
    """Stream one partition's rows from PostgreSQL through its writer into a staging object."""
    job = jobs.get(partition.job_id)
    if job.status is not ExportStatus.RUNNING:
        raise IllegalTransition(f"Export {job.id} is {job.status.value}; it cannot be formatted.")
    resolved = resolve_job(job, catalog)
    key = staging_key(job.id, partition.index)
    position = PartPosition(first=partition.index == 0, last=partition.index == partition.count - 1)
    progress = _ProgressReporter(job.id, job.rows_total, jobs)
    with objects.open_sink(key, resolved.media_type, resolved.compression) as sink:
        writer = resolved.writer(resolved.columns, resolved.options, sink, position)
        writer.open()
        rows_for(resolved.dataset).write(resolved, row_scope(job), writer, progress)
        summary = writer.close()
        stored = sink.complete()
    if jobs.get(job.id).status is not ExportStatus.RUNNING:
        # Cancelled while the last rows were written: nothing of it may stay in staging.
        objects.delete(key)
        raise ExportCancelled(f"Export {job.id} is no longer running.")
    logger.info(
        "Partition formatted",
        extra={"job_id": job.id, "index": partition.index, "rows": summary.rows},
    )
    return PartSummary(
        index=partition.index, key=key, rows=summary.rows, bytes=stored.bytes, sha256=stored.sha256
    )


# --------------------------------------------------------------------------- Upload
def complete_export(
    job_id: str,
    parts: list[PartSummary],
    *,
    jobs: JobStore,
    objects: ObjectStore,
    catalog: Catalog,
    queue: ExportQueue,
    retention: timedelta,
) -> ExportJob:
    """Put the formatted parts in place as the final file, mark the job completed, and hand
    its running slot to the tenant's next queued export."""
    job = jobs.get(job_id)
    if job.status is ExportStatus.COMPLETED:
        queue.finished(job.org_id, job_id)  # a retried Upload after success
        return job
    if job.status is not ExportStatus.RUNNING:
        raise IllegalTransition(f"Export {job_id} is {job.status.value}; it cannot complete.")
    ordered = sorted(parts, key=lambda part: part.index)
    if len(ordered) != 1:
        raise DataExportError("Assembling more than one partition is not supported yet.")
    resolved = resolve_job(job, catalog)
    key = export_key(job)
    objects.copy(ordered[0].key, key, resolved.media_type, content_disposition(job.file_name))
    objects.delete_prefix(staging_prefix(job_id))
    completed_at = utc_now()
    expires_at = completed_at + retention
    rows = sum(part.rows for part in ordered)
    completed = jobs.transition(
        job_id,
        ExportStatus.COMPLETED,
        s3_key=key,
        parts=ordered,
        rows_exported=rows,
        rows_total=rows,
        bytes=sum(part.bytes for part in ordered),
        sha256=ordered[0].sha256,
        progress=100,
        completed_at=completed_at,
        expires_at=expires_at,
        ttl=expires_at + RECORD_TTL_AFTER_EXPIRY,
    )
    logger.info("Export completed", extra={"job_id": job_id, "rows": rows})
    queue.finished(job.org_id, job_id)
    return completed


# --------------------------------------------------------------------------- Expire
def expire_export(job_id: str, *, jobs: JobStore, objects: ObjectStore) -> ExpiryOutcome:
    """Delete the file of a job that is due; report a later expiry if it moved.

    Re-reads the job, so a legal hold or a longer retention set after completion wins. A held
    job ends the execution: the daily retention run takes it from there.
    """
    job = jobs.get(job_id)
    now = utc_now()
    if job.status is not ExportStatus.COMPLETED or job.legal_hold or job.expires_at is None:
        return ExpiryOutcome(job_id, wait_again=False)
    if job.expires_at > now:
        return ExpiryOutcome(job_id, wait_again=True, expires_at=job.expires_at)
    if job.s3_key is not None:
        objects.delete(job.s3_key)
    # Deleted or expired meanwhile by someone else: the outcome is the same.
    with suppress(IllegalTransition):
        jobs.transition(job_id, ExportStatus.EXPIRED)
    logger.info("Export expired", extra={"job_id": job_id})
    return ExpiryOutcome(job_id, wait_again=False)


# --------------------------------------------------------------------------- Fail
def safe_job_error(error_name: str, cause: str | None) -> JobError:
    """Turn a state machine error into a reason fit for the job's owner.

    Our own errors carry messages written for users; anything else (a driver error, a Lambda
    timeout) becomes a generic reason so no SQL, stack trace or internal detail leaks.
    """
    error_type = getattr(errors, error_name, None)
    if isinstance(error_type, type) and issubclass(error_type, DataExportError):
        message = None
        try:
            payload = json.loads(cause or "{}")
            message = payload.get("errorMessage") if isinstance(payload, dict) else None
        except ValueError:
            message = None
        return JobError(code=error_type.error_code, message=str(message or GENERIC_FAILURE.message))
    if error_name == "States.Timeout" or error_name.endswith("TimedOut"):
        return JobError(code="TIMEOUT", message="The export took too long and was stopped.")
    return GENERIC_FAILURE


def fail_export(
    job_id: str,
    error_name: str,
    cause: str | None,
    *,
    jobs: JobStore,
    objects: ObjectStore,
    queue: ExportQueue,
    audit: AuditTrail,
) -> ExportJob:
    """Mark the job failed with a safe reason; abort its uploads, remove partial objects,
    audit it, and hand its running slot to the tenant's next queued export."""
    job = jobs.get(job_id)
    try:
        failed = _record_failure(job, error_name, cause, jobs=jobs, objects=objects)
        if failed.status is ExportStatus.FAILED and failed.error is not None:
            audit.record(
                AuditEventType.EXPORT_FAILED,
                org_id=job.org_id,
                actor_id=job.owner_id,
                actor_role="system",
                target_type="export",
                target_id=job.id,
                detail={"dataset": job.dataset, "error_code": failed.error.code},
            )
        return failed
    finally:
        queue.finished(job.org_id, job_id)


def _record_failure(
    job: ExportJob, error_name: str, cause: str | None, *, jobs: JobStore, objects: ObjectStore
) -> ExportJob:
    job_id = job.id
    for prefix in (staging_prefix(job_id), export_key(job)):
        objects.abort_uploads(prefix)
    objects.delete_prefix(staging_prefix(job_id))
    if job.status is ExportStatus.COMPLETED:
        # The failure came after the file was complete; it stays valid.
        return job
    objects.delete(export_key(job))  # a copy that finished before its step failed
    error = safe_job_error(error_name, cause)
    logger.warning("Export failed", extra={"job_id": job_id, "error_name": error_name})
    try:
        return jobs.transition(job_id, ExportStatus.FAILED, error=error, completed_at=utc_now())
    except IllegalTransition:
        return jobs.get(job_id)  # already failed or cancelled: nothing more to record
