"""The API's answers: who sees what, and bad input named precisely in one error shape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.http_client import ApiClient, http

ERROR_KEYS = {"error_code", "message", "detail"}


@pytest.fixture(scope="module")
def alice(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("alice", "org_acme", "member"))


@pytest.fixture(scope="module")
def alice_job(alice: ApiClient) -> dict[str, Any]:
    job = alice.create_export({"dataset": "usage_logs", "format": "csv", "fields": ["model"]})
    return alice.wait_for(job["id"], {"completed", "failed"})


def test_requests_without_a_valid_token_are_401(runtime: Any) -> None:
    for token in (
        None,
        "not-a-token",
        runtime.token("alice", "org_acme", "member", ttl_seconds=-120),
    ):
        answer = ApiClient(runtime.api_url, token).call("GET", "/v1/exports")
        assert answer.status == 401
        assert answer.json()["error_code"] == "UNAUTHENTICATED"


def test_another_users_or_tenants_export_is_not_found(
    runtime: Any, alice_job: dict[str, Any]
) -> None:
    for sub, org in (("bob", "org_acme"), ("alice", "org_globex")):
        other = ApiClient(runtime.api_url, runtime.token(sub, org, "member"))
        for method, suffix in (
            ("GET", ""),
            ("GET", "/download"),
            ("POST", "/cancel"),
            ("DELETE", ""),
        ):
            answer = other.call(method, f"/v1/exports/{alice_job['id']}{suffix}")
            assert answer.status == 404, (sub, org, method, suffix)
            assert answer.json()["error_code"] == "EXPORT_NOT_FOUND"


def test_an_admin_sees_the_tenants_exports(runtime: Any, alice_job: dict[str, Any]) -> None:
    admin = ApiClient(runtime.api_url, runtime.token("carol", "org_acme", "admin"))
    assert admin.call("GET", f"/v1/exports/{alice_job['id']}").status == 200


def test_a_missing_export_is_not_found(alice: ApiClient) -> None:
    answer = alice.call("GET", "/v1/exports/exp_01AAAAAAAAAAAAAAAAAAAAAAAA")
    assert answer.status == 404 and answer.json().keys() == ERROR_KEYS


def test_history_lists_only_own_jobs_newest_first_with_a_cursor(
    runtime: Any, alice: ApiClient, alice_job: dict[str, Any]
) -> None:
    second = alice.create_export({"dataset": "usage_logs", "format": "json", "fields": ["model"]})
    first_page = alice.call("GET", "/v1/exports?limit=1").json()
    assert [job["id"] for job in first_page["items"]] == [second["id"]]
    assert first_page["next_cursor"]
    second_page = alice.call("GET", f"/v1/exports?limit=1&cursor={first_page['next_cursor']}")
    assert [job["id"] for job in second_page.json()["items"]] == [alice_job["id"]]

    bob = ApiClient(runtime.api_url, runtime.token("bob", "org_acme", "member"))
    assert alice_job["id"] not in {
        job["id"] for job in bob.call("GET", "/v1/exports").json()["items"]
    }
    stolen = bob.call("GET", f"/v1/exports?cursor={first_page['next_cursor']}")
    assert stolen.status == 400 and stolen.json()["detail"]["field"] == "cursor"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"dataset": "nope", "format": "csv"}, 404, "DATASET_NOT_FOUND", "dataset"),
        ({"dataset": "usage_logs", "format": "docx"}, 400, "VALIDATION_ERROR", "format"),
        (
            {"dataset": "usage_logs", "fields": ["model", "password"]},
            400,
            "VALIDATION_ERROR",
            "fields",
        ),
        (
            {"dataset": "usage_logs", "filters": [{"field": "model", "op": "between", "value": 1}]},
            400,
            "VALIDATION_ERROR",
            "filters[0]",
        ),
        (
            {
                "dataset": "usage_logs",
                "filters": [{"field": "status_code", "op": "eq", "value": "x"}],
            },
            400,
            "VALIDATION_ERROR",
            "filters[0]",
        ),
        (
            {
                "dataset": "usage_logs",
                "time_range": {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            },
            400,
            "INVALID_DATE_RANGE",
            "time_range",
        ),
        (
            {"dataset": "usage_logs", "options": {"timezone": "Mars/Olympus"}},
            400,
            "VALIDATION_ERROR",
            "options.timezone",
        ),
        ({"format": "csv"}, 400, "VALIDATION_ERROR", "dataset"),
        ({"dataset": "usage_logs", "org_id": "org_globex"}, 400, "VALIDATION_ERROR", "org_id"),
    ],
    ids=[
        "dataset",
        "format",
        "fields",
        "operator",
        "value-type",
        "range",
        "timezone",
        "missing",
        "tenant-in-body",
    ],
)
def test_bad_input_names_the_field(
    alice: ApiClient, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    answer = alice.call("POST", "/v1/exports", body)
    assert answer.status == status, answer.body
    error = answer.json()
    assert error.keys() == ERROR_KEYS
    assert error["error_code"] == code
    assert str(error["detail"]["field"]).startswith(field)


def test_malformed_json_is_refused_with_the_error_shape(runtime: Any, alice: ApiClient) -> None:
    answer = http("POST", runtime.api_url + "/v1/exports", alice.token, b"{not json")
    assert answer.status == 400 and answer.json().keys() == ERROR_KEYS


def test_creating_needs_the_data_export_permission(runtime: Any) -> None:
    viewer = ApiClient(runtime.api_url, runtime.token("dave", "org_acme", "member", permissions=()))
    answer = viewer.call("POST", "/v1/exports", {"dataset": "usage_logs"})
    assert answer.status == 403 and answer.json()["error_code"] == "PERMISSION_DENIED"


def test_unknown_routes_answer_404_in_the_error_shape(alice: ApiClient) -> None:
    answer = alice.call("GET", "/v1/nothing-here")
    assert answer.status == 404 and answer.json().keys() == ERROR_KEYS


def test_deleting_removes_the_file_and_hides_the_job(runtime: Any, alice: ApiClient) -> None:
    job = alice.create_export({"dataset": "usage_logs", "format": "csv", "fields": ["model"]})
    assert alice.wait_for(job["id"], {"completed", "failed"})["status"] == "completed"
    redirect, _ = alice.download(job["id"])

    answer = alice.call("DELETE", f"/v1/exports/{job['id']}")

    assert answer.status == 200 and answer.json()["status"] == "deleted"
    # S3 answers 403 rather than 404 for a missing key to a signer without s3:ListBucket
    assert http("GET", redirect.headers["Location"]).status in (403, 404)
    assert alice.call("GET", f"/v1/exports/{job['id']}").status == 404


def test_the_catalog_lists_what_the_role_may_export(alice: ApiClient) -> None:
    names = {item["name"] for item in alice.call("GET", "/v1/datasets").json()["items"]}
    assert "usage_logs" in names
    usage_logs = alice.call("GET", "/v1/datasets/usage_logs").json()
    assert usage_logs["fields"][0]["label"] == "Time"
