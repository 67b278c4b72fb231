"""The Deliver step with in-memory fakes: the outcome event is sent once whatever is retried,
it and the delivery do not hold each other back, and each attempt is recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataexport.adapters.email_sender import EmailMessage
from dataexport.delivery import (
    AnyDelivery,
    DeliveryPolicy,
    DeliveryRecord,
    DeliveryStatus,
    DeliveryType,
    EmailDelivery,
    S3Delivery,
    SendResult,
    WebhookDelivery,
    WebhookEndpoint,
    initial_record,
)
from dataexport.errors import DeliveryFailed
from dataexport.export_job import ExportFile, ExportJob, ExportStatus, JobError
from dataexport.services.export_delivery import DeliveryServices, deliver_outcome
from dataexport.webhook_signature import tenant_signing_key, verify_signature

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
JOB_ID = "exp_01JEXAMP1E0000000000000000"
SECRET = "deployment-secret"
PRESIGNED = "https://bucket.s3.example/exports/file.csv?X-Amz-Signature=abc"


def completed_job(delivery: AnyDelivery, **changes: Any) -> ExportJob:
    job = ExportJob(
        id=JOB_ID,
        org_id="org_acme",
        owner_id="usr_1",
        dataset="usage_logs",
        format="csv",
        fields=["time"],
        file_name="usage_logs-20260201-20260301-" + JOB_ID + ".csv",
        status=ExportStatus.COMPLETED,
        rows_exported=42,
        bytes=1234,
        sha256="ab" * 32,
        s3_key=f"exports/org_acme/{JOB_ID}/file.csv",
        created_at=NOW - timedelta(minutes=5),
        completed_at=NOW - timedelta(minutes=1),
        expires_at=NOW + timedelta(days=7),
        delivery=delivery,
        delivery_record=initial_record(delivery),
    )
    return job.model_copy(update=changes)


@dataclass
class FakeJobs:
    job: ExportJob

    def get(self, job_id: str) -> ExportJob:
        assert job_id == self.job.id
        return self.job

    def update_fields(self, job_id: str, **changes: Any) -> None:
        assert set(changes) == {"delivery_record"}
        assert isinstance(changes["delivery_record"], DeliveryRecord)
        self.job = self.job.model_copy(update=changes)


@dataclass
class FakeFiles:
    copies: list[tuple[str, str, str]] = field(default_factory=list)

    def presigned_download_url(self, key: str, file_name: str, ttl_seconds: int) -> str:
        return PRESIGNED

    def copy_out(self, key: str, bucket: str, target_key: str) -> str | None:
        self.copies.append((key, bucket, target_key))
        return None


@dataclass
class FakeAudit:
    events: list[dict[str, Any]] = field(default_factory=list)

    def record(self, type: Any, **fields: Any) -> object:
        self.events.append({"type": type, **fields})
        return None


@dataclass
class FakeEvents:
    refusals_left: int = 0
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if self.refusals_left:
            self.refusals_left -= 1
            raise DeliveryFailed("EventBridge did not take the event.")
        self.published.append((detail_type, detail))


@dataclass
class FakeWebhooks:
    answers: list[SendResult]
    posts: list[tuple[WebhookEndpoint, bytes, dict[str, str]]] = field(default_factory=list)

    def post(
        self, endpoint: WebhookEndpoint, body: bytes, headers: Mapping[str, str]
    ) -> SendResult:
        self.posts.append((endpoint, body, dict(headers)))
        return self.answers.pop(0)


@dataclass
class FakeEmail:
    sent: list[EmailMessage] = field(default_factory=list)

    def send(self, message: EmailMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(status_code=200)


@dataclass
class World:
    jobs: FakeJobs
    files: FakeFiles
    audit: FakeAudit
    events: FakeEvents
    webhooks: FakeWebhooks
    email: FakeEmail

    def services(self) -> DeliveryServices:
        return DeliveryServices(
            jobs=self.jobs,
            objects=self.files,
            audit=self.audit,
            events=self.events,
            webhooks=self.webhooks,
            email=self.email,
            policy=DeliveryPolicy(
                email_sender="exports@example.com",
                email_allowed_domains=frozenset({"example.com"}),
                bucket_names=frozenset({"reports-bucket"}),
            ),
            signing_secret=lambda: SECRET,
            link_ttl_seconds=3600,
            clock=lambda: NOW,
        )


def world(job: ExportJob, answers: list[SendResult] | None = None, refusals: int = 0) -> World:
    return World(
        FakeJobs(job),
        FakeFiles(),
        FakeAudit(),
        FakeEvents(refusals),
        FakeWebhooks(answers or []),
        FakeEmail(),
    )


WEBHOOK = WebhookDelivery(type=DeliveryType.WEBHOOK, url="https://hooks.example.com/in?token=t")


def test_a_retried_webhook_is_recorded_per_attempt_and_announced_once() -> None:
    given = world(
        completed_job(WEBHOOK), [SendResult(status_code=503), SendResult(status_code=200)]
    )

    # The first attempt meets a 503: the step asks the state machine to retry
    with pytest.raises(DeliveryFailed):
        deliver_outcome(JOB_ID, given.services())
    # The retry is delivered
    record = deliver_outcome(JOB_ID, given.services())

    assert record.status is DeliveryStatus.DELIVERED and record.delivered_at == NOW
    assert [attempt.status_code for attempt in record.attempts] == [503, 200]
    assert [detail_type for detail_type, _ in given.events.published] == ["Export Completed"]
    (first, second) = given.webhooks.posts
    assert first[2]["DataExport-Delivery-Id"] == second[2]["DataExport-Delivery-Id"]
    key = tenant_signing_key(SECRET, "org_acme")
    now = int(NOW.timestamp())
    assert verify_signature(key, second[2]["DataExport-Signature"], second[1], now)
    assert json.loads(second[1])["download"]["url"] == PRESIGNED
    # A delivered job is left alone by a late retry
    assert deliver_outcome(JOB_ID, given.services()) == record
    assert len(given.webhooks.posts) == 2 and len(given.events.published) == 1


def test_an_event_eventbridge_refused_does_not_hold_the_delivery_back() -> None:
    given = world(completed_job(WEBHOOK), [SendResult(status_code=200)], refusals=1)

    with pytest.raises(DeliveryFailed):
        deliver_outcome(JOB_ID, given.services())
    assert given.jobs.job.delivery_record.status is DeliveryStatus.DELIVERED
    assert given.jobs.job.delivery_record.event_sent_at is None

    record = deliver_outcome(JOB_ID, given.services())
    assert record.event_sent_at == NOW and len(given.webhooks.posts) == 1
    assert len(given.events.published) == 1


def test_giving_up_marks_the_delivery_failed_and_the_export_stays_completed() -> None:
    given = world(completed_job(WEBHOOK), [SendResult(error="Timeout")])
    with pytest.raises(DeliveryFailed):
        deliver_outcome(JOB_ID, given.services())
    record = deliver_outcome(JOB_ID, given.services(), give_up=True)
    assert record.status is DeliveryStatus.FAILED
    assert [(a.status_code, a.error) for a in record.attempts] == [(None, "Timeout")]
    assert given.jobs.job.status is ExportStatus.COMPLETED


def test_a_cancelled_export_is_neither_announced_nor_delivered() -> None:
    given = world(completed_job(WEBHOOK, status=ExportStatus.CANCELLED))
    assert deliver_outcome(JOB_ID, given.services()).status is DeliveryStatus.PENDING
    assert not given.events.published and not given.webhooks.posts


def test_a_failed_export_copies_nothing_but_is_announced_with_its_error_code() -> None:
    target = S3Delivery(type=DeliveryType.S3, bucket="reports-bucket")
    job = completed_job(
        target,
        status=ExportStatus.FAILED,
        s3_key=None,
        error=JobError(code="QUERY_FAILED", message="The query failed."),
    )
    given = world(job)
    record = deliver_outcome(JOB_ID, given.services())
    assert record.status is DeliveryStatus.NOT_REQUIRED and not given.files.copies
    ((detail_type, detail),) = given.events.published
    assert detail_type == "Export Failed" and detail["error_code"] == "QUERY_FAILED"
    assert detail["event_id"] == f"{JOB_ID}:failed"


def test_a_split_export_is_copied_file_by_file_with_its_manifest() -> None:
    target = S3Delivery(
        type=DeliveryType.S3, bucket="reports-bucket", prefix="in", key_template="{id}/{file}"
    )
    files = [
        ExportFile(
            number=n,
            file_name=f"f-part-0000{n}.csv",
            s3_key=f"exports/k{n}",
            rows=1,
            bytes=1,
            sha256="0" * 64,
        )
        for n in (1, 2)
    ]
    given = world(completed_job(target, files=files, file_count=2, s3_key="exports/manifest.json"))
    record = deliver_outcome(JOB_ID, given.services())
    assert record.status is DeliveryStatus.DELIVERED
    manifest_name = given.jobs.job.file_name.partition(".")[0] + "-manifest.json"
    assert given.files.copies == [
        ("exports/k1", "reports-bucket", f"in/{JOB_ID}/f-part-00001.csv"),
        ("exports/k2", "reports-bucket", f"in/{JOB_ID}/f-part-00002.csv"),
        ("exports/manifest.json", "reports-bucket", f"in/{JOB_ID}/{manifest_name}"),
    ]
    (audited,) = given.audit.events
    assert audited["actor_role"] == "system" and audited["detail"]["delivery"] == "s3"


def test_an_email_holds_the_link_and_the_api_route() -> None:
    target = EmailDelivery(type=DeliveryType.EMAIL, to=["ana@example.com"])
    given = world(completed_job(target))
    assert deliver_outcome(JOB_ID, given.services()).status is DeliveryStatus.DELIVERED
    (message,) = given.email.sent
    assert message.to == ["ana@example.com"] and PRESIGNED in message.text
    assert f"/v1/exports/{JOB_ID}/download" in message.text
    assert "X-Amz-Signature=abc" in message.html.replace("&amp;", "&")
