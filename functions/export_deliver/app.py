"""After Upload or MarkFailed: send the outcome event and deliver the export (webhook, email,
copy to a bucket). Raises DeliveryFailed for an attempt worth repeating; the state machine
retries it with backoff."""

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport import components
from dataexport.adapters.email_sender import EmailSender
from dataexport.adapters.event_bus import EventBus
from dataexport.adapters.webhook_client import WebhookClient
from dataexport.config import DeliverStepConfig, cached_config
from dataexport.services.export_delivery import DeliveryServices, deliver_outcome
from dataexport.step_events import DeliverStepInput

logger = Logger()
tracer = Tracer()


@cache
def delivery_services() -> DeliveryServices:
    config = cached_config(DeliverStepConfig)
    policy = config.delivery_policy()
    return DeliveryServices(
        jobs=components.job_store(config),
        objects=components.object_store(config),
        audit=components.audit_trail(config),
        events=EventBus(config.aws_region),
        webhooks=WebhookClient(allow_private=policy.allow_private_targets),
        email=None
        if policy.email_sender is None
        else EmailSender(policy.email_sender, config.aws_region),
        policy=policy,
        signing_secret=lambda: components.webhook_signing_secret(config),
        link_ttl_seconds=config.delivery_link_ttl_seconds,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_parser(model=DeliverStepInput)
def lambda_handler(event: DeliverStepInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(job_id=event.job_id)
    record = deliver_outcome(event.job_id, delivery_services(), give_up=event.give_up)
    return {"job_id": event.job_id, "delivery_status": record.status.value}
