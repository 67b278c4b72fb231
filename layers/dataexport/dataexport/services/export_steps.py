"""The export state machine's steps: plan, format a partition, complete, expire, fail.

Every step is idempotent: Step Functions may run it again after a timeout or retry, and the
result is the same (same staging key, same final key, conditional status changes).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pydantic_core import to_jsonable_python

from dataexport import errors
from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.checkpoint_store import CheckpointStore
from dataexport.adapters.job_store import RECORD_TTL_AFTER_EXPIRY, JobStore
from dataexport.adapters.object_store import ObjectStore, StoredObject, content_disposition
from dataexport.audit import AuditEventType
from dataexport.catalog.loader import Catalog
from dataexport.errors import DataExportError, ExportCancelled, IllegalTransition
from dataexport.export_job import (
    JOB_FILES_LISTED,
    ExportFile,
    ExportJob,
    ExportStatus,
    JobError,
    PartSummary,
    SegmentSummary,
    StagedPiece,
    export_key,
    staging_key,
    utc_now,
)
from dataexport.export_request import ExportRequest, ResolvedExport, resolve_export
from dataexport.formats.writer import PIECE, PartPosition
from dataexport.query_builder import RowScope, Span
from dataexport.row_sources import RowSource, RowSourceFor
from dataexport.services.export_files import (
    assemble_files,
    assemble_whole_file,
    clear_staging,
    piece_bytes_for,
    put_manifest,
    record_manifest,
    remove_files,
    written_in_pieces,
)
from dataexport.services.export_queue import ExportQueue
from dataexport.services.retention import ExpiryResult, RetentionPolicies, expire_if_due

logger = Logger(child=True)

PROGRESS_INTERVAL_SECONDS = 5.0
# The plan travels in the state machine's payload (256 KB): at most this many segments.
MAX_SEGMENTS = 1_500
GENERIC_FAILURE = JobError(code="INTERNAL", message="The export failed unexpectedly.")


Position = list[Any]


@dataclass(frozen=True)
class Partition:
    """One slice of an export, formatted by one Map iteration: consecutive segments.

    Segment j holds the rows after bounds[j] through bounds[j + 1], positions in the export's
    order (None: its first or last row), so every row belongs to exactly one segment.
    """

    job_id: str
    index: int
    count: int
    bounds: list[Position | None] = field(default_factory=lambda: [None, None])

    @property
    def segment_count(self) -> int:
        return len(self.bounds) - 1

    def span(self, segment: int) -> Span:
        return Span(after=self.bounds[segment], through=self.bounds[segment + 1])

    def position_of(self, segment: int) -> PartPosition:
        """Where a segment's bytes sit in the file: the very first opens it, the last closes it."""
        return PartPosition(
            first=self.index == 0 and segment == 0,
            last=self.index == self.count - 1 and segment == self.segment_count - 1,
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "index": self.index,
            "count": self.count,
            "bounds": to_jsonable_python(self.bounds),
        }


@dataclass(frozen=True)
class ExportPlan:
    job_id: str
    rows_total: int
    partitions: list[Partition]
    max_concurrency: int = 1
    # Formatted by a Distributed Map (child executions) rather than inside this execution.
    distributed: bool = False

    def to_payload(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "rows_total": self.rows_total,
            "max_concurrency": self.max_concurrency,
            "distributed": self.distributed,
            "partitions": [partition.to_payload() for partition in self.partitions],
        }


@dataclass(frozen=True)
class Splitting:
    """How the Query step cuts exports (from its configuration). An export of more than
    `distributed_partitions` partitions is formatted by a Distributed Map, up to
    `distributed_max_concurrency` partitions at once; others inline, up to `max_concurrency`.
    Neither beyond `connection_budget` (the Format function's reserved concurrency, each
    invocation one database connection; 0: no budget): more would only be throttled."""

    segment_rows: int = 250_000
    partition_segments: int = 4
    max_concurrency: int = 4
    distributed_partitions: int = 40
    distributed_max_concurrency: int = 100
    connection_budget: int = 0


@dataclass(frozen=True)
class FormatOutcome:
    """What one Format invocation did: the partition, done or to be continued."""

    partition: Partition
    done: bool
    rows: int
    bytes: int
    segments: int

    def to_payload(self) -> dict[str, Any]:
        return {
            **self.partition.to_payload(),
            "done": self.done,
            "rows": self.rows,
            "bytes": self.bytes,
            "segments": self.segments,
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
    """The timestamp form a Wait state's TimestampPath accepts: whole seconds, rounded up, so
    the Wait never ends before `value` (the Expire step would find the job not yet due)."""
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_job(job: ExportJob, catalog: Catalog) -> ResolvedExport:
    request = ExportRequest.model_validate(
        {
            "dataset": job.dataset,
            "format": job.format,
            "compression": job.compression,
            "max_file_size_mb": job.max_file_size_mb,
            # Aggregates and summaries name their output themselves.
            "fields": None if job.aggregate or job.summary else job.fields,
            "filters": job.filters,
            "time_range": job.time_range,
            "options": job.options,
            "aggregate": job.aggregate,
            "summary": job.summary,
            # The job keeps the profile in effect: forced transforms are part of it.
            "privacy": job.privacy,
        }
    )
    return resolve_export(request, catalog, now=job.created_at)


def row_scope(job: ExportJob) -> RowScope:
    return RowScope(org_id=job.org_id, owner_id=job.owner_id if job.owner_scoped else None)


# --------------------------------------------------------------------------- Query
def plan_export(
    job_id: str,
    *,
    jobs: JobStore,
    rows_for: RowSourceFor,
    catalog: Catalog,
    splitting: Splitting = Splitting(),
) -> ExportPlan:
    """Mark the job running, count its rows and split them into partitions of segments.

    Segments hold `segment_rows` rows (more when an export would otherwise need more than
    MAX_SEGMENTS: the plan travels in the state machine's payload), partitions
    `partition_segments` segments each.
    """
    job = jobs.get(job_id)
    if job.status is ExportStatus.QUEUED:
        job = jobs.transition(job_id, ExportStatus.RUNNING, started_at=utc_now())
    elif job.status is not ExportStatus.RUNNING:
        raise IllegalTransition(f"Export {job_id} is {job.status.value}; it cannot run.")
    resolved = resolve_job(job, catalog)
    planned = rows_for(resolved.dataset).plan(
        resolved, row_scope(job), resolved.writer.segment_rows(splitting.segment_rows), MAX_SEGMENTS
    )
    jobs.update_fields(job_id, rows_total=planned.rows_total)
    bounds: list[Position | None] = [None, *planned.boundaries, None]
    per_partition = splitting.partition_segments
    partitions_bounds = [
        bounds[start : start + per_partition + 1]
        for start in range(0, len(bounds) - 1, per_partition)
    ]
    partitions = [
        Partition(job_id, index, len(partitions_bounds), partition_bounds)
        for index, partition_bounds in enumerate(partitions_bounds)
    ]
    distributed = len(partitions) > splitting.distributed_partitions
    logger.info(
        "Export planned",
        extra={
            "job_id": job_id,
            "rows_total": planned.rows_total,
            "segments": len(bounds) - 1,
            "partitions": len(partitions),
            "distributed": distributed,
        },
    )
    concurrency = (
        splitting.distributed_max_concurrency if distributed else splitting.max_concurrency
    )
    if splitting.connection_budget:
        concurrency = min(concurrency, splitting.connection_budget)
    return ExportPlan(
        job_id,
        planned.rows_total,
        partitions,
        max_concurrency=min(concurrency, len(partitions)),
        distributed=distributed,
    )


# --------------------------------------------------------------------------- Format
class _ProgressReporter:
    """Adds the rows a partition has written to the job's count, at most every few seconds.

    The write is conditional on the job still running: once it was cancelled, StopExecution
    does not stop this Lambda, so the step stops itself (the sink's `with` block aborts its
    multipart upload).
    """

    def __init__(self, job_id: str, jobs: JobStore) -> None:
        self._job_id = job_id
        self._jobs = jobs
        self._last = time.monotonic()
        self._reported = 0
        self._segment_base = 0
        self._done = 0

    def __call__(self, rows_in_segment: int) -> None:
        self._done = self._segment_base + rows_in_segment
        if time.monotonic() - self._last >= PROGRESS_INTERVAL_SECONDS:
            self.flush()

    def segment_finished(self) -> None:
        self._segment_base = self._done

    def flush(self) -> None:
        self._last = time.monotonic()
        added = self._done - self._reported
        if not self._jobs.add_rows_exported_while_running(self._job_id, added):
            raise ExportCancelled(f"Export {self._job_id} is no longer running.")
        self._reported = self._done


def format_partition(
    partition: Partition,
    *,
    jobs: JobStore,
    rows_for: RowSourceFor,
    objects: ObjectStore,
    catalog: Catalog,
    checkpoints: CheckpointStore,
    stop_starting_at: float = math.inf,
) -> FormatOutcome:
    """Stream a partition's segments, each from PostgreSQL through its writer into a staging
    object of its own, recording each finished segment in the partition's checkpoint.

    Resumes after the last finished segment, so a retried or continued invocation never redoes
    one. Starts no new segment once `time.monotonic()` passes `stop_starting_at` (after at
    least one): the answer then says the partition is not done yet.
    """
    job = jobs.get(partition.job_id)
    if job.status is not ExportStatus.RUNNING:
        raise IllegalTransition(f"Export {job.id} is {job.status.value}; it cannot be formatted.")
    resolved = resolve_job(job, catalog)
    finished = checkpoints.finished_segments(job.id, partition.index)
    progress = _ProgressReporter(job.id, jobs)
    segments = _SegmentWriter(
        job, resolved, partition, rows_for(resolved.dataset), objects, jobs, progress
    )
    first = len(finished)
    for segment in range(first, partition.segment_count):
        if segment > first and time.monotonic() >= stop_starting_at:
            break
        finished.append(segments.write(segment))
        checkpoints.record(job.id, partition.index, finished)
        progress.segment_finished()
    progress.flush()
    outcome = FormatOutcome(
        partition,
        done=len(finished) == partition.segment_count,
        rows=sum(segment.rows for segment in finished),
        bytes=sum(segment.bytes for segment in finished),
        segments=len(finished),
    )
    logger.info(
        "Partition formatted" if outcome.done else "Partition continues",
        extra={"job_id": job.id, "index": partition.index, "segments": outcome.segments},
    )
    return outcome


@dataclass(frozen=True)
class _SegmentWriter:
    """Writes the segments of one partition of one job, each into its own staging object, or
    into bare pieces when the export is split into files (the Upload step frames them)."""

    job: ExportJob
    resolved: ResolvedExport
    partition: Partition
    source: RowSource
    objects: ObjectStore
    jobs: JobStore
    progress: _ProgressReporter

    def write(self, segment: int) -> SegmentSummary:
        job, resolved, partition = self.job, self.resolved, self.partition
        split = written_in_pieces(resolved)
        pieces = self.objects.open_pieces(
            lambda piece: staging_key(job.id, partition.index, segment, piece if split else None),
            resolved.media_type,
            resolved.compression,
            piece_bytes_for(resolved.max_file_bytes),
        )
        with pieces:
            writer = resolved.writer(
                resolved.columns,
                resolved.options,
                pieces,
                PIECE if split else partition.position_of(segment),
            )
            writer.open()
            self.source.write(
                resolved, row_scope(job), writer, self.progress, partition.span(segment)
            )
            written = writer.close()
            stored = pieces.complete(written.rows)
        if self.jobs.get(job.id).status is not ExportStatus.RUNNING:
            # Cancelled while the last rows were written: nothing of it may stay in staging.
            for piece in stored:
                self.objects.delete(piece.stored.key)
            raise ExportCancelled(f"Export {job.id} is no longer running.")
        # A format deflating its own output writes one piece per segment (never split).
        deflated = written.deflated if len(stored) == 1 else None
        return SegmentSummary(
            pieces=[
                StagedPiece(
                    key=piece.stored.key,
                    rows=piece.rows,
                    bytes=piece.stored.bytes,
                    sha256=piece.stored.sha256,
                    raw_bytes=None if deflated is None else deflated.raw_bytes,
                    crc32=None if deflated is None else deflated.crc32,
                )
                for piece in stored
            ]
        )


# --------------------------------------------------------------------------- Upload
def complete_export(
    job_id: str,
    parts: list[PartSummary],
    *,
    jobs: JobStore,
    objects: ObjectStore,
    checkpoints: CheckpointStore,
    catalog: Catalog,
    queue: ExportQueue,
    retention: RetentionPolicies,
) -> ExportJob:
    """Join every partition's segments in order into the final file (server-side where S3
    allows), mark the job completed with its exact size, rows and sha256 and an expiry after
    its tenant's retention for the dataset, remove the staging objects, and hand its running
    slot to the tenant's next queued export."""
    job = jobs.get(job_id)
    if job.status is ExportStatus.COMPLETED:
        # A retried Upload after success: only the cleanup may be left to do.
        clear_staging(job_id, objects)
        queue.finished(job.org_id, job_id)
        return job
    if job.status is not ExportStatus.RUNNING:
        raise IllegalTransition(f"Export {job_id} is {job.status.value}; it cannot complete.")
    ordered = sorted(parts, key=lambda part: part.index)
    if [part.index for part in ordered] != list(range(len(ordered))):
        raise DataExportError(f"Export {job_id} is missing partitions.")
    segments: list[SegmentSummary] = []
    for part in ordered:
        finished = checkpoints.finished_segments(job_id, part.index)
        if len(finished) != part.segments:
            raise DataExportError(f"Export {job_id} partition {part.index} is incomplete.")
        segments += finished
    resolved = resolve_job(job, catalog)
    pieces = [piece for segment in segments for piece in segment.pieces]
    rows = sum(piece.rows for piece in pieces)
    completed_at = utc_now()
    expires_at = completed_at + retention.retention_for(job.org_id, job.dataset)
    files: list[ExportFile] = []
    if resolved.max_file_bytes is not None:
        files = assemble_files(job, resolved, pieces, objects)
        stored = put_manifest(job, resolved, files, objects, completed_at)
    elif written_in_pieces(resolved):
        stored = assemble_whole_file(job, resolved, pieces, objects)
    else:
        stored = objects.assemble(
            [StoredObject(piece.key, piece.bytes, piece.sha256) for piece in pieces],
            export_key(job),
            resolved.media_type,
            content_disposition(job.file_name),
        )
    # A split export's size is its files' (the object stored last is its manifest).
    total_bytes = sum(file.bytes for file in files) if files else stored.bytes
    manifest = record_manifest(
        job,
        resolved,
        files
        or [
            ExportFile(
                number=1,
                file_name=job.file_name,
                s3_key=stored.key,
                rows=rows,
                bytes=stored.bytes,
                sha256=stored.sha256,
            )
        ],
        completed_at,
    )
    completed = jobs.transition(
        job_id,
        ExportStatus.COMPLETED,
        s3_key=stored.key,
        files=files[:JOB_FILES_LISTED],
        file_count=len(files),
        manifest=manifest,
        parts=ordered,
        rows_exported=rows,
        rows_total=rows,
        bytes=total_bytes,
        sha256=stored.sha256,
        progress=100,
        completed_at=completed_at,
        expires_at=expires_at,
        ttl=expires_at + RECORD_TTL_AFTER_EXPIRY,
    )
    clear_staging(job_id, objects)
    logger.info(
        "Export completed",
        extra={"job_id": job_id, "rows": rows, "segments": len(segments), "files": len(files)},
    )
    queue.finished(job.org_id, job_id)
    return completed


# --------------------------------------------------------------------------- Expire
def expire_export(
    job_id: str,
    *,
    jobs: JobStore,
    objects: ObjectStore,
    audit: AuditTrail,
    retention: RetentionPolicies,
    claimant: str,
) -> ExpiryOutcome:
    """Purge a job that is due (see retention.expire_if_due, which the daily run calls too);
    wait again for an expiry that a longer policy moved later.

    A held job ends the execution, as does one another run is purging: the daily retention run
    takes it from there.
    """
    decision = expire_if_due(
        job_id,
        jobs=jobs,
        objects=objects,
        audit=audit,
        retention=retention,
        claimant=claimant,
        now=utc_now(),
    )
    if decision.result is ExpiryResult.NOT_DUE:
        return ExpiryOutcome(job_id, wait_again=True, expires_at=decision.expires_at)
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
    clear_staging(job_id, objects)
    if job.status is ExportStatus.COMPLETED:
        # The failure came after the file was complete; it stays valid.
        return job
    remove_files(job, objects)  # files copied before the step failed
    error = safe_job_error(error_name, cause)
    logger.warning("Export failed", extra={"job_id": job_id, "error_name": error_name})
    try:
        return jobs.transition(job_id, ExportStatus.FAILED, error=error, completed_at=utc_now())
    except IllegalTransition:
        return jobs.get(job_id)  # already failed or cancelled: nothing more to record
