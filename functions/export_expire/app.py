"""Export step 4 (Expire): purge the export when it is due, or wait for a later expiry."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.config import ExpireStepConfig, cached_config
from dataexport.services.export_steps import expire_export
from dataexport.step_events import ExpireStepInput

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=ExpireStepInput)
def lambda_handler(event: ExpireStepInput, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(ExpireStepConfig)
    logger.append_keys(job_id=event.job_id)
    outcome = expire_export(
        event.job_id,
        jobs=components.job_store(config),
        objects=components.object_store(config),
        audit=components.audit_trail(config),
        retention=components.retention_policies(config),
        # Each invocation claims for itself: a retry waits for nobody's lease but its own.
        claimant=f"expire:{context.aws_request_id}",
    )
    return outcome.to_payload()
