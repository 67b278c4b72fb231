"""The OpenAPI document of /v1: what every operation answers, how to authenticate, where it runs.

Routes declare their answers with `answers(...)`: the success models they really send (the same
models shape those answers, see response_models.py) and each error status they can give, all in
the one error shape. Every authenticated operation can also answer 401 (no or bad token), 403
(the role may not) and 429 (API Gateway's throttling, or the export rate limit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Tag
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from dataexport.api.response_models import ErrorBody

API_TITLE = "dataexport"
API_VERSION = "1"
API_DESCRIPTION = """\
Export PostgreSQL datasets as **CSV, JSON, NDJSON, Excel (xlsx) or Parquet**, optionally \
compressed (gzip, zstd), split into files of a maximum size, filtered, aggregated, with privacy \
transforms; on a schedule or once. Create a job with `POST /v1/exports` (202), follow it with \
`GET /v1/exports/{export_id}`, download it through a short-lived link \
(`GET /v1/exports/{export_id}/download`, a 302).

**Authentication**: every operation takes `Authorization: Bearer <JWT>` (claims `sub`, `org`, \
`role`: member, admin or operator; `permissions` with `DATA_EXPORT` to create, download or \
cancel exports). On this page, press **Authorize** and paste the token alone. \
`/v1/openapi.json` and `/v1/docs` need no token.

**Errors** have one shape, `{"error_code", "message", "detail"}`. Invalid input is \
`VALIDATION_ERROR` with HTTP 400 on every route, `detail.field` naming the field \
(`filters[0].op`, `options.delimiter`, `limit`, `Idempotency-Key`); 422 only when an \
`Idempotency-Key` is reused with a different body; 413 for a body over 64 KiB; 415 for a body \
that is not `application/json`.
"""

BEARER_SCHEME = "bearerAuth"

# The groups of the docs page, in the order a new user needs them.
TAGS = (
    Tag(name="Exports", description="Create, follow, download, cancel and delete exports."),
    Tag(name="Catalog", description="The datasets and formats this caller may use."),
    Tag(name="Schedules", description="Exports that run on a schedule."),
    Tag(name="Webhooks", description="How delivery webhooks are signed."),
    Tag(name="Retention", description="How long each dataset's exports are kept (admins)."),
    Tag(name="Audit", description="The tamper-evident audit trail (admins, operators)."),
    Tag(name="Backups", description="Database backups (operators)."),
)

ERROR_MEANINGS: dict[int, str] = {
    400: "VALIDATION_ERROR (or INVALID_DATE_RANGE): `detail.field` names the bad field.",
    401: "UNAUTHENTICATED: no bearer token, or one that is not valid (API Gateway answers).",
    403: "PERMISSION_DENIED: this role may not do this.",
    404: "Not found; also for another user's or tenant's resource, never revealed.",
    409: "CONFLICT: the resource is not in a state that allows this (yet).",
    410: "Expired: the file is gone; create a new one.",
    413: "VALIDATION_ERROR: the body is over 64 KiB.",
    415: "The body is not sent as application/json.",
    422: "VALIDATION_ERROR: this Idempotency-Key was used with a different body.",
    429: "RATE_LIMIT_EXCEEDED: too many requests; `Retry-After` says when to retry.",
    503: "The database or the backup service is not available now; retry later.",
}

# Every operation behind the authorizer can answer these.
ALWAYS = (401, 403, 429)

RATE_LIMIT_HEADERS: dict[str, Any] = {
    "X-RateLimit-Limit": {"description": "Exports allowed per hour", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Exports left now", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {
        "description": "Unix time when a slot frees",
        "schema": {"type": "integer"},
    },
}
# A query string can be longer than the gateway takes (API Gateway: 10 KB of request line and
# headers); the gateway itself answers, not in our error shape.
URL_TOO_LONG: dict[int, OpenAPIResponse] = {
    414: {
        "description": "The URL is longer than the gateway accepts.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}
LOCATION_HEADER: dict[str, Any] = {
    "Location": {"description": "Where the resource is", "schema": {"type": "string"}}
}


def answers(
    ok: Mapping[int, tuple[str, type[BaseModel]]],
    *errors: int | tuple[int, str],
    headers: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int, OpenAPIResponse]:
    """The `responses=` of a route: its successes (description, model), its errors (a status,
    or a status with a description of its own), plus 401, 403 and 429."""
    documented: dict[int, OpenAPIResponse] = {}
    for status, (description, model) in ok.items():
        documented[status] = {
            "description": description,
            "content": {"application/json": {"model": model}},
        }
    for error in (*errors, *ALWAYS):
        status, meaning = error if isinstance(error, tuple) else (error, ERROR_MEANINGS[error])
        documented[status] = {
            "description": meaning,
            "content": {"application/json": {"model": ErrorBody}},
        }
    documented[429]["headers"] = {
        "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
    }
    for status, extra in (headers or {}).items():
        documented[status]["headers"] = {**documented[status].get("headers", {}), **extra}
    return documented


def served_document(app: APIGatewayRestResolver, server_url: str) -> str:
    """The document as this deployment serves it: `server_url` is where its routes are."""
    document = dict(_document(app))
    document["servers"] = [{"url": server_url, "description": "This deployment"}]
    return json.dumps(document)


@cache
def _document(app: APIGatewayRestResolver) -> dict[str, Any]:
    schema = app.get_openapi_schema(
        title=API_TITLE,
        version=API_VERSION,
        description=API_DESCRIPTION,
        security_schemes={
            BEARER_SCHEME: HTTPBearer(
                bearerFormat="JWT", description="A token with claims sub, org and role."
            )
        },
        security=[{BEARER_SCHEME: []}],
        tags=list(TAGS),
    )
    document: dict[str, Any] = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    _drop_framework_validation_answers(document)
    return document


def _drop_framework_validation_answers(document: dict[str, Any]) -> None:
    """Powertools adds a 422 in FastAPI's shape to every operation; ours are declared above."""
    framework_error = "#/components/schemas/HTTPValidationError"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status, response in list(responses.items()):
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") == framework_error:
                    del responses[status]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)


def server_url_of(request_context: Mapping[str, Any], path: str) -> str:
    """Where this deployment's routes are, relative to the document's host: the stage (`/Prod`)
    or a custom domain's base path, read from the path API Gateway saw; `/` without one."""
    seen = str(request_context.get("path") or path)
    prefix = seen[: -len(path)] if path and seen.endswith(path) else ""
    return prefix or "/"
