"""Export step 3 (Upload): assemble the parts into the final file and complete the job."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.config import UploadStepConfig, cached_config
from dataexport.services.export_steps import complete_export, state_machine_timestamp
from dataexport.step_events import UploadStepInput

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=UploadStepInput)
def lambda_handler(event: UploadStepInput, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(UploadStepConfig)
    logger.append_keys(job_id=event.job_id)
    job = complete_export(
        event.job_id,
        event.parts,
        jobs=components.job_store(config),
        objects=components.object_store(config),
        checkpoints=components.checkpoint_store(config),
        catalog=components.catalog(config),
        queue=components.export_queue(config),
        retention=components.retention_policies(config),
    )
    if job.expires_at is None:
        raise ValueError(f"Export {job.id} completed without an expiry time")
    return {"job_id": job.id, "expires_at": state_machine_timestamp(job.expires_at)}
