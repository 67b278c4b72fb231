"""Tenants' webhook signing keys, as their users may read them to verify deliveries."""

from __future__ import annotations

from dataexport.identity import Caller
from dataexport.services.exports import require_export_permission
from dataexport.webhook_signature import tenant_signing_key


def tenant_webhook_key(caller: Caller, deployment_secret: str) -> str:
    """The caller's tenant's key (users who may create exports, and so webhooks, only)."""
    require_export_permission(caller)
    return tenant_signing_key(deployment_secret, caller.org_id)
