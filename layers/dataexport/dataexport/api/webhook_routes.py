"""GET /v1/webhook-signing-secret: the key a tenant's webhook receivers verify signatures with."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from dataexport import components
from dataexport.api.exports_routes import tenant_user
from dataexport.api.openapi_document import answers
from dataexport.api.response_models import WebhookSigningSecretView, model_response
from dataexport.config import ApiConfig, cached_config
from dataexport.services.webhook_keys import tenant_webhook_key
from dataexport.webhook_signature import (
    DEFAULT_TOLERANCE_SECONDS,
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
)

router = Router()  # type: ignore[no-untyped-call]


@router.get(
    "/v1/webhook-signing-secret",
    tags=["Webhooks"],
    summary="The key webhook receivers verify signatures with",
    responses=answers(
        {200: ("The tenant's key and how deliveries are signed", WebhookSigningSecretView)}
    ),
)
def webhook_signing_secret() -> Response[str]:
    """The caller's tenant's key and how deliveries are signed with it."""
    key = tenant_webhook_key(
        tenant_user(), components.webhook_signing_secret(cached_config(ApiConfig))
    )
    body = {
        "secret": key,
        "algorithm": "HMAC-SHA256",
        "signature_header": SIGNATURE_HEADER,
        "signed_content": "<t>.<body>",
        "delivery_id_header": DELIVERY_ID_HEADER,
        "tolerance_seconds": DEFAULT_TOLERANCE_SECONDS,
    }
    response = model_response(200, WebhookSigningSecretView, body)
    response.headers["Cache-Control"] = "no-store"
    return response
