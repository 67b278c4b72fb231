"""The /v1 HTTP API behind API Gateway: Powertools routing, typed validation, one error shape,
and the OpenAPI document with its docs page (dataexport.api.docs_routes)."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport.api import (
    audit_routes,
    backups_routes,
    datasets_routes,
    exports_routes,
    retention_routes,
    schedules_routes,
    webhook_routes,
)
from dataexport.api.docs_routes import register_docs
from dataexport.api.error_responses import proxy_error_response, register_error_handlers
from dataexport.api.idempotency import idempotency_config
from dataexport.api.request_limits import check_request_body
from dataexport.errors import DataExportError

logger = Logger()
tracer = Tracer()

app = APIGatewayRestResolver(enable_validation=True)
app.include_router(exports_routes.router)
app.include_router(datasets_routes.router)
app.include_router(audit_routes.router)
app.include_router(schedules_routes.router)
app.include_router(retention_routes.router)
app.include_router(webhook_routes.router)
app.include_router(backups_routes.router)
register_error_handlers(app, on_error=exports_routes.record_refusal)
register_docs(app)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Lets an Idempotency-Key whose request timed out be retried once the invocation is over.
    idempotency_config().register_lambda_context(context)
    try:
        check_request_body(event)
    except DataExportError as refusal:
        return proxy_error_response(refusal)
    return app.resolve(event, context)
