"""Export step 2 (Format, one Map iteration): stream a partition from PostgreSQL into S3."""

import time
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.config import FormatStepConfig, cached_config
from dataexport.services.export_steps import Partition, format_partition
from dataexport.step_events import FormatStepInput

# A segment started with less than this left could meet the function's timeout.
TIMEOUT_RESERVE_SECONDS = 120

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=FormatStepInput)
def lambda_handler(event: FormatStepInput, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(FormatStepConfig)
    logger.append_keys(job_id=event.job_id, partition=event.index)
    # No new segment after the budget, nor once too little of the function's timeout is left.
    remaining = context.get_remaining_time_in_millis() / 1000 - TIMEOUT_RESERVE_SECONDS
    outcome = format_partition(
        Partition(event.job_id, event.index, event.count, event.bounds),
        jobs=components.job_store(config),
        rows_for=components.row_sources(config),
        objects=components.object_store(config),
        catalog=components.catalog(config),
        checkpoints=components.checkpoint_store(config),
        stop_starting_at=time.monotonic() + min(config.format_time_budget_seconds, remaining),
    )
    return outcome.to_payload()
