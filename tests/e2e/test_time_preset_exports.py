"""Exports over a named time range: resolved in the caller's zone when the job is created,
shown on the job, and holding exactly the rows PostgreSQL has in that window."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dataexport.time_presets import TimePreset, preset_bounds
from tests.e2e.http_client import ApiClient


def rows_between(superuser: Any, org_id: str, start: datetime, end: datetime) -> int:
    counted = superuser.run(
        "SELECT count(*) FROM demo.usage_logs WHERE org_id = :org "
        "AND created_at >= :start AND created_at < :end",
        org=org_id,
        start=start,
        end=end,
    )
    return int(counted[0][0])


@pytest.mark.parametrize(
    ("preset", "timezone"),
    [("7d", "America/New_York"), ("this_month", "Asia/Kolkata"), ("24h", "Europe/Berlin")],
)
def test_a_preset_export_holds_the_rows_of_its_window(
    runtime: Any, superuser: Any, preset: str, timezone: str
) -> None:
    # Given an admin asking for a preset in their zone
    client = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))
    job = client.create_export(
        {
            "dataset": "usage_logs",
            "format": "ndjson",
            "time_range": {"preset": preset},
            "options": {"timezone": timezone},
        }
    )

    # When it completes
    done = client.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]

    # Then the job shows the window the preset meant when it was created
    created_at = datetime.fromisoformat(done["created_at"])
    start, end = preset_bounds(TimePreset(preset), ZoneInfo(timezone), created_at)
    assert start is not None and end is not None
    assert done["time_range"] == {"preset": preset}
    assert [datetime.fromisoformat(done["window"][key]) for key in ("start", "end")] == [
        start,
        end,
    ]

    # And it holds exactly the rows PostgreSQL has in that window
    assert done["rows_exported"] == rows_between(superuser, "org_acme", start, end) > 0
    _, download = client.download(job["id"])
    assert len(download.body.splitlines()) == done["rows_exported"]


def test_an_unknown_preset_or_a_preset_with_bounds_is_refused(runtime: Any) -> None:
    client = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))
    unknown = client.call(
        "POST", "/v1/exports", {"dataset": "usage_logs", "time_range": {"preset": "yesterday"}}
    )
    assert unknown.status == 400
    assert unknown.json()["error_code"] == "VALIDATION_ERROR"
    assert "preset" in str(unknown.json()["detail"])
    with_bounds = client.call(
        "POST",
        "/v1/exports",
        {
            "dataset": "usage_logs",
            "time_range": {"preset": "7d", "start": "2026-01-01T00:00:00Z"},
        },
    )
    assert with_bounds.status == 400
    assert with_bounds.json()["detail"]["field"] == "time_range"


def test_a_json_export_can_carry_the_seeds_metadata_header(runtime: Any) -> None:
    # Given the same JSON export asked for with and without its metadata header
    client = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))
    request: dict[str, Any] = {
        "dataset": "usage_logs",
        "format": "json",
        "fields": ["created_at", "user_name", "total_tokens"],
        "time_range": {"preset": "30d"},
        "options": {"timezone": "Europe/Berlin"},
    }
    wrapped_job = client.create_export(
        {**request, "options": {**request["options"], "metadata": True}}
    )
    plain_job = client.create_export(request)
    wrapped, plain = (
        client.wait_for(job["id"], {"completed", "failed"}) for job in (wrapped_job, plain_job)
    )
    assert wrapped["status"] == plain["status"] == "completed"

    # When both are downloaded
    document = json.loads(client.download(wrapped["id"])[1].body)
    rows = json.loads(client.download(plain["id"])[1].body)

    # Then the wrapped one holds the same rows under "data", after metadata saying what it is
    assert list(document) == ["metadata", "data"]
    assert document["data"] == rows and rows
    metadata = document["metadata"]
    zone = ZoneInfo("Europe/Berlin")
    created_at = datetime.fromisoformat(wrapped["created_at"])
    start, end = preset_bounds(TimePreset.LAST_30_DAYS, zone, created_at)
    assert start is not None and end is not None
    assert metadata["time_range"] == "30d"
    assert datetime.fromisoformat(metadata["start_date"]) == start
    assert datetime.fromisoformat(metadata["end_date"]) == end
    assert (
        datetime.fromisoformat(metadata["start_date"]).utcoffset()
        == start.astimezone(zone).utcoffset()
    )
    assert datetime.fromisoformat(metadata["export_date"]) == created_at
    assert (metadata["dataset"], metadata["timezone"]) == ("usage_logs", "Europe/Berlin")
    assert metadata["fields"] == request["fields"]
