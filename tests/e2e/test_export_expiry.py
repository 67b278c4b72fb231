"""With a retention of a few seconds, the state machine's Wait and Expire steps remove the file,
unless the export is under legal hold."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.http_client import ApiClient, http

RETENTION_SECONDS = 3


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[Any]:
    with runtime_factory({"ExportRetentionSeconds": str(RETENTION_SECONDS)}) as started:
        yield started


def test_an_expired_export_is_deleted_and_answers_410(runtime: Any) -> None:
    # Given a completed export whose retention is a few seconds
    client = ApiClient(runtime.api_url, runtime.token("u_expiry", "org_initech", "admin"))
    job = client.create_export(
        {"dataset": "usage_logs", "format": "json", "fields": ["created_at", "model"]}
    )
    completed = client.wait_for(job["id"], {"completed", "failed"})
    assert completed["status"] == "completed", completed["error"]
    _, download = client.download(job["id"])
    assert download.status == 200
    stale_url = client.call("GET", f"/v1/exports/{job['id']}/download").headers["Location"]

    # When the state machine's Wait reaches expires_at
    expired = client.wait_for(job["id"], {"expired"}, timeout=RETENTION_SECONDS + 60)

    # Then the job is expired, its object gone, and the download answers 410
    assert expired["status"] == "expired"
    s3 = runtime.boto3_client("s3")
    listed = s3.list_objects_v2(
        Bucket=runtime.bucket_name, Prefix=f"exports/org_initech/{job['id']}/"
    )
    assert listed.get("KeyCount", 0) == 0
    answer = client.call("GET", f"/v1/exports/{job['id']}/download")
    assert answer.status == 410
    assert answer.json()["error_code"] == "EXPORT_EXPIRED"
    # and even a link issued before expiry no longer serves the file
    assert http("GET", stale_url).status in (403, 404)

    # And the execution took the Wait and Expire steps and succeeded
    sfn = runtime.boto3_client("stepfunctions")
    arn = runtime.execution_arn(job["id"])
    assert runtime.wait_for_execution_end(job["id"]) == "SUCCEEDED"
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")
    ]
    assert entered[-3:] == ["WaitUntilExpiry", "Expire", "ExpiryDecided"] or entered[-4:-1] == [
        "WaitUntilExpiry",
        "Expire",
        "ExpiryDecided",
    ]


def test_a_legal_hold_keeps_an_export_past_its_expiry_until_lifted(runtime: Any) -> None:
    # Given an admin's export, held as soon as it is created (its retention is seconds)
    admin = ApiClient(runtime.api_url, runtime.token("u_hold_admin", "org_initech", "admin"))
    member = ApiClient(runtime.api_url, runtime.token("u_hold_member", "org_initech", "member"))
    job = admin.create_export({"dataset": "usage_logs", "format": "csv", "fields": ["model"]})
    held = admin.call(
        "PUT", f"/v1/exports/{job['id']}/legal-hold", {"hold": True, "reason": "case 2026-17"}
    )
    assert held.status == 200, held.body
    assert held.json()["legal_hold"] is True

    # When its execution reaches the Expire step, long after expires_at
    completed = admin.wait_for(job["id"], {"completed", "failed"})
    assert completed["status"] == "completed", completed["error"]
    status = runtime.wait_for_execution_end(job["id"], timeout=RETENTION_SECONDS + 60)

    # Then the held export is still complete and downloadable, and cannot be deleted
    assert status == "SUCCEEDED"
    expires_at = datetime.fromisoformat(
        admin.call("GET", f"/v1/exports/{job['id']}").json()["expires_at"]
    )
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1)
    kept = admin.call("GET", f"/v1/exports/{job['id']}").json()
    assert kept["status"] == "completed" and kept["legal_hold"] is True
    _, download = admin.download(job["id"])
    assert download.status == 200 and download.body.startswith(b"\xef\xbb\xbfModel")
    refused = admin.call("DELETE", f"/v1/exports/{job['id']}")
    assert refused.status == 403, refused.body
    # And only an admin may lift it, with a reason
    assert member.call(
        "PUT", f"/v1/exports/{job['id']}/legal-hold", {"hold": False, "reason": "x"}
    ).status in (403, 404)
    no_reason = admin.call("PUT", f"/v1/exports/{job['id']}/legal-hold", {"hold": False})
    assert (no_reason.status, no_reason.json()["detail"]["field"]) == (400, "reason")
    lifted = admin.call(
        "PUT", f"/v1/exports/{job['id']}/legal-hold", {"hold": False, "reason": "case closed"}
    )
    assert lifted.status == 200 and lifted.json()["legal_hold"] is False
    assert admin.call("DELETE", f"/v1/exports/{job['id']}").status == 200
    # And the trail says who held and lifted it, and why
    trail = admin.call("GET", "/v1/audit-events?" + urlencode({"type": "LEGAL_HOLD_SET"})).json()
    (set_event,) = [e for e in trail["items"] if e["target_id"] == job["id"]]
    assert set_event["actor_id"] == "u_hold_admin"
    assert set_event["detail"]["reason"] == "case 2026-17"
    cleared = admin.call(
        "GET", "/v1/audit-events?" + urlencode({"type": "LEGAL_HOLD_CLEARED"})
    ).json()
    assert [e["detail"]["reason"] for e in cleared["items"] if e["target_id"] == job["id"]] == [
        "case closed"
    ]


def test_an_expired_export_cannot_be_held(runtime: Any) -> None:
    admin = ApiClient(runtime.api_url, runtime.token("u_hold_late", "org_initech", "admin"))
    job = admin.create_export({"dataset": "usage_logs", "format": "csv", "fields": ["model"]})
    admin.wait_for(job["id"], {"expired"}, timeout=RETENTION_SECONDS + 60)
    answer = admin.call(
        "PUT", f"/v1/exports/{job['id']}/legal-hold", {"hold": True, "reason": "too late"}
    )
    assert answer.status == 409, answer.body
    assert answer.json()["detail"]["status"] == "expired"
