"""The template's backup task as the local runtime reads and registers it, and how a task
process's exit and overrides are seen as ECS shows them."""

from __future__ import annotations

import signal

from dataexport_local.aws import register_task_definition_request
from dataexport_local.ecs import exit_code, override_environment
from dataexport_local.template import DEFAULT_TEMPLATE_PATH, resolve_template
from tests.local.conftest import BACKUP_PARAMETERS, DATABASE_SECRET


def test_without_an_image_the_template_has_no_backup_resources() -> None:
    template = resolve_template(DEFAULT_TEMPLATE_PATH, {"DatabaseSecretArn": DATABASE_SECRET})
    assert template.task_definitions == () and template.ecs_clusters == ()
    assert "BACKUP_STATE_MACHINE_ARN" not in template.function("ApiFunction").environment
    assert {m.logical_id for m in template.state_machines} == {"ExportStateMachine"}


def test_the_backup_task_is_registered_as_the_ecs_api_names_it() -> None:
    # Given the template with a backup image
    template = resolve_template(
        DEFAULT_TEMPLATE_PATH,
        BACKUP_PARAMETERS,
    )
    (task,) = template.task_definitions
    assert task.entry_point is not None and task.entry_point.name == "backup_task.py"
    assert task.entry_point.is_file()
    # Then its registration is in the API's camelCase, its log options as the driver names them
    request = register_task_definition_request(task)
    assert request["family"] == "dataexport-backup"
    assert request["requiresCompatibilities"] == ["FARGATE"]
    assert request["networkMode"] == "awsvpc"
    (container,) = request["containerDefinitions"]
    assert container["image"] == "repo/backup:1" and container["readonlyRootFilesystem"] is True
    assert "awslogs-group" in container["logConfiguration"]["options"]
    environment = {entry["name"]: entry["value"] for entry in container["environment"]}
    assert environment["BACKUP_DATABASE_SECRET_ARN"] == DATABASE_SECRET
    # and the nightly rule starts the backup state machine with a role of its own
    machine = next(m for m in template.state_machines if m.logical_id == "BackupStateMachine")
    nightly = template.rule("BackupStateMachineNightly")
    assert nightly.schedule_expression == "cron(0 3 * * ? *)"
    (target,) = nightly.targets
    assert target.arn == machine.arn and target.role_arn is not None
    assert template.role(target.role_arn).inline_policies


def test_a_process_exit_reads_as_a_container_exit() -> None:
    assert exit_code(0) == 0
    assert exit_code(1) == 1
    assert exit_code(-signal.SIGKILL) == 137
    assert exit_code(-signal.SIGTERM) == 143


def test_overrides_apply_to_their_own_container_only() -> None:
    overrides = {
        "containerOverrides": [
            {"name": "backup", "environment": [{"name": "BACKUP_ID", "value": "bak_1"}]},
            {"name": "sidecar", "environment": [{"name": "BACKUP_ID", "value": "other"}]},
        ]
    }
    assert override_environment(overrides, "backup") == {"BACKUP_ID": "bak_1"}
    assert override_environment(None, "backup") == {}
