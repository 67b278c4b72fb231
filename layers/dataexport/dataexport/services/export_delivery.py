"""The Deliver step: announce a finished export, then deliver it where its job says.

It runs after Upload (completed) and after MarkFailed (failed). First the outcome event goes to
EventBridge, once: the job records when it was sent, so a retried step does not send it again
(a crash between sending and recording can repeat it; the event's `event_id` is the same, for
consumers to de-duplicate). Then one delivery attempt: its time and status code or error class
is added to the job. An attempt that may succeed later raises DeliveryFailed, which the state
machine retries with backoff; when it gives up it calls this step with `give_up`, and the
delivery is marked failed. A delivery never changes the export's own status.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from aws_lambda_powertools import Logger

from dataexport.adapters.email_sender import EmailMessage
from dataexport.audit import SYSTEM_ROLE, ActorRole, AuditEventType
from dataexport.delivery import (
    FINAL_STATUSES,
    TARGET_REFUSED,
    DeliveryAttempt,
    DeliveryPolicy,
    DeliveryRecord,
    DeliveryStatus,
    EmailDelivery,
    KeyValues,
    LinkDelivery,
    S3Delivery,
    SendOutcome,
    SendResult,
    WebhookDelivery,
    WebhookEndpoint,
    check_webhook_url,
    render_key,
)
from dataexport.errors import DeliveryFailed, InvalidRequest
from dataexport.export_job import ExportJob, ExportStatus, utc_now, utc_text
from dataexport.identity import Role
from dataexport.services.exports import download_target
from dataexport.webhook_signature import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    signature_header,
    tenant_signing_key,
)

logger = Logger(child=True)

DETAIL_TYPES: Final = {
    ExportStatus.COMPLETED: "Export Completed",
    ExportStatus.FAILED: "Export Failed",
}
WEBHOOK_EVENT_TYPES: Final = {
    ExportStatus.COMPLETED: "export.completed",
    ExportStatus.FAILED: "export.failed",
}
DELIVERY_ID_PREFIX: Final = "dlv_"


# What the step uses of each adapter (JobStore, ObjectStore, AuditTrail, EventBus,
# WebhookClient, EmailSender), so that tests can hand it fakes.
class DeliveryJobs(Protocol):
    def get(self, job_id: str) -> ExportJob: ...
    def update_fields(self, job_id: str, **changes: Any) -> None: ...


class DeliveryFiles(Protocol):
    def presigned_download_url(self, key: str, file_name: str, ttl_seconds: int) -> str: ...
    def copy_out(self, key: str, bucket: str, target_key: str) -> str | None: ...


class DeliveryAudit(Protocol):
    def record(
        self,
        type: AuditEventType,
        *,
        org_id: str,
        actor_id: str,
        actor_role: ActorRole | Role,
        target_type: str | None = None,
        target_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> object: ...


class OutcomeEvents(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


class WebhookPoster(Protocol):
    def post(
        self, endpoint: WebhookEndpoint, body: bytes, headers: Mapping[str, str]
    ) -> SendResult: ...


class EmailSending(Protocol):
    def send(self, message: EmailMessage) -> SendResult: ...


@dataclass(frozen=True)
class DeliveryServices:
    """What the Deliver step needs; built once per process by its function."""

    jobs: DeliveryJobs
    objects: DeliveryFiles
    audit: DeliveryAudit
    events: OutcomeEvents
    webhooks: WebhookPoster
    # None when the deployment has no sender (email targets are then refused at creation).
    email: EmailSending | None
    policy: DeliveryPolicy
    # The deployment's webhook secret, read when needed (it is cached with a TTL).
    signing_secret: Callable[[], str]
    link_ttl_seconds: int
    clock: Callable[[], datetime] = utc_now


def job_summary(job: ExportJob) -> dict[str, Any]:
    """What the outcome event and the webhook say about a job: ids, counts, checksum, times
    and a safe error; never a link, an S3 key or row data."""
    return {
        "id": job.id,
        "org_id": job.org_id,
        "owner_id": job.owner_id,
        "schedule_id": job.schedule_id,
        "status": job.status.value,
        "dataset": job.dataset,
        "format": job.format,
        "compression": job.compression,
        "rows": job.rows_exported if job.status is ExportStatus.COMPLETED else None,
        "bytes": job.bytes,
        "sha256": job.sha256,
        "file_name": job.file_name,
        "file_count": job.file_count,
        "created_at": utc_text(job.created_at),
        "completed_at": utc_text(job.completed_at),
        "expires_at": utc_text(job.expires_at),
        "error": job.error.model_dump() if job.error else None,
    }


def delivery_id(job: ExportJob) -> str:
    """The id every attempt of the job's delivery carries (a job has one outcome)."""
    return DELIVERY_ID_PREFIX + job.id.removeprefix("exp_")


def outcome_event(job: ExportJob) -> tuple[str, dict[str, Any]]:
    """The detail type and detail of the job's EventBridge event."""
    detail = {
        **job_summary(job),
        "event_id": f"{job.id}:{job.status.value}",
        "error_code": job.error.code if job.error else None,
    }
    return DETAIL_TYPES[job.status], detail


def deliver_outcome(
    job_id: str, services: DeliveryServices, *, give_up: bool = False
) -> DeliveryRecord:
    """Send the job's outcome event (once) and make one attempt at its delivery (or, with
    `give_up`, mark it failed). The two are independent: an event EventBridge did not take
    does not hold the delivery back, nor the other way round; DeliveryFailed is raised when
    either is to be tried again."""
    job = services.jobs.get(job_id)
    if job.status not in DETAIL_TYPES:
        # Cancelled (or already gone): nobody is told of an export that did not finish.
        return job.delivery_record
    record = job.delivery_record
    event_sent = record.event_sent_at is not None
    if not event_sent:
        event_sent = _send_event(job, services)
        if event_sent:
            record = _save(
                job, record.model_copy(update={"event_sent_at": services.clock()}), services
            )
    retry = False
    if record.status not in FINAL_STATUSES:
        if give_up:
            logger.warning("Delivery given up", extra={"job_id": job.id})
            record = _save(
                job, record.model_copy(update={"status": DeliveryStatus.FAILED}), services
            )
        else:
            record, retry = _attempt_delivery(job, record, services)
    if retry or not event_sent:
        raise DeliveryFailed(f"Export {job.id} is to be announced or delivered again.")
    return record


def _send_event(job: ExportJob, services: DeliveryServices) -> bool:
    """Whether EventBridge took the job's outcome event."""
    detail_type, detail = outcome_event(job)
    try:
        services.events.publish(detail_type, detail)
    except DeliveryFailed:
        logger.warning("Outcome event not sent", extra={"job_id": job.id})
        return False
    logger.info("Outcome event sent", extra={"job_id": job.id, "detail_type": detail_type})
    return True


def _attempt_delivery(
    job: ExportJob, record: DeliveryRecord, services: DeliveryServices
) -> tuple[DeliveryRecord, bool]:
    """One attempt, recorded on the job; and whether another one is due later."""
    result = _attempt(job, services)
    if result is None:
        status = DeliveryStatus.NOT_REQUIRED
        return _save(job, record.model_copy(update={"status": status}), services), False
    now = services.clock()
    record = record.with_attempt(
        DeliveryAttempt(at=now, status_code=result.status_code, error=result.error)
    )
    outcome = result.outcome
    if outcome is SendOutcome.DELIVERED:
        record = record.model_copy(update={"status": DeliveryStatus.DELIVERED, "delivered_at": now})
    elif outcome is SendOutcome.GIVE_UP:
        record = record.model_copy(update={"status": DeliveryStatus.FAILED})
    record = _save(job, record, services)
    logger.info(
        "Delivery attempted",
        extra={
            "job_id": job.id,
            "type": job.delivery.type.value,
            "attempt": len(record.attempts),
            "status_code": result.status_code,
            "error": result.error,
            "outcome": outcome.value,
        },
    )
    return record, outcome is SendOutcome.RETRY


def _save(job: ExportJob, record: DeliveryRecord, services: DeliveryServices) -> DeliveryRecord:
    services.jobs.update_fields(job.id, delivery_record=record)
    return record


def _attempt(job: ExportJob, services: DeliveryServices) -> SendResult | None:
    """One attempt at the job's delivery; None when there is nothing to send."""
    target = job.delivery
    if isinstance(target, WebhookDelivery):
        return _send_webhook(job, target, services)
    if isinstance(target, EmailDelivery):
        return _send_email(job, target, services)
    if isinstance(target, S3Delivery) and job.status is ExportStatus.COMPLETED:
        return _copy_to_bucket(job, target, services)
    assert isinstance(target, LinkDelivery | S3Delivery)
    return None


# --------------------------------------------------------------------------- links


@dataclass(frozen=True)
class _Link:
    url: str
    expires_at: datetime
    path: str


def _audit_handed_out(job: ExportJob, services: DeliveryServices, **detail: str) -> None:
    """DATA_EXPORTED by the system: a download link issued, or the file copied out."""
    services.audit.record(
        AuditEventType.DATA_EXPORTED,
        org_id=job.org_id,
        actor_id=job.owner_id,
        actor_role=SYSTEM_ROLE,
        target_type="export",
        target_id=job.id,
        detail={"dataset": job.dataset, "format": job.format, **detail},
    )


def _issue_link(job: ExportJob, services: DeliveryServices, via: str) -> _Link | None:
    """A presigned link to a completed export's file (a split one's manifest), audited as a
    download link issued; None for a failed export."""
    if job.status is not ExportStatus.COMPLETED or job.s3_key is None:
        return None
    key, file_name = download_target(job)
    _audit_handed_out(job, services, delivery=via)
    ttl = services.link_ttl_seconds
    url = services.objects.presigned_download_url(key, file_name, ttl)
    expires_at = services.clock() + timedelta(seconds=ttl)
    return _Link(url=url, expires_at=expires_at, path=f"/v1/exports/{job.id}/download")


# --------------------------------------------------------------------------- webhook


def webhook_body(job: ExportJob, link: _Link | None, sent_at: datetime) -> bytes:
    """The JSON a webhook receiver gets: the delivery id, what happened, the job's summary
    and, for a completed export, its download link."""
    payload = {
        "id": delivery_id(job),
        "type": WEBHOOK_EVENT_TYPES[job.status],
        "sent_at": utc_text(sent_at),
        "export": job_summary(job),
        "download": None
        if link is None
        else {"url": link.url, "expires_at": utc_text(link.expires_at), "api_path": link.path},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _send_webhook(
    job: ExportJob, target: WebhookDelivery, services: DeliveryServices
) -> SendResult:
    try:
        # Checked again: the deployment's policy may have changed since the job was created.
        endpoint = check_webhook_url(target.url, services.policy.allow_private_targets)
    except InvalidRequest:
        return SendResult(error=TARGET_REFUSED)
    now = services.clock()
    body = webhook_body(job, _issue_link(job, services, "webhook"), now)
    key = tenant_signing_key(services.signing_secret(), job.org_id)
    headers = {
        DELIVERY_ID_HEADER: delivery_id(job),
        SIGNATURE_HEADER: signature_header(key, int(now.timestamp()), body),
    }
    return services.webhooks.post(endpoint, body, headers)


# --------------------------------------------------------------------------- email


def email_message(job: ExportJob, target: EmailDelivery, link: _Link | None) -> EmailMessage:
    """A short message: the export's name, and its link (completed) or its safe error."""
    name = job.file_name
    if link is None:
        reason = job.error.message if job.error else "The export failed."
        subject = f"Export {job.dataset} failed"
        text = f"The export {name} ({job.id}) failed: {reason}\n"
        body = (
            f"<p>The export <b>{html.escape(name)}</b> ({html.escape(job.id)}) failed: "
            f"{html.escape(reason)}</p>"
        )
        return EmailMessage(to=list(target.to), subject=subject, text=text, html=body)
    expires = utc_text(link.expires_at)
    rows = job.rows_exported or 0
    subject = f"Export {job.dataset} is ready"
    text = (
        f"The export {name} is ready: {rows} rows.\n\n"
        f"Download it (the link works until {expires}):\n{link.url}\n\n"
        f"Later, download it from the API: GET {link.path}\n"
    )
    body = (
        f"<p>The export <b>{html.escape(name)}</b> is ready: {rows} rows.</p>"
        f'<p><a href="{html.escape(link.url, quote=True)}">Download it</a> '
        f"(the link works until {html.escape(str(expires))}).</p>"
        f"<p>Later, download it from the API: <code>GET {html.escape(link.path)}</code></p>"
    )
    return EmailMessage(to=list(target.to), subject=subject, text=text, html=body)


def _send_email(job: ExportJob, target: EmailDelivery, services: DeliveryServices) -> SendResult:
    if services.email is None:
        return SendResult(error="EmailNotConfigured", final=True)
    return services.email.send(email_message(job, target, _issue_link(job, services, "email")))


# --------------------------------------------------------------------------- s3


def _copy_to_bucket(job: ExportJob, target: S3Delivery, services: DeliveryServices) -> SendResult:
    """Copy the file, or a split export's files and manifest, under the rendered keys."""
    try:
        services.policy.check_bucket(target.bucket)
    except InvalidRequest:
        return SendResult(error=TARGET_REFUSED)
    values = KeyValues(
        dataset=job.dataset,
        job_id=job.id,
        format=job.format,
        created_at=job.created_at,
        timezone=ZoneInfo(str(job.options.get("timezone", "UTC"))),
    )
    sources = [download_target(job, number) for number in range(1, job.file_count + 1)]
    sources.append(download_target(job))
    for key, file_name in sources:
        destination = render_key(target.prefix, target.key_template, values, file_name)
        error = services.objects.copy_out(key, target.bucket, destination)
        if error is not None:
            logger.warning(
                "Copy to the destination failed", extra={"job_id": job.id, "error": error}
            )
            return SendResult(error=error, final=error in _FINAL_S3_ERRORS)
    _audit_handed_out(job, services, delivery="s3", bucket=target.bucket)
    return SendResult(status_code=200)


# S3 answers these when the destination itself refuses: another attempt gets the same answer.
_FINAL_S3_ERRORS: Final = frozenset(
    {"AccessDenied", "NoSuchBucket", "InvalidBucketName", "InvalidRequest", "403", "404"}
)
