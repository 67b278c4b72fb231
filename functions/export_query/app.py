"""Export step 1 (Query): mark the job running, count its rows, plan its partitions."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.config import QueryStepConfig, cached_config
from dataexport.services.export_steps import Splitting, plan_export
from dataexport.step_events import QueryStepInput

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=QueryStepInput)
def lambda_handler(event: QueryStepInput, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(QueryStepConfig)
    logger.append_keys(job_id=event.job_id)
    plan = plan_export(
        event.job_id,
        jobs=components.job_store(config),
        rows_for=components.row_sources(config),
        catalog=components.catalog(config),
        splitting=Splitting(
            segment_rows=config.segment_rows,
            partition_segments=config.partition_segments,
            max_concurrency=config.format_max_concurrency,
            distributed_partitions=config.format_distributed_partitions,
            distributed_max_concurrency=config.format_distributed_max_concurrency,
            connection_budget=config.format_connection_budget,
        ),
    )
    return plan.to_payload()
