"""With a retention of a few seconds, the state machine's Wait and Expire steps remove the file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
    assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")
    ]
    assert entered[-3:] == ["WaitUntilExpiry", "Expire", "ExpiryDecided"] or entered[-4:-1] == [
        "WaitUntilExpiry",
        "Expire",
        "ExpiryDecided",
    ]
