"""GET /v1/exports filters its history in the store: deleted jobs leave it unless asked for by
status, and a filtered page is still full with a cursor that goes on from its last job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from dataexport_local.runtime import LocalRuntime
from tests.e2e.http_client import ApiClient

ORG = "org_history"


def _export(zone: str, dataset: str = "usage_logs") -> dict[str, Any]:
    return {"dataset": dataset, "format": "csv", "fields": ["model"], "options": {"timezone": zone}}


def _ids(client: ApiClient, **query: Any) -> list[str]:
    answer = client.call("GET", "/v1/exports?" + urlencode(query))
    assert answer.status == 200, answer.body
    return [job["id"] for job in answer.json()["items"]]


@pytest.fixture(scope="module")
def history(runtime: LocalRuntime) -> tuple[ApiClient, list[str]]:
    """A member's four completed exports, oldest first; the newest and the second were
    deleted."""
    member = ApiClient(runtime.api_url, runtime.token("hal", ORG, "member"))
    ids = []
    for zone in ("UTC", "Europe/Paris", "Europe/Rome", "Asia/Tokyo"):
        job = member.create_export(_export(zone))
        assert member.wait_for(job["id"], {"completed", "failed"})["status"] == "completed"
        ids.append(job["id"])
    for deleted in (ids[3], ids[1]):
        assert member.call("DELETE", f"/v1/exports/{deleted}").status == 200
    return member, ids


def test_deleted_exports_leave_the_history_unless_asked_for(
    history: tuple[ApiClient, list[str]],
) -> None:
    member, ids = history
    assert _ids(member) == [ids[2], ids[0]]
    assert _ids(member, status="deleted") == [ids[3], ids[1]]
    assert _ids(member, status="completed") == [ids[2], ids[0]]


def test_a_filtered_page_is_full_and_its_cursor_goes_on(
    history: tuple[ApiClient, list[str]],
) -> None:
    member, ids = history
    # The newest job is deleted: the first page of one still holds a job
    first = member.call("GET", "/v1/exports?limit=1").json()
    assert [job["id"] for job in first["items"]] == [ids[2]]
    assert first["next_cursor"]
    second = member.call(
        "GET", "/v1/exports?" + urlencode({"limit": 1, "cursor": first["next_cursor"]})
    )
    assert [job["id"] for job in second.json()["items"]] == [ids[0]]
    deleted_first = member.call("GET", "/v1/exports?limit=1&status=deleted").json()
    assert [job["id"] for job in deleted_first["items"]] == [ids[3]]
    query = {"limit": 1, "status": "deleted", "cursor": deleted_first["next_cursor"]}
    assert _ids(member, **query) == [ids[1]]


def test_history_filters_by_dataset_and_creation_time(
    runtime: LocalRuntime, history: tuple[ApiClient, list[str]]
) -> None:
    member, ids = history
    jobs = {
        job["id"]: job for job in member.call("GET", "/v1/exports?status=completed").json()["items"]
    }
    oldest = datetime.fromisoformat(jobs[ids[0]]["created_at"].replace("Z", "+00:00"))
    assert _ids(member, dataset="usage_logs") == [ids[2], ids[0]]
    assert _ids(member, dataset="device_readings") == []
    after_oldest = (oldest + timedelta(microseconds=1)).isoformat()
    assert _ids(member, created_from=after_oldest) == [ids[2]]
    assert _ids(member, created_to=after_oldest) == [ids[0]]
    assert _ids(member, created_from=oldest.isoformat(), created_to=after_oldest) == [ids[0]]
    now = datetime.now(UTC)
    reversed_range = {
        "created_from": now.isoformat(),
        "created_to": (now - timedelta(1)).isoformat(),
    }
    answer = member.call("GET", "/v1/exports?" + urlencode(reversed_range))
    assert answer.status == 400 and answer.json()["detail"]["field"] == "created_from"
    unknown = member.call("GET", "/v1/exports?status=gone")
    assert unknown.status in (400, 422) and unknown.json().keys() == {
        "error_code",
        "message",
        "detail",
    }
