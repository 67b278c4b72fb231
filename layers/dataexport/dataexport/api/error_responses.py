"""One error shape for every answer: {"error_code", "message", "detail"}.

Domain errors map to their status here and only here; anything unexpected is a 500 with a
generic message (the details go to the log with the request id, never to the caller).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from dataexport.errors import DataExportError, InvalidRequest
from dataexport.field_path import field_path

logger = Logger(child=True)


def _error_body(error_code: str, message: str, detail: dict[str, Any] | None) -> str:
    body = {"error_code": error_code, "message": message, "detail": detail or {}}
    return json.dumps(body, default=str)


def error_response(
    status: int,
    error_code: str,
    message: str,
    detail: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=_error_body(error_code, message, detail),
        headers=headers,
    )


def proxy_error_response(error: DataExportError) -> dict[str, Any]:
    """The proxy integration answer of a request refused before routing (see request_limits)."""
    return {
        "statusCode": error.http_status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **error.headers},
        "body": _error_body(error.error_code, error.message, error.detail),
        "isBase64Encoded": False,
    }


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "filters", 0, "op") -> "filters[0].op"; query, path and header names stay whole.
    parts = [part for part in location if part not in ("body", "query", "path", "header")]
    return field_path(parts) or "body"


INTERNAL_MESSAGE = "Internal error; the request id identifies it."


def _domain_error(error: DataExportError) -> Response[str]:
    if error.error_code == DataExportError.error_code:
        # The deployment's own fault (its configuration, its catalog): the reason is for the
        # operator's log, never for the caller.
        logger.error("Request failed", extra={"error_code": error.error_code, "reason": str(error)})
        return error_response(error.http_status, error.error_code, INTERNAL_MESSAGE)
    if error.http_status >= 500:
        logger.error("Request failed", extra={"error_code": error.error_code})
    return error_response(
        error.http_status, error.error_code, error.message, error.detail, error.headers
    )


def _validation_error(error: RequestValidationError) -> Response[str]:
    problems = [
        {
            "field": _field_name(item.get("loc", ())),
            "message": str(item.get("msg", "")).removeprefix("Value error, "),
        }
        for item in error.errors()
    ]
    first = problems[0] if problems else {"field": "body", "message": "Invalid request."}
    # The same status as every other VALIDATION_ERROR (InvalidRequest): one rule for clients.
    return error_response(
        InvalidRequest.http_status,
        InvalidRequest.error_code,
        f"Invalid value for {first['field']}: {first['message']}",
        {"field": first["field"], "errors": problems},
    )


def _route_not_found(error: NotFoundError) -> Response[str]:
    return error_response(404, "ROUTE_NOT_FOUND", "No such route.")


def _unexpected_error(error: Exception) -> Response[str]:
    logger.exception("Unexpected error")
    return error_response(500, "INTERNAL", INTERNAL_MESSAGE)


def register_error_handlers(
    app: APIGatewayRestResolver, on_error: Callable[[DataExportError], None] | None = None
) -> None:
    """Install the one error shape on `app`: domain errors, validation, 404 and the rest.

    `on_error` sees every domain error before it is answered (the API audits refusals).
    """

    def domain_error(error: DataExportError) -> Response[str]:
        if on_error is not None:
            on_error(error)
        return _domain_error(error)

    app.exception_handler(DataExportError)(domain_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.not_found(_route_not_found)
    app.exception_handler(Exception)(_unexpected_error)
