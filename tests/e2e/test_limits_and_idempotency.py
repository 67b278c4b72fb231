"""Rate limits, the per-tenant running cap, Idempotency-Key and identical-request folding."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.http_client import ApiClient, HttpAnswer

RUNNING_CAP = 3


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[Any]:
    parameters = {
        "TenantExportsPerHour": '{"org_tiny": 2}',
        "MaxRunningExportsPerTenant": str(RUNNING_CAP),
    }
    with runtime_factory(parameters) as started:
        yield started


def distinct_request(n: int) -> dict[str, Any]:
    """Requests that differ (so none is folded into another), all cheap to run."""
    return {
        "dataset": "usage_logs",
        "format": "ndjson",
        "fields": ["created_at", "model"],
        "filters": [{"field": "status_code", "op": "ne", "value": 1000 + n}],
    }


def test_thirty_concurrent_creates_admit_exactly_the_limit(runtime: Any) -> None:
    # Given a member with the default limit of 10 exports per hour
    client = ApiClient(runtime.api_url, runtime.token("rate_user", "org_globex", "admin"))

    # When 30 different create requests arrive at once
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers: list[HttpAnswer] = list(
            pool.map(lambda n: client.call("POST", "/v1/exports", distinct_request(n)), range(30))
        )
    all_created = datetime.now(UTC)

    # Then exactly 10 are accepted and 20 refused with a usable Retry-After
    accepted = [a for a in answers if a.status == 202]
    refused = [a for a in answers if a.status == 429]
    assert len(accepted) == 10 and len(refused) == 20, sorted(a.status for a in answers)
    for answer in refused:
        assert answer.json()["error_code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(answer.headers["Retry-After"]) <= 3600
        assert answer.headers["X-RateLimit-Remaining"] == "0"
    for answer in answers:
        assert answer.headers["X-RateLimit-Limit"] == "10"
        assert int(answer.headers["X-RateLimit-Reset"]) > time.time()

    # And the audit trail holds one RATE_LIMIT_EXCEEDED per refusal
    audit = client.call(
        "GET", "/v1/audit-events?type=RATE_LIMIT_EXCEEDED&actor=rate_user&limit=200"
    )
    assert len(audit.json()["items"]) == 20
    assert (
        len(
            client.call(
                "GET", "/v1/audit-events?type=DATA_EXPORT&actor=rate_user&limit=200"
            ).json()["items"]
        )
        == 10
    )

    # And the tenant never runs more than the cap at once; queued jobs start in creation order
    ids = [answer.json()["id"] for answer in accepted]
    most_running = 0
    deadline = time.monotonic() + 120
    while True:
        jobs = [client.call("GET", f"/v1/exports/{job_id}").json() for job_id in ids]
        most_running = max(most_running, sum(job["status"] == "running" for job in jobs))
        if all(job["status"] == "completed" for job in jobs):
            break
        assert time.monotonic() < deadline, [job["status"] for job in jobs]
        time.sleep(0.1)
    assert most_running <= RUNNING_CAP
    # Jobs whose executions started once every create had answered were all in the queue
    # together: the queue started them oldest first. (While creates still run concurrently, as
    # API Gateway runs them, a job created a moment later may be stored, and take a free slot,
    # before an older one is.) The execution's start is when the queue started the job; the
    # job's started_at is when its first step ran, and executions run side by side.
    by_creation = sorted(jobs, key=lambda job: job["created_at"])
    sfn = runtime.boto3_client("stepfunctions")
    started = [
        sfn.describe_execution(executionArn=runtime.execution_arn(job["id"]))["startDate"]
        for job in by_creation
    ]
    from_queue = [moment for moment in started if moment > all_created]
    assert from_queue, "no export waited in the queue"
    assert from_queue == sorted(from_queue)


def test_a_tenant_limit_overrides_the_default(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("tiny_user", "org_tiny", "member"))
    statuses = [client.call("POST", "/v1/exports", distinct_request(n)).status for n in range(3)]
    assert statuses == [202, 202, 429]


def test_a_repeated_idempotency_key_returns_the_same_job(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("idem_user", "org_acme", "member"))
    body = distinct_request(1)
    headers = {"Idempotency-Key": "order-2026-11-22-a"}

    first = client.call("POST", "/v1/exports", body, headers)
    again = client.call("POST", "/v1/exports", body, headers)
    other_body = client.call("POST", "/v1/exports", distinct_request(2), headers)

    assert first.status == 202
    assert again.status == 200 and again.json()["id"] == first.json()["id"]
    assert other_body.status == 422
    assert other_body.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"
    assert other_body.json()["detail"]["field"] == "Idempotency-Key"
    # another user's identical key is theirs alone
    stranger = ApiClient(runtime.api_url, runtime.token("idem_other", "org_acme", "member"))
    theirs = stranger.call("POST", "/v1/exports", body, headers)
    assert theirs.status == 202 and theirs.json()["id"] != first.json()["id"]


def test_concurrent_requests_with_one_key_create_one_job(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("idem_burst", "org_acme", "member"))
    headers = {"Idempotency-Key": "burst-key"}
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(
                lambda _: client.call("POST", "/v1/exports", distinct_request(7), headers),
                range(10),
            )
        )
    assert {a.status for a in answers} <= {200, 202, 409}
    created = {a.json()["id"] for a in answers if a.status in (200, 202)}
    assert len(created) == 1
    assert all(a.headers.get("Retry-After") == "1" for a in answers if a.status == 409)
    listed = client.call("GET", "/v1/exports?limit=100").json()["items"]
    assert [job["id"] for job in listed] == list(created)


def test_an_identical_live_request_is_folded_into_the_running_job(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("fold_user", "org_initech", "member"))
    body = distinct_request(3)
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: client.call("POST", "/v1/exports", body), range(5)))
    ids = {answer.json()["id"] for answer in answers}
    assert len(ids) == 1, [a.status for a in answers]
    assert sorted(a.status for a in answers) == [200, 200, 200, 200, 202]
    # once it has finished, the same request makes a new export
    client.wait_for(ids.pop(), {"completed"})
    assert client.call("POST", "/v1/exports", body).status == 202
