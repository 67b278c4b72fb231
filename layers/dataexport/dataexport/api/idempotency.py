"""`Idempotency-Key` on POST /v1/exports, with Powertools idempotency over DynamoDB.

A repeated key with the same body answers with the same job for 24 hours; the same key with a
different body is refused; a repeat while the first is still being handled gets 409 and may
retry. The key is scoped to the caller, so two users can never collide.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from dataexport.config import ApiConfig, cached_config
from dataexport.errors import Conflict, IdempotencyKeyReused
from dataexport.export_job import utc_now
from dataexport.export_request import ExportRequest
from dataexport.identity import Caller, RequestOrigin
from dataexport.services import exports
from dataexport.services.exports import CreatedExport, ExportServices
from dataexport.store_keys import idempotency_key

IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600


@cache
def idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS,
    )


@cache
def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=cached_config(ApiConfig).idempotency_table_name)


def idempotent_create(
    caller: Caller,
    request: ExportRequest,
    key: str,
    services: ExportServices,
    origin: RequestOrigin,
) -> CreatedExport:
    """Create once per (caller, key); later calls answer with that job as it is now."""
    created_here: list[CreatedExport] = []

    def create(idempotent_request: dict[str, Any]) -> dict[str, Any]:
        created = exports.create_export(caller, request, services, origin)
        created_here.append(created)
        return {"job_id": created.job.id}

    create_once = idempotent_function(
        create,
        data_keyword_argument="idempotent_request",
        persistence_store=_persistence(),
        config=idempotency_config(),
        key_prefix="create_export",
    )

    payload = {
        "key": idempotency_key(caller.org_id, caller.user_id, key),
        "body": request.model_dump(mode="json"),
    }
    try:
        first_answer = create_once(idempotent_request=payload)
    except IdempotencyValidationError:
        raise IdempotencyKeyReused from None
    except IdempotencyAlreadyInProgressError:
        conflict = Conflict("A request with this Idempotency-Key is still being handled.")
        conflict.headers = {"Retry-After": "1"}
        raise conflict from None
    if created_here:
        return created_here[0]
    job = exports.get_export(caller, str(first_answer["job_id"]), services)
    limit = services.rate_limit_for(caller.org_id)
    rate = services.control.rate_state(caller.org_id, caller.user_id, limit, utc_now())
    return CreatedExport(job, created=False, rate=rate)
