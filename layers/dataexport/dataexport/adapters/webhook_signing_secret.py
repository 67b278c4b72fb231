"""The deployment's webhook signing secret (WebhookSigningSecret), from Secrets Manager.

Tenants' keys are derived from it (webhook_signature.tenant_signing_key); it is cached a few
minutes per process and never logged.
"""

from __future__ import annotations

from dataexport.adapters.aws_clients import secret_string

SECRET_CACHE_SECONDS = 300


def read_webhook_signing_secret(secret_arn: str) -> str:
    return secret_string(secret_arn, max_age=SECRET_CACHE_SECONDS)
