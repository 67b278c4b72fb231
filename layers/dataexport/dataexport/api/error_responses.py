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

from dataexport.errors import DataExportError

logger = Logger(child=True)


def error_response(
    status: int,
    error_code: str,
    message: str,
    detail: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    body = {"error_code": error_code, "message": message, "detail": detail or {}}
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, default=str),
        headers=headers,
    )


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "filters", 0, "op") -> "filters[0].op"; query and path parts keep their name.
    parts = [part for part in location if part not in ("body", "query", "path", "header")]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _domain_error(error: DataExportError) -> Response[str]:
    if error.http_status >= 500:
        logger.error("Request failed", extra={"error_code": error.error_code})
    return error_response(
        error.http_status, error.error_code, error.message, error.detail, error.headers
    )


def _validation_error(error: RequestValidationError) -> Response[str]:
    problems = [
        {"field": _field_name(item.get("loc", ())), "message": str(item.get("msg", ""))}
        for item in error.errors()
    ]
    first = problems[0] if problems else {"field": "body", "message": "Invalid request."}
    return error_response(
        422,
        "VALIDATION_ERROR",
        f"Invalid value for {first['field']}: {first['message']}",
        {"field": first["field"], "errors": problems},
    )


def _route_not_found(error: NotFoundError) -> Response[str]:
    return error_response(404, "ROUTE_NOT_FOUND", "No such route.")


def _unexpected_error(error: Exception) -> Response[str]:
    logger.exception("Unexpected error")
    return error_response(500, "INTERNAL", "Internal error; the request id identifies it.")


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
