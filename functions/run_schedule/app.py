"""RunSchedule: a Scheduler schedule is due; create its export job as the schedule's owner."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.config import RunScheduleConfig, cached_config
from dataexport.export_schedule import RunScheduleEvent
from dataexport.services.schedules import run_scheduled

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=RunScheduleEvent)
def lambda_handler(event: RunScheduleEvent, context: LambdaContext) -> dict[str, Any]:
    config = cached_config(RunScheduleConfig)
    logger.append_keys(schedule_id=event.schedule_id)
    result = run_scheduled(
        event.schedule_id, event.scheduled_time, components.schedule_services(config)
    )
    if result is None:
        return {"schedule_id": event.schedule_id, "outcome": "skipped"}
    return {
        "schedule_id": event.schedule_id,
        "outcome": result.run.outcome,
        "job_id": result.run.job_id,
        "error_code": result.run.error.code if result.run.error else None,
    }
