"""The backup state machine's steps: Begin (lock and start), Record (after the task), Fail."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.backup import BackupOptions
from dataexport.config import BackupStepsConfig, cached_config
from dataexport.services import backups
from dataexport.step_events import BackupStepInput

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=BackupStepInput)
def lambda_handler(event: BackupStepInput, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(BackupStepsConfig)
    services = components.backup_services(config)
    if event.backup_id is not None:
        logger.append_keys(backup_id=event.backup_id)
    if event.step == "begin":
        outcome = backups.begin(
            services,
            event.backup_id,
            event.execution_arn or "",
            BackupOptions.model_validate(config.nightly_backup_options),
        )
        return {**outcome.to_payload(), "timeout_seconds": config.backup_timeout_seconds}
    assert event.backup_id is not None  # the model requires it past Begin
    if event.step == "record":
        return backups.record(services, event.backup_id, event.task or {}).view()
    error = event.error or {}
    return backups.fail(
        services, event.backup_id, str(error.get("Error", "")), error.get("Cause")
    ).view()
