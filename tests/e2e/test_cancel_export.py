"""POST /v1/exports/{id}/cancel over real HTTP: a queued export never runs, a running one stops
mid-stream, leaves nothing in S3, and hands its running slot to the next queued export."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataexport_local.postgres import LocalDatabase
from tests.e2e.http_client import ApiClient
from tests.e2e.test_format_memory import probe_runtime

TENANT = "org_probe"
# In segments of 10,000 rows, one per Format invocation: the export takes a hundred
# invocations, several seconds, and reports its progress after each.
LONG_EXPORT_ROWS = 1_000_000
SEGMENT_ROWS = 10_000
SHORT_EXPORT_ROWS = 1_000
BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)
ERROR_KEYS = {"error_code", "message", "detail"}


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any, database: LocalDatabase) -> Iterator[Any]:
    # One running export per tenant: a second one waits queued behind it.
    parameters = {
        "MaxRunningExportsPerTenant": "1",
        "ExportSegmentRows": str(SEGMENT_ROWS),
        "FormatTimeBudgetSeconds": "0",
    }
    with probe_runtime(runtime_factory, database, parameters, LONG_EXPORT_ROWS) as started:
        yield started


@pytest.fixture(scope="module")
def admin(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("ada", TENANT, "admin"))


def probe_export(rows: int, timezone: str) -> dict[str, Any]:
    """An export of the first `rows` probe rows (distinct zones keep requests from folding)."""
    return {
        "dataset": "memory_probe",
        "format": "csv",
        "fields": ["id", "created_at", "payload", "amount"],
        "time_range": {
            "start": BASE_TIME.isoformat(),
            "end": (BASE_TIME + timedelta(seconds=rows + 1)).isoformat(),
        },
        "options": {"timezone": timezone},
    }


def wait_until_streaming(client: ApiClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll until the Format step has written progress: it is mid-stream."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.call("GET", f"/v1/exports/{job_id}").json()
        if job["status"] == "running" and job["rows_exported"]:
            return job
        assert job["status"] in {"queued", "running"}, job
        if time.monotonic() > deadline:
            raise AssertionError(f"export {job_id} did not start streaming within {timeout}s")
        time.sleep(0.2)


def execution_status(runtime: Any, job_id: str) -> str | None:
    """The job's Step Functions execution status, or None if it was never started."""
    sfn = runtime.boto3_client("stepfunctions")
    try:
        status: str = sfn.describe_execution(executionArn=runtime.execution_arn(job_id))["status"]
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
    return status


def left_in_s3(runtime: Any, job_id: str) -> list[str]:
    """Every object and unfinished multipart upload the job has in the bucket."""
    s3 = runtime.boto3_client("s3")
    left: list[str] = []
    for prefix in (f"staging/{job_id}/", f"exports/{TENANT}/{job_id}/"):
        listed = s3.list_objects_v2(Bucket=runtime.bucket_name, Prefix=prefix)
        left += [item["Key"] for item in listed.get("Contents", [])]
    uploads = s3.list_multipart_uploads(Bucket=runtime.bucket_name).get("Uploads", [])
    left += [f"upload:{upload['Key']}" for upload in uploads if job_id in upload["Key"]]
    return left


def cancel(client: ApiClient, job_id: str) -> Any:
    return client.call("POST", f"/v1/exports/{job_id}/cancel")


def test_cancelling_stops_queued_and_running_exports_and_frees_the_slot(
    runtime: Any, admin: ApiClient
) -> None:
    # Given a long export streaming in the tenant's only running slot, and two queued behind it
    running = admin.create_export(probe_export(LONG_EXPORT_ROWS, "UTC"))
    wait_until_streaming(admin, running["id"])
    queued = admin.create_export(probe_export(SHORT_EXPORT_ROWS, "Europe/Paris"))
    next_in_line = admin.create_export(probe_export(SHORT_EXPORT_ROWS, "Europe/Rome"))
    assert queued["status"] == next_in_line["status"] == "queued"
    # and a queued export is downloadable once it completes
    waiting = admin.call("GET", f"/v1/exports/{queued['id']}/download")
    assert waiting.status == 409 and waiting.json()["error_code"] == "EXPORT_NOT_READY"
    assert "once completed" in waiting.json()["message"]

    # When another tenant's admin and a member of the tenant try to cancel the running one
    for stranger in (
        ApiClient(runtime.api_url, runtime.token("ada", "org_acme", "admin")),
        ApiClient(runtime.api_url, runtime.token("mia", TENANT, "member")),
    ):
        refused = cancel(stranger, running["id"])
        # Then they are told it does not exist, exactly as for a missing export
        assert refused.status == 404 and refused.json().keys() == ERROR_KEYS
        assert refused.json()["error_code"] == "EXPORT_NOT_FOUND"
    assert admin.call("GET", f"/v1/exports/{running['id']}").json()["status"] == "running"

    # When the owner cancels the first queued export
    answer = cancel(admin, queued["id"])

    # Then it is cancelled at once and never gets an execution
    assert answer.status == 200, answer.body
    assert answer.json()["status"] == "cancelled" and answer.json()["id"] == queued["id"]
    assert execution_status(runtime, queued["id"]) is None

    # When the owner cancels the running export
    answer = cancel(admin, running["id"])

    # Then it is cancelled at once, its execution is aborted, and once its Format step has
    # stopped nothing of it is left: no staging part, no final object, no unfinished upload
    assert answer.status == 200, answer.body
    assert answer.json()["status"] == "cancelled"
    assert runtime.wait_for_execution_end(running["id"]) == "ABORTED"
    assert left_in_s3(runtime, running["id"]) == []
    stopped = admin.call("GET", f"/v1/exports/{running['id']}").json()
    assert stopped["status"] == "cancelled"
    assert stopped["rows_exported"] < LONG_EXPORT_ROWS

    # And the freed slot went to the export still queued, which completes; the cancelled one
    # never started
    done = admin.wait_for(next_in_line["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done["error"]
    assert execution_status(runtime, queued["id"]) is None
    assert admin.call("GET", f"/v1/exports/{queued['id']}").json()["status"] == "cancelled"
    # and downloading a cancelled export says it never will be downloadable
    never = admin.call("GET", f"/v1/exports/{queued['id']}/download")
    assert never.status == 409 and never.json()["error_code"] == "EXPORT_NOT_DOWNLOADABLE"
    assert never.json()["detail"] == {"id": queued["id"], "status": "cancelled"}
    assert "never" in never.json()["message"] and "once" not in never.json()["message"]

    # And cancelling again answers the same cancelled job
    again = cancel(admin, running["id"])
    assert again.status == 200 and again.json()["status"] == "cancelled"

    # And each cancellation is in the audit trail once
    audited = admin.call("GET", "/v1/audit-events?type=EXPORT_CANCELLED&limit=100").json()
    targets = [event["target_id"] for event in audited["items"]]
    assert sorted(targets) == sorted([queued["id"], running["id"]])


def test_an_export_that_already_ended_cannot_be_cancelled(admin: ApiClient) -> None:
    # Given a completed export
    job = admin.create_export(probe_export(SHORT_EXPORT_ROWS, "Asia/Tokyo"))
    assert admin.wait_for(job["id"], {"completed", "failed"})["status"] == "completed"

    # When its owner cancels it
    answer = cancel(admin, job["id"])

    # Then the answer is a conflict naming its status, and the file stays downloadable
    assert answer.status == 409 and answer.json().keys() == ERROR_KEYS
    assert answer.json()["error_code"] == "CONFLICT"
    assert answer.json()["detail"]["status"] == "completed"
    assert "completed" in answer.json()["message"]
    _, download = admin.download(job["id"])
    assert download.status == 200


def test_cancelling_needs_the_export_permission(runtime: Any, admin: ApiClient) -> None:
    # Given a queued-or-running export and the tenant's admin without DATA_EXPORT
    job = admin.create_export(probe_export(SHORT_EXPORT_ROWS, "America/Lima"))
    viewer = ApiClient(runtime.api_url, runtime.token("ada", TENANT, "admin", permissions=[]))

    # When they cancel it
    answer = cancel(viewer, job["id"])

    # Then they are refused, and the export goes on
    assert answer.status == 403 and answer.json()["error_code"] == "PERMISSION_DENIED"
    assert admin.wait_for(job["id"], {"completed", "failed", "cancelled"})["status"] == "completed"
