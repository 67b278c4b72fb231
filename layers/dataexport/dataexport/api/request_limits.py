"""Request bodies are small JSON documents: anything larger is refused before parsing."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from dataexport.api.error_responses import error_response

MAX_BODY_BYTES = 64 * 1024


def limit_request_size(
    app: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[str]:
    body = app.current_event.body or ""
    size = len(body.encode()) if isinstance(body, str) else len(body)
    if size > MAX_BODY_BYTES:
        return error_response(
            413,
            "VALIDATION_ERROR",
            f"The request body is {size} bytes; at most {MAX_BODY_BYTES} are accepted.",
            {"field": "body", "max_bytes": MAX_BODY_BYTES},
        )
    return next_middleware(app)
