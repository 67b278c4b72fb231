"""The daily Retention run (EventBridge schedule): expire every export that is due."""

import time
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.config import RetentionRunConfig, cached_config
from dataexport.export_job import utc_now
from dataexport.services.retention import purge_due_exports

# An export started with less than this left could meet the function's timeout mid-purge.
TIMEOUT_RESERVE_SECONDS = 30

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(RetentionRunConfig)
    run_id = f"retention:{context.aws_request_id}"
    logger.append_keys(run_id=run_id, scheduled_at=event.time.isoformat())
    remaining = context.get_remaining_time_in_millis() / 1000 - TIMEOUT_RESERVE_SECONDS
    summary = purge_due_exports(
        jobs=components.job_store(config),
        objects=components.object_store(config),
        audit=components.audit_trail(config),
        retention=components.retention_policies(config),
        run_id=run_id,
        now=utc_now(),
        stop_starting_at=time.monotonic() + remaining,
    )
    return summary.to_payload()
