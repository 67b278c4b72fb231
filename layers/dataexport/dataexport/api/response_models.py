"""The JSON answers of /v1, as pydantic models: they shape each answer and document it.

Routes build a view and send it through its model (`model_response`), so a field missing from a
model, or one a view forgot, fails loudly instead of drifting from the OpenAPI document.
Free-form parts (a request's filters, options, a manifest) stay objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from pydantic import BaseModel, ConfigDict, Field

from dataexport.audit import ChainReport
from dataexport.backup import BackupOptions, BackupStatus, BackupTrigger
from dataexport.export_job import ExportStatus, JobError
from dataexport.export_schedule import RunTrigger, ScheduleState

Timestamp = str  # ISO 8601 in UTC, e.g. 2026-05-01T12:00:00Z


def model_response(status: int, model: type[BaseModel], view: Mapping[str, Any]) -> Response[str]:
    """`view` sent through its documented `model`: a field either lacks fails here, loudly."""
    answer = model.model_validate(view)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=answer.model_dump_json(by_alias=True),
    )


class Answer(BaseModel):
    """A JSON answer: every field it has is declared, so views and documents cannot drift."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Answer):
    """Every error, from the API and from API Gateway itself."""

    error_code: str = Field(examples=["VALIDATION_ERROR"])
    message: str = Field(description="What is wrong, for a person to read.")
    detail: dict[str, Any] = Field(
        description="Machine-readable specifics; `field` names a bad field, e.g. filters[0].op"
    )


# ---------------------------------------------------------------- exports


class ExportFileView(Answer):
    number: int
    file_name: str
    rows: int
    bytes: int
    sha256: str
    download_url: str


class DeliveryAttemptView(Answer):
    at: Timestamp | None
    status_code: int | None
    error: str | None


class DeliveryView(BaseModel):
    """Where the finished export goes (`type` and the target's public fields) and how it went."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="none, webhook, email or s3")
    status: str
    attempts: list[DeliveryAttemptView]
    delivered_at: Timestamp | None


class TimeWindowView(Answer):
    start: Timestamp | None
    end: Timestamp | None


class ExportJobView(Answer):
    """An export job: its request, progress, result and links (never its storage keys)."""

    id: str = Field(examples=["exp_01JZ3Q9W5X7Y2K8M4N6P0R1S2T"])
    dataset: str
    format: str
    compression: str
    status: ExportStatus
    progress: int = Field(description="Percent done, 0-100.")
    rows_exported: int | None
    rows_total: int | None
    bytes: int | None
    sha256: str | None
    file_name: str | None
    max_file_size_mb: int | None
    file_count: int
    files: list[ExportFileView]
    manifest: dict[str, Any] | None
    fields: list[str]
    filters: list[dict[str, Any]]
    time_range: dict[str, Any] | None
    window: TimeWindowView
    options: dict[str, Any]
    aggregate: dict[str, Any] | None
    summary: str | None
    privacy: list[str]
    error: JobError | None
    legal_hold: bool
    schedule_id: str | None
    delivery: DeliveryView
    created_at: Timestamp | None
    started_at: Timestamp | None
    completed_at: Timestamp | None
    expires_at: Timestamp | None
    download_url: str | None = Field(description="Set once the export has completed.")
    links: dict[str, str]


class ExportPage(Answer):
    items: list[ExportJobView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class DownloadRedirect(Answer):
    """The 302's body: the presigned URL it redirects to (valid for minutes)."""

    download_url: str


class PreviewView(Answer):
    dataset: str
    format: str
    content: str = Field(description="The first rows, as the file would hold them.")
    content_encoding: str | None = Field(description="base64 for binary formats (xlsx, parquet)")
    rows: int
    estimated_rows: int | None
    estimated_rows_exact: bool
    estimated_bytes: int | None
    privacy: list[str]


class StatsView(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Timestamp = Field(alias="from")
    end: Timestamp = Field(alias="to")
    exports: int
    by_status: dict[str, int]
    by_dataset: dict[str, int]
    by_format: dict[str, int]
    rows_exported: int
    bytes_exported: int
    truncated: bool


# ---------------------------------------------------------------- catalog and formats


class DatasetView(Answer):
    """A dataset as the caller's role may use it: fields, filters, aggregations, privacy."""

    name: str
    title: str | None
    description: str | None
    time_field: str | None
    default_fields: list[str]
    fields: list[dict[str, Any]]
    max_span_days: int | None
    aggregations: dict[str, Any] | None
    privacy: dict[str, Any]
    children: list[dict[str, Any]]
    summaries: list[dict[str, Any]]


class DatasetList(Answer):
    items: list[DatasetView]


class CompressionView(Answer):
    name: str
    suffix: str
    media_type: str


class FormatView(Answer):
    name: str = Field(examples=["csv"])
    media_type: str
    extension: str
    options: dict[str, Any] = Field(description="The options this format accepts (JSON Schema).")
    compression: list[CompressionView]
    splittable: bool


class FormatList(Answer):
    items: list[FormatView]


# ---------------------------------------------------------------- schedules


class ScheduleView(Answer):
    id: str
    name: str
    description: str | None
    owner_id: str
    schedule_expression: str
    timezone: str
    export: dict[str, Any]
    state: ScheduleState | Literal["deleted"]
    suspension: JobError | None
    next_run_at: Timestamp | None
    created_at: Timestamp | None
    updated_at: Timestamp | None
    links: dict[str, str]


class ScheduleList(Answer):
    items: list[ScheduleView]


class ScheduleRunView(Answer):
    scheduled_for: Timestamp | None
    trigger: RunTrigger
    outcome: Literal["started", "refused"]
    error: JobError | None
    job_id: str | None
    job_status: ExportStatus | None
    window: TimeWindowView | None
    job: str | None
    download: str | None


class ScheduleDetailView(ScheduleView):
    next_runs: list[Timestamp]
    last_success: ScheduleRunView | None
    last_failure: ScheduleRunView | None
    runs: list[ScheduleRunView]


class ScheduleRunStarted(ScheduleRunView):
    """The run POST /v1/schedules/{id}/run started, with its export."""

    export: ExportJobView | None = None


# ---------------------------------------------------------------- governance


class RetentionPolicyView(Answer):
    dataset: str
    retention_days: int


class RetentionPoliciesView(Answer):
    default_retention_seconds: int
    policies: list[RetentionPolicyView]


class AuditEventView(Answer):
    """An event exactly as it was hashed, plus its hash."""

    org_id: str
    seq: int
    event_id: str
    type: str
    at: str
    actor_id: str | None
    actor_role: str | None
    target_type: str | None
    target_id: str | None
    source_ip: str | None
    request_id: str | None
    detail: dict[str, Any] | None
    prev_hash: str | None
    hash: str


class AuditPage(Answer):
    items: list[AuditEventView]
    next_cursor: str | None


class AuditChainReport(ChainReport):
    """Whether the tenant's audit chain is whole, its head, and the first problem found."""


class WebhookSigningSecretView(Answer):
    secret: str
    algorithm: str
    signature_header: str
    signed_content: str
    delivery_id_header: str
    tolerance_seconds: int


class BackupView(Answer):
    id: str
    status: BackupStatus
    trigger: BackupTrigger
    requested_by: str | None
    options: BackupOptions
    created_at: Timestamp | None
    finished_at: Timestamp | None
    expires_at: Timestamp | None
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str | None
    toc_entries: int | None
    table_data_entries: int | None
    server_version: str | None
    pg_dump_version: str | None
    verified: bool
    error: dict[str, Any] | None


class BackupPage(Answer):
    items: list[BackupView]
    next_cursor: str | None
