"""The public JSON shape of an export job (never its S3 key or execution ARN)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from dataexport.delivery import DeliveryStatus, public_target
from dataexport.export_job import ExportJob, ExportStatus, utc_text
from dataexport.time_presets import TimePreset, preset_bounds


def job_window(job: ExportJob) -> dict[str, str | None]:
    """The instants the job exports: its preset resolved when it was created, or its range."""
    time_range = job.time_range or {}
    preset = time_range.get("preset")
    if preset is not None and preset != TimePreset.CUSTOM:
        zone = ZoneInfo(str(job.options.get("timezone", "UTC")))
        start, end = preset_bounds(TimePreset(preset), zone, job.created_at)
        return {"start": utc_text(start), "end": utc_text(end)}
    return {"start": time_range.get("start"), "end": time_range.get("end")}


def job_links(job: ExportJob) -> dict[str, str]:
    links = {"self": f"/v1/exports/{job.id}"}
    if job.status is ExportStatus.COMPLETED:
        links["download"] = f"/v1/exports/{job.id}/download"
    return links


def delivery_view(job: ExportJob) -> dict[str, Any]:
    """The job's delivery target (a webhook URL without its query) and how it went."""
    record = job.delivery_record
    status = record.status
    if job.status is ExportStatus.CANCELLED and status is DeliveryStatus.PENDING:
        status = DeliveryStatus.NOT_REQUIRED  # a cancelled export is delivered nowhere
    return {
        **public_target(job.delivery),
        "status": status.value,
        "attempts": [
            {
                "at": utc_text(attempt.at),
                "status_code": attempt.status_code,
                "error": attempt.error,
            }
            for attempt in record.attempts
        ],
        "delivered_at": utc_text(record.delivered_at),
    }


def job_view(job: ExportJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "dataset": job.dataset,
        "format": job.format,
        "compression": job.compression,
        "status": job.status.value,
        "progress": job.progress_percent,
        "rows_exported": job.rows_exported,
        "rows_total": job.rows_total,
        "bytes": job.bytes,
        "sha256": job.sha256,
        "file_name": job.file_name,
        "max_file_size_mb": job.max_file_size_mb,
        # The first files only, for a split export of very many: manifest.json has them all.
        "file_count": job.file_count,
        "files": [
            {
                **file.public_view(),
                "download_url": f"/v1/exports/{job.id}/download?file={file.number}",
            }
            for file in job.files
        ],
        "manifest": job.manifest,
        "fields": job.fields,
        "filters": job.filters,
        "time_range": job.time_range,
        "window": job_window(job),
        "options": job.options,
        "aggregate": job.aggregate,
        "summary": job.summary,
        "privacy": job.privacy,
        "error": job.error.model_dump() if job.error else None,
        "legal_hold": job.legal_hold,
        "schedule_id": job.schedule_id,
        "delivery": delivery_view(job),
        "created_at": utc_text(job.created_at),
        "started_at": utc_text(job.started_at),
        "completed_at": utc_text(job.completed_at),
        "expires_at": utc_text(job.expires_at),
        "download_url": job_links(job).get("download"),
        "links": job_links(job),
    }
