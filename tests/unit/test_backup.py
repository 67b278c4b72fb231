"""Backup options, their pg_dump arguments, and the safe errors a failed backup shows."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from dataexport.backup import BackupOptions, backup_key, new_backup_id
from dataexport.config import BackupTaskConfig, read_config
from dataexport.errors import ConfigurationError
from dataexport.services.backups import failure_error, task_exit_code
from dataexport.step_events import BackupStepInput


def test_options_become_one_pg_dump_argument_each() -> None:
    options = BackupOptions(
        schemas=["public", "billing"],
        exclude_tables=["public.tmp_*"],
        exclude_table_data=["public.usage_logs"],
    )
    assert options.pg_dump_arguments() == [
        "--schema=public",
        "--schema=billing",
        "--exclude-table=public.tmp_*",
        "--exclude-table-data=public.usage_logs",
    ]
    assert BackupOptions().pg_dump_arguments() == []


@pytest.mark.parametrize(
    "name",
    [
        "public.users; DROP TABLE x",
        "--file=/etc/passwd",
        '"Quoted"',
        "a b",
        "one.two.three",
        "",
        "x" * 64,
    ],
)
def test_anything_but_a_plain_name_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        BackupOptions(exclude_table_data=[name])
    assert "exclude_table_data" in str(raised.value)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValidationError):
        BackupOptions.model_validate({"exclude_logs": True})


def test_the_archive_key_is_under_backups() -> None:
    backup_id = new_backup_id()
    assert backup_key(backup_id) == f"backups/{backup_id}.dump"


def test_the_task_exit_code_is_read_from_either_casing() -> None:
    assert task_exit_code({"containers": [{"ExitCode": 0}]}) == 0
    assert task_exit_code({"Containers": [{"exitCode": 137}]}) == 137
    assert task_exit_code({"containers": [{"LastStatus": "STOPPED"}]}) is None
    assert task_exit_code({}) is None


def test_our_own_step_errors_keep_their_message() -> None:
    cause = json.dumps({"errorMessage": "The backup task failed (exit code 1).", "stackTrace": []})
    error = failure_error("BackupTaskFailed", cause)
    assert (error.code, error.message) == ("BACKUP_FAILED", "The backup task failed (exit code 1).")


def test_other_errors_are_described_never_quoted() -> None:
    # ECS' own description of the task may name images, accounts and hosts: none of it shows.
    cause = json.dumps(
        {
            "Containers": [{"ExitCode": 137}],
            "StoppedReason": "CannotPullContainerError: 123456789012.dkr.ecr.../secret:tag",
        }
    )
    stopped = failure_error("States.TaskFailed", cause)
    assert stopped.code == "TASK_FAILED" and "exit code 137" in stopped.message
    assert "123456789012" not in stopped.message
    assert failure_error("States.Timeout", None).code == "TIMED_OUT"
    odd = failure_error("States.Runtime", "SELECT secret FROM somewhere")
    assert "SELECT" not in odd.message


def test_the_task_configuration_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BACKUP_ID", "BACKUP_DATABASE_SECRET_ARN", "BACKUPS_TABLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPORTS_BUCKET_NAME", "bucket")
    with pytest.raises(ConfigurationError) as raised:
        read_config(BackupTaskConfig)
    for name in ("BACKUP_ID", "BACKUP_DATABASE_SECRET_ARN", "BACKUPS_TABLE_NAME"):
        assert name in str(raised.value)


def test_a_step_past_begin_needs_a_backup_id() -> None:
    with pytest.raises(ValidationError):
        BackupStepInput.model_validate({"step": "record", "task": {}})
    assert BackupStepInput.model_validate({"step": "begin", "backup_id": None}).backup_id is None
