"""The /v1 HTTP API behind API Gateway: Powertools routing, typed validation, one error shape."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from dataexport.api import audit_routes, datasets_routes, exports_routes
from dataexport.api.error_responses import register_error_handlers
from dataexport.api.idempotency import idempotency_config

logger = Logger()
tracer = Tracer()

app = APIGatewayRestResolver(enable_validation=True)
app.include_router(exports_routes.router)
app.include_router(datasets_routes.router)
app.include_router(audit_routes.router)
register_error_handlers(app, on_error=exports_routes.record_refusal)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Lets an Idempotency-Key whose request timed out be retried once the invocation is over.
    idempotency_config().register_lambda_context(context)
    return app.resolve(event, context)
