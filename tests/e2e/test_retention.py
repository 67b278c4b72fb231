"""Retention over real HTTP and the local runtime: tenants' policies, the expiry they give an
export, a policy lengthened after completion, and the daily Retention run (legal holds, two runs
at once). The deployment keeps exports 3 seconds by default, so the state machine's own Wait and
Expire steps act within the tests; exports the daily run must find were held until their
execution ended, then released."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from dataexport.export_job import utc_now
from dataexport_local.runtime import LocalRuntime
from tests.e2e.http_client import ApiClient, http

RETENTION_SECONDS = 3
SCHEDULED_EVENT = json.loads(
    (Path(__file__).resolve().parents[2] / "events" / "retention_schedule.json").read_text()
)
EXPORT = {"dataset": "usage_logs", "format": "csv", "fields": ["created_at", "model"]}


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[LocalRuntime]:
    with runtime_factory({"ExportRetentionSeconds": str(RETENTION_SECONDS)}) as started:
        yield started


def client(runtime: LocalRuntime, sub: str, org: str, role: str = "admin") -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(sub, org, role))


def entered_states(runtime: LocalRuntime, job_id: str) -> list[str]:
    sfn = runtime.boto3_client("stepfunctions")
    events = sfn.get_execution_history(executionArn=runtime.execution_arn(job_id), maxResults=1000)[
        "events"
    ]
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in events
        if event["type"].endswith("StateEntered")
    ]


def released_after_its_execution(
    runtime: LocalRuntime, admin: ApiClient, body: dict[str, Any], *, keep_held: bool = False
) -> tuple[dict[str, Any], str]:
    """An export held from its creation, whose Expire step saw the hold and ended the
    execution, then released (unless `keep_held`): due, with nothing but the daily run left to
    expire it. Also a download link issued while it was still there.

    A Wait state may end a little before its timestamp, and a held export's Expire step ends
    the execution whether or not it is due yet: so this also waits until it is due."""
    job = admin.create_export(body)
    held = admin.call(
        "PUT", f"/v1/exports/{job['id']}/legal-hold", {"hold": True, "reason": "review"}
    )
    assert held.status == 200, held.body
    done = admin.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    assert runtime.wait_for_execution_end(job["id"], timeout=RETENTION_SECONDS + 60) == "SUCCEEDED"
    link = admin.call("GET", f"/v1/exports/{job['id']}/download").headers["Location"]
    time.sleep(max(0.0, (datetime.fromisoformat(done["expires_at"]) - utc_now()).total_seconds()))
    if not keep_held:
        lifted = admin.call(
            "PUT", f"/v1/exports/{job['id']}/legal-hold", {"hold": False, "reason": "closed"}
        )
        assert lifted.status == 200, lifted.body
    return done, link


def purge_events(admin: ApiClient) -> Counter[str]:
    answer = admin.call(
        "GET", "/v1/audit-events?" + urlencode({"type": "RETENTION_PURGED", "limit": 200})
    )
    assert answer.status == 200, answer.body
    return Counter(event["target_id"] for event in answer.json()["items"])


def retention_run(runtime: LocalRuntime) -> dict[str, Any]:
    invocation = runtime.invoke("RetentionFunction", SCHEDULED_EVENT)
    assert invocation.function_error is None, invocation.payload
    summary: dict[str, Any] = invocation.json()
    return summary


def objects_under(runtime: LocalRuntime, job: dict[str, Any], org: str) -> int:
    listed = runtime.boto3_client("s3").list_objects_v2(
        Bucket=runtime.bucket_name, Prefix=f"exports/{org}/{job['id']}/"
    )
    return int(listed.get("KeyCount", 0))


def test_admins_replace_and_read_their_tenants_retention_policies(runtime: LocalRuntime) -> None:
    org = "org_ret_policies"
    admin = client(runtime, "u_ret_admin", org)

    # Given a tenant without policies: every dataset keeps the deployment's default
    first = admin.call("GET", "/v1/retention-policies")
    assert first.status == 200, first.body
    assert first.json() == {"default_retention_seconds": RETENTION_SECONDS, "policies": []}

    # When an admin sets two policies, then replaces them
    body = {
        "policies": [
            {"dataset": "audit_events", "retention_days": 30},
            {"dataset": "invoices", "retention_days": 365},
        ]
    }
    assert admin.call("PUT", "/v1/retention-policies", body).status == 200
    replaced = admin.call(
        "PUT",
        "/v1/retention-policies",
        {
            "policies": [
                {"dataset": "usage_logs", "retention_days": 2},
                {"dataset": "audit_events", "retention_days": 90},
            ]
        },
    )

    # Then the answer and every later read hold exactly the new set
    expected = {
        "default_retention_seconds": RETENTION_SECONDS,
        "policies": [
            {"dataset": "audit_events", "retention_days": 90},
            {"dataset": "usage_logs", "retention_days": 2},
        ],
    }
    assert (replaced.status, replaced.json()) == (200, expected)
    assert admin.call("GET", "/v1/retention-policies").json() == expected
    # And each change is in the trail, with what it changed before and after
    trail = admin.call(
        "GET", "/v1/audit-events?" + urlencode({"type": "RETENTION_POLICY_UPDATED"})
    ).json()["items"]
    assert [(event["actor_id"], event["detail"]) for event in trail] == [
        (
            "u_ret_admin",
            {
                "before": ["audit_events=30", "invoices=365"],
                "after": ["audit_events=90", "usage_logs=2"],
                "default_retention_seconds": RETENTION_SECONDS,
            },
        ),
        (
            "u_ret_admin",
            {
                "before": [],
                "after": ["audit_events=30", "invoices=365"],
                "default_retention_seconds": RETENTION_SECONDS,
            },
        ),
    ]
    # And another tenant's admin sees none of it
    other = client(runtime, "u_ret_other", "org_ret_elsewhere")
    assert other.call("GET", "/v1/retention-policies").json()["policies"] == []


@pytest.mark.parametrize(
    ("policies", "status", "field"),
    [
        (
            [
                {"dataset": "usage_logs", "retention_days": 5},
                {"dataset": "nope", "retention_days": 5},
            ],
            400,
            "policies[1].dataset",
        ),
        (
            [
                {"dataset": "usage_logs", "retention_days": 5},
                {"dataset": "usage_logs", "retention_days": 6},
            ],
            400,
            "policies[1].dataset",
        ),
        ([{"dataset": "usage_logs", "retention_days": 0}], 400, "policies[0].retention_days"),
        ([{"dataset": "usage_logs", "retention_days": 3651}], 400, "policies[0].retention_days"),
        ([{"dataset": "usage_logs"}], 400, "policies[0].retention_days"),
    ],
)
def test_a_bad_policy_update_names_its_field_and_writes_nothing(
    runtime: LocalRuntime, policies: list[dict[str, Any]], status: int, field: str
) -> None:
    admin = client(runtime, "u_ret_strict", "org_ret_strict")
    kept = {"policies": [{"dataset": "fees", "retention_days": 10}]}
    assert admin.call("PUT", "/v1/retention-policies", kept).status == 200

    answer = admin.call("PUT", "/v1/retention-policies", {"policies": policies})

    assert answer.status == status, answer.body
    assert answer.json()["error_code"] == "VALIDATION_ERROR"
    assert answer.json()["detail"]["field"] == field
    assert admin.call("GET", "/v1/retention-policies").json()["policies"] == kept["policies"]


@pytest.mark.parametrize("role", ["member", "operator"])
def test_only_admins_read_or_change_retention_policies(runtime: LocalRuntime, role: str) -> None:
    caller = client(runtime, f"u_ret_{role}", "org_ret_roles", role)
    body = {"policies": [{"dataset": "usage_logs", "retention_days": 1}]}
    for answer in (
        caller.call("GET", "/v1/retention-policies"),
        caller.call("PUT", "/v1/retention-policies", body),
    ):
        assert answer.status == 403, answer.body
        assert answer.json()["error_code"] == "PERMISSION_DENIED"
    admin = client(runtime, "u_ret_roles_admin", "org_ret_roles")
    assert admin.call("GET", "/v1/retention-policies").json()["policies"] == []


def test_a_completed_export_expires_after_its_datasets_policy(runtime: LocalRuntime) -> None:
    # Given a tenant that keeps usage_logs exports for 2 days
    admin = client(runtime, "u_ret_apply", "org_ret_apply")
    body = {"policies": [{"dataset": "usage_logs", "retention_days": 2}]}
    assert admin.call("PUT", "/v1/retention-policies", body).status == 200

    # When an export of usage_logs completes
    job = admin.create_export(EXPORT)
    done = admin.wait_for(job["id"], {"completed", "failed"})

    # Then it expires 2 days after it completed, not after the 3-second default
    assert done["status"] == "completed", done["error"]
    lifetime = datetime.fromisoformat(done["expires_at"]) - datetime.fromisoformat(
        done["completed_at"]
    )
    assert lifetime == timedelta(days=2)


def test_a_policy_lengthened_after_completion_makes_the_expire_step_wait_again(
    runtime: LocalRuntime,
) -> None:
    # Given an export completed under the 3-second default
    admin = client(runtime, "u_ret_longer", "org_ret_longer")
    job = admin.create_export(EXPORT)
    done = admin.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]

    # When, before it expires, its tenant keeps usage_logs for a day
    body = {"policies": [{"dataset": "usage_logs", "retention_days": 1}]}
    assert admin.call("PUT", "/v1/retention-policies", body).status == 200

    # Then the Expire step, at the old expiry, waits again instead of deleting
    deadline = time.monotonic() + RETENTION_SECONDS + 60
    while entered_states(runtime, job["id"]).count("WaitUntilExpiry") < 2:
        assert time.monotonic() < deadline, entered_states(runtime, job["id"])
        time.sleep(0.3)
    assert entered_states(runtime, job["id"])[-4:] == [
        "WaitUntilExpiry",
        "Expire",
        "ExpiryDecided",
        "WaitUntilExpiry",
    ]
    sfn = runtime.boto3_client("stepfunctions")
    assert sfn.describe_execution(executionArn=runtime.execution_arn(job["id"]))["status"] == (
        "RUNNING"
    )
    # and the export stays, now expiring a day after it completed
    kept = admin.call("GET", f"/v1/exports/{job['id']}").json()
    assert kept["status"] == "completed"
    assert datetime.fromisoformat(kept["expires_at"]) - datetime.fromisoformat(
        kept["completed_at"]
    ) == timedelta(days=1)
    _, download = admin.download(job["id"])
    assert download.status == 200


def test_the_daily_run_purges_due_exports_and_keeps_held_ones(runtime: LocalRuntime) -> None:
    org = "org_ret_daily"
    admin = client(runtime, "u_ret_daily", org)
    # Given two exports released from their hold after their executions ended (one of them
    # split into files with a manifest), and one still held
    single, single_link = released_after_its_execution(runtime, admin, EXPORT)
    split, split_link = released_after_its_execution(
        runtime, admin, {**EXPORT, "format": "json", "max_file_size_mb": 5}
    )
    held, _ = released_after_its_execution(runtime, admin, EXPORT, keep_held=True)
    assert split["file_count"] >= 1 and objects_under(runtime, split, org) >= 2

    # When the daily retention run runs
    summary = retention_run(runtime)

    # Then the released exports are expired: their objects gone, links dead, downloads 410
    assert summary["failed"] == 0 and summary["finished"] is True
    assert summary["expired"] >= 2 and summary["held"] >= 1
    for purged, link in ((single, single_link), (split, split_link)):
        assert admin.call("GET", f"/v1/exports/{purged['id']}").json()["status"] == "expired"
        assert objects_under(runtime, purged, org) == 0
        assert http("GET", link).status in (403, 404)
        answer = admin.call("GET", f"/v1/exports/{purged['id']}/download")
        assert (answer.status, answer.json()["error_code"]) == (410, "EXPORT_EXPIRED")
    # and each is audited once, by the system
    events = purge_events(admin)
    assert events[single["id"]] == 1 and events[split["id"]] == 1
    trail = admin.call("GET", "/v1/audit-events?type=RETENTION_PURGED").json()["items"]
    assert {(e["actor_role"], e["target_type"]) for e in trail} == {("system", "export")}
    # And the held export survives, still downloadable
    assert admin.call("GET", f"/v1/exports/{held['id']}").json()["status"] == "completed"
    assert held["id"] not in events
    _, download = admin.download(held["id"])
    assert download.status == 200


def test_two_retention_runs_at_once_purge_and_audit_each_export_once(
    runtime: LocalRuntime,
) -> None:
    # Given four due exports that only the daily run can expire
    org = "org_ret_twice"
    admins = [client(runtime, f"u_ret_twice_{n}", org) for n in range(2)]
    due = [released_after_its_execution(runtime, admins[n % 2], EXPORT)[0] for n in range(4)]
    start = threading.Barrier(2)

    def run(_: int) -> dict[str, Any]:
        start.wait()
        return retention_run(runtime)

    # When two runs start at the same moment
    with ThreadPoolExecutor(max_workers=2) as pool:
        summaries = list(pool.map(run, range(2)))

    # Then between them they report each export purged once, with nothing failed
    assert [summary["failed"] for summary in summaries] == [0, 0]
    assert sum(summary["expired"] for summary in summaries) == len(due)
    # and each is expired, its objects gone, and audited exactly once
    events = purge_events(admins[0])
    for job in due:
        assert admins[0].call("GET", f"/v1/exports/{job['id']}").json()["status"] == "expired"
        assert objects_under(runtime, job, org) == 0
        assert events[job["id"]] == 1
