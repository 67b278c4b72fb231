"""Webhook signatures: a key per tenant, HMAC-SHA256 over the timestamp and the body.

Each tenant's key is derived from the deployment's secret (WebhookSigningSecret) and the tenant
id, so a tenant knows its own key (GET /v1/webhook-signing-secret) and nothing that would let it
sign another tenant's webhooks. A request carries

    DataExport-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>

The timestamp is signed with the body, so a receiver that refuses old timestamps is safe from
replays; the delivery id header stays the same across retries, for de-duplication.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "DataExport-Signature"
DELIVERY_ID_HEADER: Final = "DataExport-Delivery-Id"
KEY_PREFIX: Final = "whsec_"
# Receivers should refuse signatures older than this (and the verifier below does).
DEFAULT_TOLERANCE_SECONDS: Final = 300
# Keeps tenant keys apart from any other use of the deployment secret.
_DERIVATION_LABEL: Final = b"dataexport webhook signing key v1\x00"


def tenant_signing_key(deployment_secret: str, org_id: str) -> str:
    """The tenant's webhook key: `whsec_` and the hex HMAC-SHA256 of the tenant id under the
    deployment secret. Receivers use the whole string (its UTF-8 bytes) as the HMAC key."""
    digest = hmac.new(
        deployment_secret.encode(), _DERIVATION_LABEL + org_id.encode(), hashlib.sha256
    ).hexdigest()
    return KEY_PREFIX + digest


def signature_header(key: str, timestamp: int, body: bytes) -> str:
    """The `DataExport-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_signature(key, timestamp, body)}"


def verify_signature(
    key: str, header: str, body: bytes, now: int, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """Whether `header` signs `body` with `key` at a time within `tolerance` of `now`: what
    a receiver does (README, Delivery)."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields.get("t", [""])[0])
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = _signature(key, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def _signature(key: str, timestamp: int, body: bytes) -> str:
    return hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
