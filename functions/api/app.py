"""The /v1 HTTP API behind API Gateway: Powertools routing, typed validation, one error shape."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
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
from dataexport.api.error_responses import proxy_error_response, register_error_handlers
from dataexport.api.idempotency import idempotency_config
from dataexport.api.request_limits import check_request_body
from dataexport.errors import DataExportError

logger = Logger()
tracer = Tracer()

API_TITLE = "dataexport"
API_VERSION = "1"
API_DESCRIPTION = (
    "Export PostgreSQL datasets as CSV, JSON or NDJSON: create jobs, follow their progress, "
    "download results through short-lived links. Send `Authorization: Bearer <JWT>`."
)

app = APIGatewayRestResolver(enable_validation=True)
app.include_router(exports_routes.router)
app.include_router(datasets_routes.router)
app.include_router(audit_routes.router)
app.include_router(schedules_routes.router)
app.include_router(retention_routes.router)
app.include_router(webhook_routes.router)
app.include_router(backups_routes.router)
register_error_handlers(app, on_error=exports_routes.record_refusal)
app.enable_swagger(
    path="/v1/docs", title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION
)


@app.get("/v1/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    """The OpenAPI document, generated from the routes and their typed models."""
    document = app.get_openapi_json_schema(
        title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION
    )
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=document)


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
