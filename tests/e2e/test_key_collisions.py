"""Two identities whose claims joined with `#` spell the same text share nothing.

Org `org_fuzz#x` with sub `u1`, and org `org_fuzz` with sub `x#u1`: keys that joined claims
with `#` gave them one rate bucket, one job history and each other's identical request. Each
must count its own exports, see only its own jobs, and get a job of its own for the same request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataexport.store_keys import live_request_key
from tests.e2e.http_client import ApiClient, HttpAnswer

FIRST = ("u1", "org_fuzz#x")
SECOND = ("x#u1", "org_fuzz")
REQUEST = {"dataset": "usage_logs", "format": "csv", "fields": ["created_at", "model"]}


@pytest.fixture(scope="module")
def first(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(*FIRST, "member"))


@pytest.fixture(scope="module")
def second(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(*SECOND, "member"))


@pytest.fixture(scope="module")
def created(first: ApiClient, second: ApiClient) -> Iterator[tuple[HttpAnswer, HttpAnswer]]:
    """The same request, by each identity in turn, while the first one's job is still live."""
    yield first.call("POST", "/v1/exports", REQUEST), second.call("POST", "/v1/exports", REQUEST)


def test_an_identical_request_by_each_makes_a_job_of_its_own(
    created: tuple[HttpAnswer, HttpAnswer],
) -> None:
    first_answer, second_answer = created
    assert (first_answer.status, second_answer.status) == (202, 202), second_answer.body
    assert first_answer.json()["id"] != second_answer.json()["id"]


def test_each_history_holds_only_its_own_job(
    first: ApiClient, second: ApiClient, created: tuple[HttpAnswer, HttpAnswer]
) -> None:
    histories = [
        [job["id"] for job in client.call("GET", "/v1/exports").json()["items"]]
        for client in (first, second)
    ]
    assert histories == [[answer.json()["id"]] for answer in created]
    assert not set(histories[0]) & set(histories[1])


def test_neither_can_reach_the_others_job(
    first: ApiClient, second: ApiClient, created: tuple[HttpAnswer, HttpAnswer]
) -> None:
    first_id, second_id = (answer.json()["id"] for answer in created)
    # Given both jobs completed (each owner may download their own)
    for client, job_id in ((first, first_id), (second, second_id)):
        assert client.wait_for(job_id, {"completed"})["status"] == "completed"
        assert client.call("GET", f"/v1/exports/{job_id}/download").status == 302
    # Then every route answers the other identity as if the job did not exist
    for client, job_id in ((first, second_id), (second, first_id)):
        for method, suffix in (
            ("GET", ""),
            ("GET", "/download"),
            ("POST", "/cancel"),
            ("DELETE", ""),
        ):
            answer = client.call(method, f"/v1/exports/{job_id}{suffix}")
            assert answer.status == 404, (method, suffix, answer.body)
            assert answer.json()["error_code"] == "EXPORT_NOT_FOUND"


def test_the_same_idempotency_key_from_each_makes_separate_jobs(
    first: ApiClient, second: ApiClient
) -> None:
    # A key holding the separator as well: "k#1" from one must not be "1" from the other.
    request = {**REQUEST, "fields": ["model"]}
    answers = [
        first.call("POST", "/v1/exports", request, {"Idempotency-Key": "x#k"}),
        second.call("POST", "/v1/exports", request, {"Idempotency-Key": "x#k"}),
    ]
    assert [answer.status for answer in answers] == [202, 202], answers[1].body
    assert answers[0].json()["id"] != answers[1].json()["id"]
    # And a replay by each answers with their own job
    replay = second.call("POST", "/v1/exports", request, {"Idempotency-Key": "x#k"})
    assert replay.status == 200 and replay.json()["id"] == answers[1].json()["id"]


def test_an_admin_of_one_tenant_never_sees_the_others_jobs(
    runtime: Any, created: tuple[HttpAnswer, HttpAnswer]
) -> None:
    admin = ApiClient(runtime.api_url, runtime.token("boss", "org_fuzz", "admin"))
    listed = {job["id"] for job in admin.call("GET", "/v1/exports").json()["items"]}
    first_id, second_id = (answer.json()["id"] for answer in created)
    assert second_id in listed and first_id not in listed
    assert admin.call("GET", f"/v1/exports/{first_id}").status == 404


def test_each_counts_against_a_rate_bucket_of_its_own(first: ApiClient, second: ApiClient) -> None:
    # When each makes two different exports, taking turns
    turns = [
        (first, ["endpoint"]),
        (second, ["status_code"]),
        (first, ["endpoint", "model"]),
        (second, ["status_code", "model"]),
    ]
    answers = [
        client.call("POST", "/v1/exports", {**REQUEST, "fields": fields})
        for client, fields in turns
    ]
    assert [answer.status for answer in answers] == [202] * 4
    remaining = [int(answer.headers["X-RateLimit-Remaining"]) for answer in answers]
    # Then each one's second export used one slot of its own bucket, none of the other's
    assert (remaining[0] - remaining[2], remaining[1] - remaining[3]) == (1, 1), remaining


def test_a_record_pointing_at_anothers_job_never_answers_with_it(
    runtime: Any, first: ApiClient, second: ApiClient
) -> None:
    # Given the second identity's job, live (queued), and a live-request record of the first
    # identity pointing at it, as a key mistake would leave it
    request = {**REQUEST, "fields": ["created_at"]}
    theirs = second.create_export(request)["id"]
    second.wait_for(theirs, {"completed"})
    dynamodb = runtime.boto3_client("dynamodb")
    tables = {table.logical_id: table.name for table in runtime.template.tables}
    job_key = {"id": {"S": theirs}}
    dynamodb.update_item(
        TableName=tables["ExportsTable"],
        Key=job_key,
        UpdateExpression="SET #status = :queued",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":queued": {"S": "queued"}},
    )
    stored = dynamodb.get_item(TableName=tables["ExportsTable"], Key=job_key)["Item"]
    sub, org = FIRST
    dynamodb.put_item(
        TableName=tables["ControlTable"],
        Item={
            "pk": {"S": live_request_key(org, sub)},
            "sk": stored["request_hash"],
            "job_id": {"S": theirs},
        },
    )

    # When the first identity makes the same request
    answer = first.call("POST", "/v1/exports", request)

    # Then it gets a job of its own, never the other's
    assert answer.status == 202, answer.body
    assert answer.json()["id"] != theirs


@pytest.mark.parametrize(
    ("sub", "org"),
    [("u1", "org_fuzz\x00"), ("u1\u2028", "org_fuzz"), ("u1", "o" * 129), ("u1", "_platform")],
    ids=["control-in-org", "line-separator-in-sub", "overlong-org", "platform-audit-chain"],
)
def test_unprintable_overlong_or_reserved_ids_are_refused_at_the_gateway(
    runtime: Any, sub: str, org: str
) -> None:
    answer = ApiClient(runtime.api_url, runtime.token(sub, org, "admin")).call("GET", "/v1/exports")
    assert answer.status == 401
    assert answer.json()["error_code"] == "UNAUTHENTICATED"
