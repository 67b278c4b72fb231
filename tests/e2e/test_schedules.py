"""Scheduled exports over real HTTP: EventBridge Scheduler schedules created by the API, fired
by the local scheduler on their own clock, each run an export job of the right window."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dataexport.adapters.audit_store import AuditTrail
from dataexport.audit import AuditEventType
from dataexport_local import cli
from dataexport_local.runtime import LocalRuntime
from dataexport_local.template import REGION
from tests.e2e.http_client import ApiClient

ORG = "org_schedules"
EXPORT = {"dataset": "usage_logs", "format": "csv", "fields": ["created_at", "model"]}


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[LocalRuntime]:
    with runtime_factory({"MinScheduleIntervalMinutes": "1"}) as started:
        yield started


def _client(runtime: LocalRuntime, sub: str, role: str = "member", **kwargs: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(sub, ORG, role, **kwargs))


def _group(runtime: LocalRuntime) -> str:
    (group,) = runtime.template.schedule_groups
    return group


def _scheduler_schedule(runtime: LocalRuntime, schedule_id: str) -> dict[str, Any]:
    found: dict[str, Any] = runtime.boto3_client("scheduler").get_schedule(
        Name=schedule_id, GroupName=_group(runtime)
    )
    return found


def _create(client: ApiClient, **body: Any) -> dict[str, Any]:
    answer = client.call("POST", "/v1/schedules", {"name": "Daily usage", "export": EXPORT, **body})
    assert answer.status == 201, answer.body
    created: dict[str, Any] = answer.json()
    return created


def _runs(client: ApiClient, schedule_id: str) -> list[dict[str, Any]]:
    answer = client.call("GET", f"/v1/schedules/{schedule_id}")
    assert answer.status == 200, answer.body
    runs: list[dict[str, Any]] = answer.json()["runs"]
    return runs


def _wait_for_runs(
    client: ApiClient, schedule_id: str, count: int, timeout: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs(client, schedule_id)
        if len(runs) >= count:
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(runs)} runs of {schedule_id} after {timeout}s: {runs}")
        time.sleep(1)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_rate_schedule_runs_on_its_own_until_paused_and_deleting_removes_it(
    runtime: LocalRuntime,
) -> None:
    # Given a schedule created over HTTP to export the last 24 hours every minute
    owner = _client(runtime, "u_rate")
    created = _create(
        owner,
        schedule_expression="rate(1 minute)",
        timezone="Europe/Paris",
        export={**EXPORT, "time_range": {"preset": "24h"}},
    )
    schedule_id = created["id"]
    assert created["state"] == "enabled"

    # Then it is an EventBridge Scheduler schedule that invokes RunSchedule with its id
    mirrored = _scheduler_schedule(runtime, schedule_id)
    assert mirrored["ScheduleExpression"] == "rate(1 minute)"
    assert mirrored["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert mirrored["State"] == "ENABLED"
    assert mirrored["Target"]["Arn"] == runtime.template.function("RunScheduleFunction").arn
    assert schedule_id in mirrored["Target"]["Input"]

    # When two minutes pass, with nobody triggering anything
    runs = _wait_for_runs(owner, schedule_id, 2, timeout=150)

    # Then each run created an export of the 24 hours before its own scheduled time
    first, second = sorted(runs[:2], key=lambda run: run["scheduled_for"])
    assert _parse(second["scheduled_for"]) - _parse(first["scheduled_for"]) == timedelta(minutes=1)
    for run in (first, second):
        assert run["trigger"] == "schedule"
        assert run["outcome"] == "started", run
        job = owner.wait_for(run["job_id"], {"completed", "failed"})
        assert job["status"] == "completed", job["error"]
        assert job["schedule_id"] == schedule_id
        scheduled_for = _parse(run["scheduled_for"])
        assert _parse(job["window"]["end"]) == scheduled_for
        assert _parse(job["window"]["start"]) == scheduled_for - timedelta(hours=24)
        assert job["options"]["timezone"] == "Europe/Paris"

    # When it is paused
    paused = owner.call("POST", f"/v1/schedules/{schedule_id}/pause")
    assert paused.status == 200, paused.body
    assert paused.json()["state"] == "paused"
    assert paused.json()["next_run_at"] is None

    # Then its Scheduler schedule is disabled, and no run follows the next minute
    assert _scheduler_schedule(runtime, schedule_id)["State"] == "DISABLED"
    assert runtime.scheduler.next_run(schedule_id) is None
    ran = len(_runs(owner, schedule_id))
    time.sleep(75)  # past the next minute the schedule would have run at
    assert len(_runs(owner, schedule_id)) == ran

    # When it is deleted, its Scheduler schedule is gone with it
    deleted = owner.call("DELETE", f"/v1/schedules/{schedule_id}")
    assert deleted.status == 200, deleted.body
    scheduler = runtime.boto3_client("scheduler")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=schedule_id, GroupName=_group(runtime))
    assert owner.call("GET", f"/v1/schedules/{schedule_id}").status == 404
    # and the jobs its runs made stay in history
    assert owner.call("GET", f"/v1/exports/{first['job_id']}").status == 200


def test_run_now_exports_last_month_of_the_schedules_zone_and_shows_in_history(
    runtime: LocalRuntime,
) -> None:
    # Given a monthly schedule in Asia/Kolkata for last month's usage
    owner = _client(runtime, "u_monthly")
    created = _create(
        owner,
        name="Monthly usage",
        schedule_expression="cron(0 6 1 * ? *)",
        timezone="Asia/Kolkata",
        export={**EXPORT, "time_range": {"preset": "last_month"}},
    )
    schedule_id = created["id"]

    # Then its next runs are 06:00 in Kolkata on the first of each month
    detail = owner.call("GET", f"/v1/schedules/{schedule_id}").json()
    zone = ZoneInfo("Asia/Kolkata")
    upcoming = [_parse(moment).astimezone(zone) for moment in detail["next_runs"]]
    assert len(upcoming) == 5
    assert all((moment.day, moment.hour, moment.minute) == (1, 6, 0) for moment in upcoming)
    assert detail["next_run_at"] == detail["next_runs"][0]
    assert detail["last_success"] is None and detail["runs"] == []

    # When it is run now
    answer = owner.call("POST", f"/v1/schedules/{schedule_id}/run")
    assert answer.status == 202, answer.body
    run = answer.json()
    # (the answer carries the rate-limit state of the slot it used, as POST /v1/exports does)
    assert answer.headers["X-RateLimit-Limit"] == "10"
    assert answer.headers["X-RateLimit-Remaining"] == "9"
    assert int(answer.headers["X-RateLimit-Reset"]) > time.time()
    assert run["trigger"] == "manual"
    job = owner.wait_for(run["job_id"], {"completed", "failed"})

    # Then the job covers last month as Kolkata counts it
    assert job["status"] == "completed", job["error"]
    today = datetime.now(zone).date()
    this_month = datetime.combine(today.replace(day=1), datetime.min.time(), tzinfo=zone)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    assert _parse(job["window"]["start"]) == last_month
    assert _parse(job["window"]["end"]) == this_month

    # And the schedule's history shows the run, its job and its last success
    detail = owner.call("GET", f"/v1/schedules/{schedule_id}").json()
    assert [entry["job_id"] for entry in detail["runs"]] == [job["id"]]
    assert detail["runs"][0]["job_status"] == "completed"
    assert detail["last_success"]["job_id"] == job["id"]
    assert detail["last_failure"] is None


def test_a_run_delivered_twice_creates_one_job(runtime: LocalRuntime) -> None:
    # Given a schedule, and one Scheduler delivery of a scheduled time arriving twice
    owner = _client(runtime, "u_twice")
    schedule_id = _create(owner, schedule_expression="cron(0 6 * * ? *)")["id"]
    event = {"schedule_id": schedule_id, "scheduled_time": "2026-12-01T06:00:00Z"}

    # When RunSchedule is invoked with it twice
    first = runtime.invoke("RunScheduleFunction", event).json()
    second = runtime.invoke("RunScheduleFunction", event).json()

    # Then both name the same job, the only one of the schedule
    assert first["outcome"] == "started"
    assert second["job_id"] == first["job_id"]
    assert [run["job_id"] for run in _runs(owner, schedule_id)] == [first["job_id"]]


def test_an_owner_who_lost_the_export_permission_stops_their_schedule(
    runtime: LocalRuntime,
) -> None:
    # Given a member's schedule
    owner = _client(runtime, "u_revoked")
    schedule_id = _create(owner, schedule_expression="cron(0 7 * * ? *)")["id"]
    # and the member's next token no longer grants DATA_EXPORT
    revoked = _client(runtime, "u_revoked", permissions=[])
    assert revoked.call("GET", "/v1/schedules").status == 200

    # When the schedule fires
    firing = runtime.fire(schedule_id)
    assert firing.invocation is not None and firing.invocation.json()["outcome"] == "refused"

    # Then the run is recorded as refused, and the schedule suspended, saying why
    detail = owner.call("GET", f"/v1/schedules/{schedule_id}").json()
    assert detail["state"] == "suspended"
    assert detail["suspension"]["code"] == "PERMISSION_DENIED"
    assert "DATA_EXPORT" in detail["suspension"]["message"]
    (run,) = detail["runs"]
    assert run["outcome"] == "refused" and run["job_id"] is None
    assert detail["last_failure"]["error"]["code"] == "PERMISSION_DENIED"
    assert _scheduler_schedule(runtime, schedule_id)["State"] == "DISABLED"
    # and the audit trail has the refused run
    audit_table = next(t.name for t in runtime.template.tables if t.logical_id == "AuditTable")
    runs = [
        event
        for event in AuditTrail(audit_table, REGION).chain(ORG)
        if event.type is AuditEventType.SCHEDULE_RUN and event.target_id == schedule_id
    ]
    assert [event.detail["outcome"] for event in runs] == ["refused"]

    # When the owner, holding the permission again, resumes it, it is enabled once more
    resumed = owner.call("POST", f"/v1/schedules/{schedule_id}/resume")
    assert resumed.status == 200, resumed.body
    assert resumed.json()["state"] == "enabled"
    assert resumed.json()["suspension"] is None
    assert _scheduler_schedule(runtime, schedule_id)["State"] == "ENABLED"


def test_schedules_are_private_to_their_owner_and_their_tenants_admins(
    runtime: LocalRuntime,
) -> None:
    owner = _client(runtime, "u_private")
    schedule_id = _create(owner, schedule_expression="cron(0 8 ? * MON *)")["id"]
    other = _client(runtime, "u_other")
    admin = _client(runtime, "u_admin", "admin")
    stranger = ApiClient(runtime.api_url, runtime.token("u_private", "org_elsewhere"))

    for client in (other, stranger):
        for method, path in (
            ("GET", f"/v1/schedules/{schedule_id}"),
            ("POST", f"/v1/schedules/{schedule_id}/run"),
            ("DELETE", f"/v1/schedules/{schedule_id}"),
        ):
            answer = client.call(method, path)
            assert answer.status == 404, (method, path, answer.body)
            assert answer.json()["error_code"] == "SCHEDULE_NOT_FOUND"
    assert schedule_id not in [s["id"] for s in other.call("GET", "/v1/schedules").json()["items"]]
    assert schedule_id in [s["id"] for s in admin.call("GET", "/v1/schedules").json()["items"]]
    assert admin.call("GET", f"/v1/schedules/{schedule_id}").status == 200
    operator = ApiClient(runtime.api_url, runtime.token("u_op", ORG, "operator"))
    assert operator.call("GET", "/v1/schedules").status == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule_expression": "cron(0 6 * * * *)"}, "schedule_expression"),
        ({"schedule_expression": "every day"}, "schedule_expression"),
        ({"schedule_expression": "rate(1 minutes)"}, "schedule_expression"),
        ({"schedule_expression": "at(2020-01-01T00:00:00)"}, "schedule_expression"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"export": {**EXPORT, "fields": ["created_at", "nope"]}}, "export.fields"),
        ({"export": {**EXPORT, "time_range": {"preset": "fortnight"}}}, "export.time_range.preset"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field_and_nothing_is_created(
    runtime: LocalRuntime, change: dict[str, Any], field: str
) -> None:
    owner = _client(runtime, "u_bad")
    body = {"name": "Bad", "schedule_expression": "cron(0 6 * * ? *)", "export": EXPORT, **change}
    answer = owner.call("POST", "/v1/schedules", body)
    assert answer.status == 400, answer.body
    error = answer.json()
    named = error["detail"].get("field") or [p["field"] for p in error["detail"]["problems"]]
    assert field in named, error
    assert owner.call("GET", "/v1/schedules").json()["items"] == []
    # and every Scheduler schedule is one of the tenant's schedules
    admin = _client(runtime, "u_admin", "admin")
    ours = {item["id"] for item in admin.call("GET", "/v1/schedules").json()["items"]}
    listed = runtime.boto3_client("scheduler").list_schedules(GroupName=_group(runtime))
    assert {entry["Name"] for entry in listed["Schedules"]} == ours


def test_scheduled_runs_do_not_use_the_owners_hourly_limit_but_run_now_does(
    runtime: LocalRuntime,
) -> None:
    owner = _client(runtime, "u_limits")
    schedule_id = _create(owner, schedule_expression="cron(0 9 * * ? *)")["id"]
    started = datetime(2026, 11, 1, 9, tzinfo=UTC)
    for day in range(12):  # more runs than the 10 exports an hour a user may create
        moment = (started + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {"schedule_id": schedule_id, "scheduled_time": moment}
        assert runtime.invoke("RunScheduleFunction", event).json()["outcome"] == "started"
    statuses = set()
    for _ in range(11):
        statuses.add(owner.call("POST", f"/v1/schedules/{schedule_id}/run").status)
    assert 429 in statuses


def test_the_fire_command_runs_a_schedule_of_a_running_runtime(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a schedule of a running runtime
    owner = _client(runtime, "u_fire")
    schedule_id = _create(owner, schedule_expression="cron(0 5 * * ? *)")["id"]

    # When `dataexport-local fire` names it, from outside the runtime, through moto's endpoint
    status = cli.main(["fire", schedule_id, "--aws-url", runtime.aws_endpoint])

    # Then it ran once, as the Scheduler would have run it
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "schedule" and printed["result"]["outcome"] == "started"
    (run,) = _runs(owner, schedule_id)
    assert run["trigger"] == "schedule" and run["job_id"] == printed["result"]["job_id"]
    # and an unknown name is an error that lists what exists
    assert cli.main(["fire", "no-such-rule", "--aws-url", runtime.aws_endpoint]) == 1
    assert schedule_id in capsys.readouterr().err


def test_the_templates_daily_retention_rule_is_an_eventbridge_rule_the_scheduler_fires(
    runtime: LocalRuntime,
) -> None:
    # Given the rule the template declares as the Retention function's Schedule event
    rule_name = runtime.template.rule("RetentionFunctionDaily").name
    rule = runtime.boto3_client("events").describe_rule(Name=rule_name)
    assert rule["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert rule["State"] == "ENABLED"

    # Then the scheduler knows its next run, 02:00 UTC
    upcoming = runtime.scheduler.next_run(rule_name)
    assert upcoming is not None and (upcoming.hour, upcoming.minute) == (2, 0)
    assert timedelta(0) < upcoming - datetime.now(UTC) <= timedelta(days=1)

    # When it is fired now, the Retention function gets EventBridge's Scheduled Event and runs
    firing = runtime.fire(rule_name)
    assert firing.kind == "rule" and firing.error is None
    assert firing.invocation is not None
    assert firing.invocation.json()["finished"] is True
