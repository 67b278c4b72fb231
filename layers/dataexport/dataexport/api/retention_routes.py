"""Routes of /v1/retention-policies: a tenant's per-dataset retention (admins)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from dataexport import components
from dataexport.api.exports_routes import request_origin, tenant_user
from dataexport.config import ApiConfig, cached_config
from dataexport.retention import RetentionPoliciesInput, TenantRetention
from dataexport.services import retention
from dataexport.services.retention import PolicyServices

router = Router()  # type: ignore[no-untyped-call]


@cache
def policy_services() -> PolicyServices:
    config = cached_config(ApiConfig)
    return PolicyServices(
        retention=components.retention_policies(config),
        catalog=components.catalog(config),
        audit=components.audit_trail(config),
    )


def policies_view(tenant: TenantRetention) -> dict[str, Any]:
    return {
        "default_retention_seconds": int(tenant.default.total_seconds()),
        "policies": [
            {"dataset": dataset, "retention_days": days}
            for dataset, days in sorted(tenant.days_by_dataset.items())
        ],
    }


def _json(body: Any) -> Response[str]:
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(body)
    )


@router.get("/v1/retention-policies")
def get_retention_policies() -> Response[str]:
    return _json(policies_view(retention.get_retention_policies(tenant_user(), policy_services())))


@router.put("/v1/retention-policies")
def put_retention_policies(body: RetentionPoliciesInput) -> Response[str]:
    tenant = retention.put_retention_policies(
        tenant_user(), body, policy_services(), request_origin()
    )
    return _json(policies_view(tenant))
