"""Database backups end to end on the local runtime: POST /v1/backups, the backup state machine
(lock, ECS RunTask.sync running the real task with the embedded PostgreSQL's pg_dump, record,
release), the archive downloaded through its presigned URL and restored with
`dataexport-restore` into an empty database; the lock under concurrency and crashes; failures
that leave nothing under backups/."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dataexport.adapters.pg_dump import APPLICATION_NAME
from dataexport_local.postgres import ConnectionSettings, client_tools_dir
from dataexport_local.runtime import LocalRuntime
from tests.e2e.http_client import ApiClient, http

LEASE_SECONDS = 10
SCHEMA = "demo"
EXCLUDED = "demo.usage_logs"
OPTIONS = {"schemas": [SCHEMA], "exclude_table_data": [EXCLUDED]}
FINISHED = {"completed", "failed"}
RESTORE = Path(sys.executable).parent / "dataexport-restore"


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[LocalRuntime]:
    parameters = {
        "BackupLockLeaseSeconds": str(LEASE_SECONDS),
        "NightlyBackupOptions": json.dumps({"schemas": [SCHEMA]}),
    }
    with runtime_factory(parameters) as started:
        yield started


def client(runtime: LocalRuntime, role: str = "operator") -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(f"u_{role}", "org_platform", role))


def start(operator: ApiClient, options: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = operator.call("POST", "/v1/backups", options if options is not None else OPTIONS)
    assert answer.status == 202, answer.body
    started: dict[str, Any] = answer.json()
    return started


def wait_for(operator: ApiClient, backup_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        backup: dict[str, Any] = operator.call("GET", f"/v1/backups/{backup_id}").json()
        if backup["status"] in FINISHED:
            return backup
        assert time.monotonic() < deadline, f"backup {backup_id} still {backup['status']}"
        time.sleep(0.3)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def archives(runtime: LocalRuntime) -> list[str]:
    listed = runtime.boto3_client("s3").list_objects_v2(
        Bucket=runtime.bucket_name, Prefix="backups/"
    )
    return [item["Key"] for item in listed.get("Contents", [])]


def row_counts(connection: Any, schema: str) -> dict[str, int]:
    tables = connection.run(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = :schema AND table_type = 'BASE TABLE' ORDER BY 1",
        schema=schema,
    )
    return {
        name: int(connection.run(f'SELECT count(*) FROM "{schema}"."{name}"')[0][0])
        for (name,) in tables
    }


@contextmanager
def table_locked(runtime: LocalRuntime, table: str = EXCLUDED) -> Iterator[Any]:
    """A transaction holding `table` exclusively: pg_dump, which locks every table it dumps,
    waits at it (the backup stays running) until the block ends."""
    connection = runtime.database.connect()
    connection.run("BEGIN")
    connection.run(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    try:
        yield connection
    finally:
        connection.run("ROLLBACK")
        connection.close()


def pg_dump_waiting(runtime: LocalRuntime) -> bool:
    connection = runtime.database.connect()
    try:
        rows = connection.run(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = :name AND wait_event_type = 'Lock'",
            name=APPLICATION_NAME,
        )
    finally:
        connection.close()
    return int(rows[0][0]) > 0


def running_task(runtime: LocalRuntime, known: set[str]) -> str:
    """The ECS task (local process) started after those `known`."""
    found: list[str] = []

    def started() -> bool:
        found[:] = [arn for arn in runtime.tasks.running() if arn not in known]
        return bool(found)

    wait_until(started, 60, "no backup task started")
    return found[0]


@contextmanager
def empty_database(runtime: LocalRuntime) -> Iterator[tuple[str, ConnectionSettings]]:
    """A new empty database on the same server: its URL for dataexport-restore, and how to
    connect to it."""
    name = f"restore_{uuid.uuid4().hex[:10]}"
    admin = runtime.database.connect()
    admin.run(f"CREATE DATABASE {name}")
    settings = replace(runtime.database.admin_settings, dbname=name)
    if settings.is_socket:
        url = f"postgresql://{settings.username}@/{name}?host={quote(settings.host)}&port={settings.port}"
    else:
        url = f"postgresql://{settings.username}@{settings.host}:{settings.port}/{name}"
    try:
        yield url, settings
    finally:
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def audit_types(runtime: LocalRuntime, backup_id: str) -> list[str]:
    operator = client(runtime)
    answer = operator.call("GET", "/v1/audit-events?org=_platform&limit=200")
    assert answer.status == 200, answer.body
    return [e["type"] for e in answer.json()["items"] if e["target_id"] == backup_id]


# --------------------------------------------------------------------------------------- tests
def test_a_backup_over_http_restores_into_an_empty_database_with_the_same_rows(
    runtime: LocalRuntime,
) -> None:
    operator = client(runtime)
    # When an operator starts a backup of the demo schema, without usage_logs' rows
    started = start(operator)
    assert started["status"] == "running" and started["options"]["schemas"] == [SCHEMA]

    # Then it completes, verified, with its size and checksum
    done = wait_for(operator, started["id"])
    assert done["status"] == "completed", done["error"]
    assert done["verified"] is True and done["table_data_entries"] >= 1
    assert done["size_bytes"] > 0 and len(done["sha256"]) == 64
    assert done["expires_at"] is not None and done["duration_seconds"] is not None
    assert archives(runtime) == [f"backups/{done['id']}.dump"]

    # And its download link serves exactly the recorded bytes
    redirect = operator.call("GET", f"/v1/backups/{done['id']}/download")
    assert redirect.status == 302, redirect.body
    archive = http("GET", redirect.headers["Location"])
    assert archive.status == 200
    assert len(archive.body) == done["size_bytes"]
    assert hashlib.sha256(archive.body).hexdigest() == done["sha256"]

    # And dataexport-restore puts it into an empty database with the same row counts, the
    # excluded table there with its structure and no rows
    with empty_database(runtime) as (target_url, target_settings):
        restored = subprocess.run(
            [
                str(RESTORE),
                "--url",
                redirect.headers["Location"],
                "--sha256",
                done["sha256"],
                "--database-url",
                target_url,
                # pg_restore of the archive's major version (16), as docs/restore.md says
                "--bin-dir",
                str(client_tools_dir()),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ},
            check=False,
        )
        assert restored.returncode == 0, restored.stderr
        source = runtime.database.connect()
        try:
            expected = row_counts(source, SCHEMA)
        finally:
            source.close()
        target = target_settings.connect()
        try:
            got = row_counts(target, SCHEMA)
        finally:
            target.close()
    assert set(got) == set(expected)
    assert got["usage_logs"] == 0 < expected["usage_logs"]
    assert {t: n for t, n in got.items() if t != "usage_logs"} == {
        t: n for t, n in expected.items() if t != "usage_logs"
    }

    # And each step was audited in the platform's chain
    assert sorted(audit_types(runtime, done["id"])) == [
        "BACKUP_COMPLETED",
        "BACKUP_DOWNLOADED",
        "BACKUP_STARTED",
    ]


def test_backups_are_for_operators_only(runtime: LocalRuntime) -> None:
    for role in ("member", "admin"):
        caller = client(runtime, role)
        for method, path in (("POST", "/v1/backups"), ("GET", "/v1/backups")):
            answer = caller.call(method, path, {} if method == "POST" else None)
            assert answer.status == 403, (role, path, answer.body)
            assert answer.json()["error_code"] == "PERMISSION_DENIED"


def test_bad_options_are_refused_naming_the_field(runtime: LocalRuntime) -> None:
    answer = client(runtime).call(
        "POST", "/v1/backups", {"exclude_table_data": ["logs; DROP TABLE x"]}
    )
    assert answer.status == 400, answer.body
    assert answer.json()["error_code"] == "VALIDATION_ERROR"
    assert "exclude_table_data" in answer.body.decode()


def test_a_schema_or_table_the_database_lacks_is_refused_naming_it(
    runtime: LocalRuntime,
) -> None:
    # Given an operator naming a schema and a table the database does not have, beside ones it has
    body = {
        "schemas": ["demo", "no_such_schema"],
        "tables": ["demo.usage_*", "demo.no_such_table"],
    }

    before = client(runtime).call("GET", "/v1/backups").json()["items"]

    # When they ask for a backup
    answer = client(runtime).call("POST", "/v1/backups", body)

    # Then it is a 400 naming the first, listing both, and no backup was started
    assert answer.status == 400, answer.body
    error = answer.json()
    assert error["error_code"] == "VALIDATION_ERROR"
    assert error["detail"]["field"] == "schemas[1]"
    assert error["detail"]["missing"] == [
        {"field": "schemas[1]", "name": "no_such_schema"},
        {"field": "tables[1]", "name": "demo.no_such_table"},
    ]
    assert "no_such_schema" in error["message"] and "demo.no_such_table" in error["message"]
    assert client(runtime).call("GET", "/v1/backups").json()["items"] == before


def test_two_requests_at_once_one_runs_the_other_gets_409(runtime: LocalRuntime) -> None:
    operator = client(runtime)
    barrier = threading.Barrier(2)

    def request(_: int) -> Any:
        barrier.wait()
        return operator.call("POST", "/v1/backups", OPTIONS)

    # Given pg_dump held up, so the backup that wins stays running
    with table_locked(runtime):
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(request, range(2)))
        statuses = sorted(answer.status for answer in answers)
        assert statuses == [202, 409], [answer.body for answer in answers]
        winner = next(a.json() for a in answers if a.status == 202)
        loser = next(a.json() for a in answers if a.status == 409)
        # The refusal names the running backup
        assert loser["error_code"] == "CONFLICT"
        assert loser["detail"]["running_backup_id"] == winner["id"]
        # and a third request while it runs is refused the same way
        again = operator.call("POST", "/v1/backups", OPTIONS)
        assert again.status == 409 and again.json()["detail"]["running_backup_id"] == winner["id"]
    # When the block ends, the winner completes and the lock is free again
    assert wait_for(operator, winner["id"])["status"] == "completed"
    follow_up = start(operator)
    assert wait_for(operator, follow_up["id"])["status"] == "completed"


def test_a_killed_task_fails_the_backup_releases_the_lock_and_leaves_no_archive(
    runtime: LocalRuntime,
) -> None:
    operator = client(runtime)
    before = set(archives(runtime))
    known = set(runtime.tasks.task_arns())
    with table_locked(runtime):
        started = start(operator)
        task = running_task(runtime, known)
        wait_until(lambda: pg_dump_waiting(runtime), 60, "pg_dump never reached the lock")
        # When the task's process is killed mid-dump
        runtime.tasks.kill(task)
        failed = wait_for(operator, started["id"])
    # Then the backup is failed with a safe message, nothing new is under backups/
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "The backup task was stopped or killed (exit code 137)."
    assert set(archives(runtime)) == before
    assert "BACKUP_FAILED" in audit_types(runtime, started["id"])
    # and the lock is free at once: the next backup runs
    assert wait_for(operator, start(operator)["id"])["status"] == "completed"


def test_after_a_crash_the_lock_expires_and_the_next_backup_runs(runtime: LocalRuntime) -> None:
    operator = client(runtime)
    sfn = runtime.boto3_client("stepfunctions")
    known = set(runtime.tasks.task_arns())
    with table_locked(runtime):
        lost = start(operator)
        task = running_task(runtime, known)
        # Given a crash that takes the workflow and the task with it: no step releases the lock
        execution = operator.call("GET", f"/v1/backups/{lost['id']}").json()
        arn = runtime.execution_arn(lost["id"], "BackupStateMachine")
        sfn.stop_execution(executionArn=arn, error="Crash", cause="simulated")
        runtime.tasks.kill(task)
        assert execution["status"] == "running"
    # Then the lock still holds: another backup is refused, naming the lost one
    refused = operator.call("POST", "/v1/backups", OPTIONS)
    assert refused.status == 409, refused.body
    assert refused.json()["detail"]["running_backup_id"] == lost["id"]

    # When its lease has run out
    deadline = time.monotonic() + LEASE_SECONDS + 30
    while (answer := operator.call("POST", "/v1/backups", OPTIONS)).status == 409:
        assert time.monotonic() < deadline, "the lock never expired"
        time.sleep(0.5)
    # Then the next backup runs and completes, and the lost one is marked failed
    assert answer.status == 202, answer.body
    assert wait_for(operator, answer.json()["id"])["status"] == "completed"
    lost_now = operator.call("GET", f"/v1/backups/{lost['id']}").json()
    assert lost_now["status"] == "failed"
    assert lost_now["error"]["code"] == "LOCK_EXPIRED"
    assert not [key for key in archives(runtime) if lost["id"] in key]


def test_refused_credentials_fail_the_backup_with_a_safe_message(runtime: LocalRuntime) -> None:
    operator = client(runtime)
    secrets = runtime.boto3_client("secretsmanager")
    parameter = str(runtime.template.parameters["BackupDatabaseSecretArn"])
    good = secrets.get_secret_value(SecretId=parameter)["SecretString"]
    bad = {**json.loads(good), "username": "no_such_role", "password": "wrong-password-123"}
    before = set(archives(runtime))
    secrets.put_secret_value(SecretId=parameter, SecretString=json.dumps(bad))
    try:
        failed = wait_for(operator, start(operator)["id"])
    finally:
        secrets.put_secret_value(SecretId=parameter, SecretString=good)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "AUTHENTICATION_FAILED"
    message = failed["error"]["message"]
    assert "no_such_role" not in message and "wrong-password" not in message
    assert set(archives(runtime)) == before
    # and the lock was released
    assert wait_for(operator, start(operator)["id"])["status"] == "completed"


def test_a_database_gone_mid_dump_fails_the_backup_and_leaves_no_archive(
    runtime: LocalRuntime,
) -> None:
    operator = client(runtime)
    before = set(archives(runtime))
    with table_locked(runtime) as blocker:
        started = start(operator)
        wait_until(lambda: pg_dump_waiting(runtime), 60, "pg_dump never reached the lock")
        # When the server ends pg_dump's connection mid-dump
        blocker.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name",
            name=APPLICATION_NAME,
        )
        failed = wait_for(operator, started["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "DUMP_FAILED"
    assert "SELECT" not in failed["error"]["message"] and "LOCK" not in failed["error"]["message"]
    # (it says what pg_dump said: the connection was ended)
    assert failed["error"]["message"].startswith(
        "pg_dump stopped with an error before the dump was complete: "
    )
    assert "terminating connection" in failed["error"]["message"]
    assert set(archives(runtime)) == before
    assert wait_for(operator, start(operator)["id"])["status"] == "completed"


def test_the_nightly_rule_runs_a_backup_and_skips_while_one_runs(runtime: LocalRuntime) -> None:
    operator = client(runtime)
    seen = {b["id"] for b in operator.call("GET", "/v1/backups?limit=100").json()["items"]}
    rule = runtime.template.rule("BackupStateMachineNightly").name
    # When the nightly rule fires
    firing = runtime.fire(rule)
    assert firing.error is None

    def nightly() -> list[dict[str, Any]]:
        items = operator.call("GET", "/v1/backups?limit=100").json()["items"]
        return [b for b in items if b["id"] not in seen]

    wait_until(lambda: bool(nightly()), 60, "the nightly rule started no backup")
    (backup,) = nightly()
    # Then a scheduled backup of what NightlyBackupOptions names completes
    assert backup["trigger"] == "schedule" and backup["options"]["schemas"] == [SCHEMA]
    assert wait_for(operator, backup["id"])["status"] == "completed"
