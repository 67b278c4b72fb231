"""Catch target: mark the job failed with a safe reason and clean up what it left in S3."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.config import FailStepConfig, cached_config
from dataexport.services.export_steps import fail_export
from dataexport.step_events import FailStepInput

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=FailStepInput)
def lambda_handler(event: FailStepInput, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(FailStepConfig)
    logger.append_keys(job_id=event.job_id)
    job = fail_export(
        event.job_id,
        event.error.error,
        event.error.cause,
        jobs=components.job_store(config),
        objects=components.object_store(config),
        queue=components.export_queue(config),
        audit=components.audit_trail(config),
    )
    return {"job_id": job.id, "status": job.status.value}
