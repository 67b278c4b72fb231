"""A dataset the caller's role may not use is answered exactly as one that does not exist, on
every route that names a dataset: its existence is never revealed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from dataexport_local.runtime import LocalRuntime
from tests.e2e.http_client import ApiClient, HttpAnswer

ORG = "org_hidden"
HIDDEN = "audit_events"  # admins only
SCHEDULE = {"name": "Nightly", "schedule_expression": "cron(0 3 * * ? *)"}
VISIBLE_EXPORT = {"dataset": "usage_logs", "format": "csv", "fields": ["model"]}


def _not_found(answer: HttpAnswer, dataset: str) -> dict[str, Any]:
    assert answer.status == 404, answer.body
    error: dict[str, Any] = answer.json()
    assert error["error_code"] == "DATASET_NOT_FOUND"
    assert error["message"] == f"Dataset {dataset!r} does not exist."
    assert error["detail"]["dataset"] == dataset
    return error


def _every_route(member: ApiClient, dataset: str, schedule_id: str) -> dict[str, HttpAnswer]:
    export = {"dataset": dataset, "format": "csv"}
    return {
        "GET /v1/datasets/{name}": member.call("GET", f"/v1/datasets/{dataset}"),
        "GET /v1/exports/preview": member.call(
            "GET", "/v1/exports/preview?" + urlencode({"dataset": dataset})
        ),
        "POST /v1/exports": member.call("POST", "/v1/exports", export),
        "POST /v1/schedules": member.call("POST", "/v1/schedules", {**SCHEDULE, "export": export}),
        "PUT /v1/schedules/{id}": member.call(
            "PUT", f"/v1/schedules/{schedule_id}", {**SCHEDULE, "export": export}
        ),
    }


def _refusals(admin: ApiClient, actor: str) -> int:
    answer = admin.call("GET", "/v1/audit-events?type=PERMISSION_DENIED&limit=100")
    assert answer.status == 200, answer.body
    return sum(1 for event in answer.json()["items"] if event["actor_id"] == actor)


@pytest.mark.parametrize("dataset", [HIDDEN, "no_such_dataset"])
def test_a_hidden_dataset_and_a_missing_one_get_the_same_answer_everywhere(
    runtime: LocalRuntime, dataset: str
) -> None:
    # Given a member with a schedule of their own
    member = ApiClient(runtime.api_url, runtime.token("mia", ORG, "member"))
    created = member.call("POST", "/v1/schedules", {**SCHEDULE, "export": VISIBLE_EXPORT})
    assert created.status == 201, created.body
    schedule_id = created.json()["id"]

    admin = ApiClient(runtime.api_url, runtime.token("ada", ORG, "admin"))
    refusals_before = _refusals(admin, "mia")

    # When they name a dataset their role may not use, or one that does not exist
    answers = _every_route(member, dataset, schedule_id)

    # Then every route answers 404 DATASET_NOT_FOUND, naming the field where it was given
    fields = {
        route: _not_found(answer, dataset)["detail"].get("field")
        for route, answer in answers.items()
    }
    assert fields == {
        "GET /v1/datasets/{name}": None,
        "GET /v1/exports/preview": "dataset",
        "POST /v1/exports": "dataset",
        "POST /v1/schedules": "export.dataset",
        "PUT /v1/schedules/{id}": "export.dataset",
    }
    # and the audit trail, which the caller never sees, records each use of a hidden dataset
    # as a refused permission
    expected = len(answers) if dataset == HIDDEN else 0
    assert _refusals(admin, "mia") == refusals_before + expected
    # and nothing was created or changed
    assert member.call("GET", "/v1/exports").json()["items"] == []
    (schedule,) = member.call("GET", "/v1/schedules").json()["items"]
    assert schedule["export"]["dataset"] == "usage_logs"
    member.call("DELETE", f"/v1/schedules/{schedule_id}")


def test_running_a_schedule_whose_dataset_the_owner_may_no_longer_use_is_not_found(
    runtime: LocalRuntime,
) -> None:
    # Given an admin's schedule of an admins-only dataset
    admin = ApiClient(runtime.api_url, runtime.token("ada", ORG, "admin"))
    export = {"dataset": HIDDEN, "format": "csv", "fields": ["event_id"]}
    created = admin.call("POST", "/v1/schedules", {**SCHEDULE, "export": export})
    assert created.status == 201, created.body
    schedule_id = created.json()["id"]
    # and the owner's next token makes them a member
    demoted = ApiClient(runtime.api_url, runtime.token("ada", ORG, "member"))
    assert demoted.call("GET", "/v1/schedules").status == 200

    # When they run the schedule now
    answer = demoted.call("POST", f"/v1/schedules/{schedule_id}/run")

    # Then the run is refused as for a dataset that does not exist, and the schedule suspended
    _not_found(answer, HIDDEN)
    detail = demoted.call("GET", f"/v1/schedules/{schedule_id}").json()
    assert detail["state"] == "suspended"
    assert detail["suspension"]["code"] == "DATASET_NOT_FOUND"
