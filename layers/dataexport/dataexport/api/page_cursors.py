"""The paging cursors of every listing route, sealed on the way out and opened on the way in.

The key is derived from the deployment's webhook signing secret (WebhookSigningSecret), which
the API already reads: no new secret to provision or rotate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel

from dataexport import components
from dataexport.api.response_models import model_response
from dataexport.config import WebhookSecretConfig, cached_config
from dataexport.cursor_seal import CursorSeal


def _seal() -> CursorSeal:
    # The secret is cached with a TTL where it is read; deriving the key is one HMAC.
    secret = components.webhook_signing_secret(cached_config(WebhookSecretConfig))
    return CursorSeal.from_deployment_secret(secret)


def sealed_cursor(cursor: str | None, scope: Sequence[str]) -> str | None:
    """The next page's cursor as the client gets it; `scope` names the listing and caller."""
    return _seal().seal(cursor, scope)


def opened_cursor(cursor: str | None, scope: Sequence[str]) -> str | None:
    """The store's cursor inside a client's; a 400 on `cursor` if it was not made for `scope`."""
    return _seal().open(cursor, scope)


def page_response(
    model: type[BaseModel],
    items: Sequence[Mapping[str, Any]],
    next_cursor: str | None,
    scope: Sequence[str],
) -> Response[str]:
    """A 200 page of `items` as `model` documents it, its next cursor sealed for `scope`."""
    return model_response(
        200, model, {"items": list(items), "next_cursor": sealed_cursor(next_cursor, scope)}
    )
