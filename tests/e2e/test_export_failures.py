"""A failing source ends the job failed, safely, with nothing left behind in S3."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.http_client import ApiClient


def test_a_query_error_fails_the_job_through_the_catch_path(runtime: Any) -> None:
    # Given a dataset whose source table does not exist in the database
    client = ApiClient(runtime.api_url, runtime.token("u_broken", "org_acme", "admin"))

    # When an export of it runs
    job = client.create_export({"dataset": "broken_source", "format": "csv"})
    done = client.wait_for(job["id"], {"completed", "failed"})

    # Then the job failed with a reason safe to show: no SQL, no driver text
    assert done["status"] == "failed"
    assert done["error"]["code"] == "QUERY_FAILED"
    message = done["error"]["message"]
    assert "SELECT" not in message and "missing_table" not in message and "relation" not in message

    # And the execution went through the Catch to MarkFailed and ended FAILED
    sfn = runtime.boto3_client("stepfunctions")
    arn = runtime.execution_arn(job["id"])
    # (MarkFailed records the job a moment before the execution itself ends)
    assert runtime.wait_for_execution_end(job["id"], timeout=30) == "FAILED"
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for event in events
        if event["type"].endswith("StateEntered")
    ]
    assert entered[0] == "Query" and "MarkFailed" in entered and "Format" not in entered

    # And nothing of it is left in the bucket
    s3 = runtime.boto3_client("s3")
    for prefix in (f"staging/{job['id']}/", f"exports/org_acme/{job['id']}/"):
        listed = s3.list_objects_v2(Bucket=runtime.bucket_name, Prefix=prefix)
        assert listed.get("KeyCount", 0) == 0
    uploads = s3.list_multipart_uploads(Bucket=runtime.bucket_name).get("Uploads", [])
    assert not [u for u in uploads if job["id"] in u["Key"]]

    # And its download answers with the error shape, not a file: it never will have one
    answer = client.call("GET", f"/v1/exports/{job['id']}/download")
    assert answer.status == 409 and answer.json()["error_code"] == "EXPORT_NOT_DOWNLOADABLE"
    assert json.loads(answer.body).keys() == {"error_code", "message", "detail"}
    assert answer.json()["detail"] == {"id": job["id"], "status": "failed"}
    assert "never" in answer.json()["message"]
