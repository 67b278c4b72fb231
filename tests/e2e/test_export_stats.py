"""GET /v1/exports/stats: what was exported in a time range, by status, dataset and format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.http_client import ApiClient

TENANT = "org_stats"


def test_stats_count_a_tenant_s_exports_and_a_member_sees_only_their_own(runtime: Any) -> None:
    # Given three exports of two users of one tenant
    admin = ApiClient(runtime.api_url, runtime.token("usr_stats_admin", TENANT, "admin"))
    member = ApiClient(runtime.api_url, runtime.token("usr_stats_member", TENANT, "member"))
    window = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
    jobs = [
        admin.create_export({"dataset": "usage_logs", "format": "csv", "time_range": window}),
        admin.create_export({"dataset": "usage_logs", "format": "ndjson", "time_range": window}),
        member.create_export({"dataset": "usage_logs", "format": "csv", "time_range": window}),
    ]
    done = [admin.wait_for(job["id"], {"completed", "failed"}) for job in jobs]
    assert all(job["status"] == "completed" for job in done)

    # When the admin asks for the tenant's stats
    answer = admin.call("GET", "/v1/exports/stats")
    assert answer.status == 200, answer.body
    stats = answer.json()

    # Then every export of the tenant is counted, with the rows and bytes it exported
    assert stats["exports"] == 3
    assert stats["by_status"] == {"completed": 3}
    assert stats["by_format"] == {"csv": 2, "ndjson": 1}
    assert stats["by_dataset"] == {"usage_logs": 3}
    assert stats["rows_exported"] == sum(job["rows_exported"] for job in done)
    assert stats["bytes_exported"] == sum(job["bytes"] for job in done)
    assert stats["truncated"] is False

    # And a member sees only their own; a range before them all holds none
    assert member.call("GET", "/v1/exports/stats").json()["exports"] == 1
    earlier = (datetime.now(UTC) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = admin.call("GET", f"/v1/exports/stats?to={earlier}")
    assert before.status == 200, before.body
    assert before.json()["exports"] == 0


def test_a_reversed_range_is_refused(runtime: Any) -> None:
    admin = ApiClient(runtime.api_url, runtime.token("usr_stats_admin", TENANT, "admin"))
    answer = admin.call(
        "GET", "/v1/exports/stats?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"
    )
    assert answer.status == 400
    assert answer.json()["error_code"] == "INVALID_DATE_RANGE"
