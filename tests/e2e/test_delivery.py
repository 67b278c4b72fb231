"""Delivery of finished exports, end to end: webhooks (signed, retried by the state machine),
email through SES, copies to a bucket, and the outcome events on EventBridge."""

from __future__ import annotations

import hashlib
import html
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import Message, RawMessage, ses_backends

from tests.conftest import RuntimeFactory
from tests.e2e.delivery_receivers import OutcomeEvents, WebhookReceiver
from tests.e2e.http_client import ApiClient, http

SENDER = "exports@dataexport.example"
DESTINATION_BUCKET = "delivery-dest"
EXPORT = {
    "dataset": "usage_logs",
    "format": "csv",
    "time_range": {"preset": "all_time"},
    "options": {"timezone": "Europe/Berlin"},
}
FINAL_DELIVERY = {"delivered", "failed", "not_required"}


@pytest.fixture(scope="module")
def runtime(runtime_factory: RuntimeFactory) -> Iterator[Any]:
    with runtime_factory(
        {
            # The receivers of these tests listen on 127.0.0.1 over plain http.
            "AllowPrivateDeliveryTargets": "true",
            "EmailSender": SENDER,
            "EmailAllowedDomains": "example.com",
            "DeliveryBucketArns": f"arn:aws:s3:::{DESTINATION_BUCKET}",
        }
    ) as started:
        started.boto3_client("s3").create_bucket(Bucket=DESTINATION_BUCKET)
        yield started


@pytest.fixture(scope="module")
def events(runtime: Any) -> OutcomeEvents:
    return OutcomeEvents(runtime, "delivery-outcomes")


def signing_key(client: ApiClient) -> str:
    answer = client.call("GET", "/v1/webhook-signing-secret")
    assert answer.status == 200, answer.body
    assert answer.headers.get("Cache-Control") == "no-store"
    key: str = answer.json()["secret"]
    return key


def wait_for_delivery(client: ApiClient, job_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll the job until its delivery has ended (with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.call("GET", f"/v1/exports/{job_id}").json()
        if job["delivery"]["status"] in FINAL_DELIVERY and job["status"] != "running":
            return job
        assert time.monotonic() < deadline, f"delivery of {job_id} not done: {job['delivery']}"
        time.sleep(0.2)


def export_with_webhook(
    client: ApiClient, body: dict[str, Any], answers: list[int]
) -> tuple[dict[str, Any], WebhookReceiver]:
    """Run an export delivered to a receiver answering `answers` (checking signatures with
    the tenant's key from the API): the job once its delivery ended, and the receiver."""
    receiver = WebhookReceiver(signing_key(client), answers=answers)
    try:
        job = client.create_export({**body, "delivery": {"type": "webhook", "url": receiver.url}})
        assert job["delivery"]["status"] == "pending"
        return wait_for_delivery(client, job["id"]), receiver
    finally:
        receiver.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_webhook_answered_500_is_retried_and_its_link_downloads_the_export(
    runtime: Any, events: OutcomeEvents
) -> None:
    # Given a receiver that checks signatures with the tenant's key from the API, and fails
    # the first delivery
    client = ApiClient(runtime.api_url, runtime.token("u_hook_1", "org_acme", "admin"))

    # When an export with a webhook delivery completes
    done, receiver = export_with_webhook(client, EXPORT, answers=[500, 200])

    # Then the state machine retried: two signed POSTs with the same delivery id, and the
    # second one's timestamp and signature are its own
    first, second = receiver.received
    assert first.signature_valid and second.signature_valid
    assert (first.answered, second.answered) == (500, 200)
    delivery_ids = {hook.headers["DataExport-Delivery-Id"] for hook in (first, second)}
    assert len(delivery_ids) == 1 and first.json()["id"] in delivery_ids
    assert first.headers["DataExport-Signature"] != second.headers["DataExport-Signature"]
    assert first.timestamp is not None and second.timestamp is not None
    assert second.timestamp >= first.timestamp

    # And the job shows the delivery delivered after two attempts, without the URL's query
    assert done["status"] == "completed"
    delivery = done["delivery"]
    assert delivery["status"] == "delivered" and delivery["delivered_at"]
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [500, 200]
    assert delivery["url"].endswith("/hooks/dataexport")

    # And the payload summarises the job and links to its file, which has the export's bytes
    payload = second.json()
    assert payload["type"] == "export.completed"
    summary = payload["export"]
    assert summary["id"] == done["id"] and summary["status"] == "completed"
    assert (summary["rows"], summary["bytes"], summary["sha256"]) == (
        done["rows_exported"],
        done["bytes"],
        done["sha256"],
    )
    assert summary["file_name"] == done["file_name"] and summary["expires_at"]
    assert payload["download"]["api_path"] == f"/v1/exports/{done['id']}/download"
    linked = http("GET", payload["download"]["url"])
    assert linked.status == 200 and sha256(linked.body) == done["sha256"]
    _, downloaded = client.download(done["id"])
    assert downloaded.body == linked.body

    # And one Export Completed event went to EventBridge, though the step ran twice
    (event,) = events.for_job(done["id"])
    assert event["source"] == "dataexport" and event["detail-type"] == "Export Completed"
    detail = event["detail"]
    assert detail["org_id"] == "org_acme" and detail["sha256"] == done["sha256"]
    assert detail["rows"] == done["rows_exported"] and "download" not in detail
    assert "http" not in str(detail)

    # And the links issued were audited as downloads: one per attempt by the system, beside
    # the admin's own download above
    audit = client.call("GET", "/v1/audit-events?type=DATA_EXPORTED&limit=200").json()["items"]
    issued = [item for item in audit if item["target_id"] == done["id"]]
    by_system = [item for item in issued if item["actor_role"] == "system"]
    assert len(by_system) == 2 and len(issued) == 3
    assert all(item["detail"]["delivery"] == "webhook" for item in by_system)


def test_a_webhook_that_refuses_the_delivery_fails_it_but_the_export_stays(
    runtime: Any, events: OutcomeEvents
) -> None:
    # Given a receiver answering 400 (final: not retried; the retry schedule is a unit test)
    client = ApiClient(runtime.api_url, runtime.token("u_hook_2", "org_acme", "admin"))
    done, receiver = export_with_webhook(client, EXPORT, answers=[400])

    # Then the delivery failed after one attempt, and the export is completed and downloadable
    assert len(receiver.received) == 1
    assert done["status"] == "completed"
    assert done["delivery"]["status"] == "failed"
    assert [attempt["status_code"] for attempt in done["delivery"]["attempts"]] == [400]
    _, downloaded = client.download(done["id"])
    assert downloaded.status == 200 and sha256(downloaded.body) == done["sha256"]

    # And the execution went on to wait for the expiry rather than failing
    sfn = runtime.boto3_client("stepfunctions")
    arn = runtime.execution_arn(done["id"])
    deadline = time.monotonic() + 30
    while "WaitUntilExpiry" not in (entered := entered_states(sfn, arn)):
        assert time.monotonic() < deadline, entered
        time.sleep(0.1)
    assert "MarkFailed" not in entered and "DeliveryGivenUp" not in entered
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    assert [event["detail-type"] for event in events.for_job(done["id"])] == ["Export Completed"]


def entered_states(sfn: Any, arn: str) -> list[str]:
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history
        if event["type"].endswith("StateEntered")
    ]


def test_a_failed_export_notifies_its_webhook_and_emits_export_failed(
    runtime: Any, events: OutcomeEvents
) -> None:
    # Given an export of a dataset whose source is missing, with a webhook delivery
    client = ApiClient(runtime.api_url, runtime.token("u_hook_3", "org_acme", "admin"))
    done, receiver = export_with_webhook(
        client, {"dataset": "broken_source", "format": "csv"}, answers=[200]
    )

    # Then the receiver heard of the failure, with its safe error and no link
    assert done["status"] == "failed" and done["delivery"]["status"] == "delivered"
    (hook,) = receiver.received
    payload = hook.json()
    assert hook.signature_valid and payload["type"] == "export.failed"
    assert payload["download"] is None
    assert payload["export"]["status"] == "failed"
    assert payload["export"]["error"] == {
        "code": "QUERY_FAILED",
        "message": done["error"]["message"],
    }

    # And EventBridge got Export Failed with the error code
    (event,) = events.for_job(done["id"])
    assert event["detail-type"] == "Export Failed"
    assert event["detail"]["error_code"] == "QUERY_FAILED"
    assert event["detail"]["status"] == "failed"


def ses_messages_to(address: str) -> list[Any]:
    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return [
        message
        for message in backend.sent_messages
        if address in getattr(message, "destinations", {}).get("ToAddresses", [])
    ]


def test_an_email_delivery_sends_a_link_and_no_attachment(runtime: Any) -> None:
    # Given an export to be emailed to an address of an allowed domain
    client = ApiClient(runtime.api_url, runtime.token("u_mail_1", "org_acme", "member"))
    job = client.create_export({**EXPORT, "delivery": {"type": "email", "to": ["ana@example.com"]}})

    # When it completes
    done = wait_for_delivery(client, job["id"])

    # Then SES sent one message from the deployment's sender, a plain SendEmail (which cannot
    # carry attachments) holding a link that downloads the export
    assert done["delivery"]["status"] == "delivered"
    (message,) = ses_messages_to("ana@example.com")
    assert isinstance(message, Message) and not isinstance(message, RawMessage)
    assert message.source == SENDER
    assert "Content-Type:" not in message.body and "base64," not in message.body
    (link,) = re.findall(r'href="([^"]+)"', message.body)
    downloaded = http("GET", html.unescape(link))
    assert downloaded.status == 200 and sha256(downloaded.body) == done["sha256"]
    assert f"/v1/exports/{job['id']}/download" in message.body


def test_a_failed_export_sends_a_short_failure_notice_by_email(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("u_mail_2", "org_acme", "admin"))
    job = client.create_export(
        {
            "dataset": "broken_source",
            "format": "csv",
            "delivery": {"type": "email", "to": ["bo@example.com"]},
        }
    )
    done = wait_for_delivery(client, job["id"])
    assert done["status"] == "failed" and done["delivery"]["status"] == "delivered"
    (message,) = ses_messages_to("bo@example.com")
    assert "failed" in message.subject and "href" not in message.body
    assert done["error"]["message"] in html.unescape(message.body)


def test_an_s3_delivery_copies_the_file_under_the_rendered_key(runtime: Any) -> None:
    # Given an export to be copied into an allowed bucket, keyed by dataset and month
    client = ApiClient(runtime.api_url, runtime.token("u_s3_1", "org_acme", "admin"))
    delivery = {
        "type": "s3",
        "bucket": DESTINATION_BUCKET,
        "prefix": "reports/",
        "key_template": "{dataset}/{yyyy}/{mm}/{file}",
    }
    job = client.create_export({**EXPORT, "delivery": delivery})

    # When it completes
    done = wait_for_delivery(client, job["id"])

    # Then the bucket holds the file under the key rendered in the export's zone
    assert done["delivery"]["status"] == "delivered"
    created = _instant(done["created_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    key = f"reports/usage_logs/{created:%Y}/{created:%m}/{done['file_name']}"
    copied = runtime.boto3_client("s3").get_object(Bucket=DESTINATION_BUCKET, Key=key)
    assert sha256(copied["Body"].read()) == done["sha256"]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_scheduled_run_is_delivered_to_the_schedules_webhook(runtime: Any) -> None:
    # Given a schedule whose export is delivered to a webhook, and a receiver checking signatures
    client = ApiClient(runtime.api_url, runtime.token("u_sched_hook", "org_globex", "admin"))
    receiver = WebhookReceiver(signing_key(client), answers=[200])
    try:
        created = client.call(
            "POST",
            "/v1/schedules",
            {
                "name": "Weekly usage to our webhook",
                "schedule_expression": "cron(0 6 ? * MON *)",
                "timezone": "Europe/Berlin",
                "export": {
                    "dataset": "usage_logs",
                    "format": "ndjson",
                    "time_range": {"preset": "7d"},
                    "delivery": {"type": "webhook", "url": receiver.url},
                },
            },
        )
        assert created.status == 201, created.body
        schedule_id = created.json()["id"]

        # When the schedule fires
        firing = runtime.fire(schedule_id)
        assert firing.invocation is not None
        job_id = firing.invocation.json()["job_id"]
        job = wait_for_delivery(client, job_id)

        # Then its job went to the webhook, signed, naming the schedule, with a working link
        assert job["status"] == "completed" and job["delivery"]["status"] == "delivered"
        (received,) = receiver.received
        assert received.signature_valid
        payload = received.json()
        assert payload["export"]["schedule_id"] == schedule_id
        assert payload["export"]["id"] == job_id
    finally:
        receiver.close()


def test_a_schedules_delivery_is_checked_when_it_is_created(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("u_sched_bad", "org_globex", "admin"))
    answer = client.call(
        "POST",
        "/v1/schedules",
        {
            "name": "To a bucket nobody allowed",
            "schedule_expression": "cron(0 6 * * ? *)",
            "export": {
                "dataset": "usage_logs",
                "delivery": {"type": "s3", "bucket": "someone-elses-bucket"},
            },
        },
    )
    assert answer.status == 400, answer.body
    assert answer.json()["detail"]["field"] == "export.delivery.bucket"
