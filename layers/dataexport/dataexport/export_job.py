"""The export job: what was asked, where it stands, where its file is.

Status moves only along ALLOWED_TRANSITIONS; the job store enforces it with conditional writes, so
a retried or late step can never move a job backwards (e.g. completed -> running).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field
from ulid import ULID

from dataexport.delivery import (
    DeliveryRecord,
    DeliveryStatus,
    DeliveryTarget,
    LinkDelivery,
)
from dataexport.store_keys import export_prefix as job_export_prefix
from dataexport.store_keys import staging_prefix

JOB_ID_PREFIX = "exp_"


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DELETED = "deleted"


ALLOWED_TRANSITIONS: dict[ExportStatus, frozenset[ExportStatus]] = {
    ExportStatus.QUEUED: frozenset(
        {ExportStatus.RUNNING, ExportStatus.FAILED, ExportStatus.CANCELLED}
    ),
    ExportStatus.RUNNING: frozenset(
        {ExportStatus.COMPLETED, ExportStatus.FAILED, ExportStatus.CANCELLED}
    ),
    ExportStatus.COMPLETED: frozenset({ExportStatus.EXPIRED, ExportStatus.DELETED}),
    ExportStatus.FAILED: frozenset({ExportStatus.DELETED}),
    ExportStatus.CANCELLED: frozenset({ExportStatus.DELETED}),
    ExportStatus.EXPIRED: frozenset({ExportStatus.DELETED}),
    ExportStatus.DELETED: frozenset(),
}

LIVE_STATUSES = frozenset({ExportStatus.QUEUED, ExportStatus.RUNNING})


@dataclass(frozen=True)
class HistoryFilter:
    """What a listing of jobs keeps. Deleted jobs are left out unless `status` asks for them;
    `created_from` is inclusive, `created_to` exclusive."""

    status: ExportStatus | None = None
    dataset: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


# The history as it is listed by default: every job but the deleted ones.
UNDELETED_JOBS = HistoryFilter()


def sources_of(target: ExportStatus) -> frozenset[ExportStatus]:
    """Every status from which `target` may be reached."""
    return frozenset(source for source, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def new_job_id() -> str:
    return JOB_ID_PREFIX + str(ULID())


def utc_now() -> datetime:
    return datetime.now(UTC)


@overload
def utc_text(value: datetime) -> str: ...
@overload
def utc_text(value: None) -> None: ...
def utc_text(value: datetime | None) -> str | None:
    """How the service writes an instant for people and receivers: ISO 8601 in UTC with a Z."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class JobError(BaseModel):
    """A failure reason that is safe to show to the job's owner."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class StagedPiece(BaseModel):
    """One complete staging object: some consecutive rows of a segment, formatted."""

    model_config = ConfigDict(frozen=True)

    key: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str
    # Formats that deflate their pieces themselves (xlsx): the text's size and CRC-32.
    raw_bytes: int | None = Field(default=None, ge=0)
    crc32: int | None = Field(default=None, ge=0)


class SegmentSummary(BaseModel):
    """One finished segment of a partition: one staging object, or several consecutive pieces
    when the export is split into files (so a file may end inside a segment)."""

    model_config = ConfigDict(frozen=True)

    pieces: list[StagedPiece]

    @property
    def rows(self) -> int:
        return sum(piece.rows for piece in self.pieces)

    @property
    def bytes(self) -> int:
        return sum(piece.bytes for piece in self.pieces)


class ExportFile(BaseModel):
    """One file of an export split by `max_file_size_mb`, numbered from 1."""

    model_config = ConfigDict(frozen=True)

    number: int = Field(ge=1)
    file_name: str
    s3_key: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str

    def public_view(self) -> dict[str, Any]:
        """What users see of it (in the job and the manifest): never its S3 key."""
        return self.model_dump(exclude={"s3_key"})


class PartSummary(BaseModel):
    """One formatted partition: its rows and bytes, in how many segments."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    segments: int = Field(default=1, ge=0)


class ExportJob(BaseModel):
    """One export request and its progress. Row data never lives here."""

    model_config = ConfigDict(frozen=True)

    id: str
    org_id: str
    owner_id: str
    dataset: str
    format: str
    compression: str = "none"
    fields: list[str]
    filters: list[dict[str, Any]] = Field(default_factory=list)
    time_range: dict[str, str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # An aggregated export's request (group_by, time_bucket, measures); `fields` are its output.
    aggregate: dict[str, Any] | None = None
    # The name of the dataset's KPI summary exported instead of rows; `fields` are its metrics.
    summary: str | None = None
    # The privacy profile applied: the transforms asked for and those forced on the role.
    privacy: list[str] = Field(default_factory=list)
    # Split into numbered files of at most this many megabytes, with a manifest.json.
    max_file_size_mb: int | None = None
    # True when only the owner's own rows may be exported (members of owner-scoped datasets).
    owner_scoped: bool = True
    # Identifies identical requests (same user, dataset, fields, filters, range, format, options).
    request_hash: str | None = None
    status: ExportStatus = ExportStatus.QUEUED
    progress: int = Field(default=0, ge=0, le=100)
    rows_exported: int | None = None
    rows_total: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    parts: list[PartSummary] = Field(default_factory=list)
    # The file, or for a split export its manifest.json (sha256 and bytes are the manifest's).
    s3_key: str | None = None
    # A split export's first files (JOB_FILES_LISTED at most: the record has a size limit) and
    # how many there are; manifest.json lists them all.
    files: list[ExportFile] = Field(default_factory=list)
    file_count: int = Field(default=0, ge=0)
    # A completed export's manifest (rows, bytes, sha256, schema, filters, time zone...),
    # without its list of files: those are `files` (split) or the export itself.
    manifest: dict[str, Any] | None = None
    file_name: str
    execution_arn: str | None = None
    error: JobError | None = None
    legal_hold: bool = False
    # The schedule whose run created the job, if one did.
    schedule_id: str | None = None
    # Where the finished export goes besides the history, and how that went.
    delivery: DeliveryTarget = Field(default_factory=LinkDelivery)
    delivery_record: DeliveryRecord = Field(
        default_factory=lambda: DeliveryRecord(status=DeliveryStatus.NOT_REQUIRED)
    )
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def is_split(self) -> bool:
        return self.file_count > 0

    def file(self, number: int) -> ExportFile | None:
        """File `number` of a split export as listed, or None if it is not listed."""
        return next((file for file in self.files if file.number == number), None)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def belongs_to(self, org_id: str, owner_id: str | None = None) -> bool:
        """Whether the job is the tenant's (and, when `owner_id` is given, that user's)."""
        return self.org_id == org_id and (owner_id is None or self.owner_id == owner_id)

    @property
    def progress_percent(self) -> int:
        """0-100: for a running job, its partitions' rows so far against the planned total
        (99 at most: 100 only once its file is in place)."""
        if self.status is ExportStatus.RUNNING and self.rows_total and self.rows_exported:
            return min(99, self.rows_exported * 100 // self.rows_total)
        return self.progress

    def is_due_for_expiry(self, now: datetime) -> bool:
        return (
            self.status is ExportStatus.COMPLETED
            and not self.legal_hold
            and self.expires_at is not None
            and self.expires_at <= now
        )


def staging_key(job_id: str, index: int, segment: int = 0, piece: int | None = None) -> str:
    key = f"{staging_prefix(job_id)}part-{index:05d}-{segment:05d}"
    return key if piece is None else f"{key}-{piece:05d}"


def export_prefix(job: ExportJob) -> str:
    """Where everything a job leaves in the bucket lives: its file, or its files and manifest."""
    return job_export_prefix(job.org_id, job.id)


def export_key(job: ExportJob, file_name: str | None = None) -> str:
    return export_prefix(job) + (file_name or job.file_name)


MANIFEST_NAME = "manifest.json"
JOB_FILES_LISTED = 100


def numbered_file_name(file_name: str, number: int) -> str:
    """`usage_logs-...-exp_x.csv.gz` -> `usage_logs-...-exp_x-part-00001.csv.gz`."""
    stem, dot, extensions = file_name.partition(".")
    return f"{stem}-part-{number:05d}{dot}{extensions}"
