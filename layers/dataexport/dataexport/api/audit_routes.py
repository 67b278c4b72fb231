"""Routes of /v1/audit-events: the audit trail (admins: their tenant; operators: any tenant)."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from dataexport import components
from dataexport.adapters.audit_store import AuditTrail
from dataexport.api.exports_routes import current_caller
from dataexport.api.openapi_document import answers
from dataexport.api.page_cursors import opened_cursor, page_response
from dataexport.api.response_models import AuditChainReport, AuditPage, model_response
from dataexport.audit import AuditEvent
from dataexport.config import AuditTableConfig, cached_config
from dataexport.filters import UtcTimestamp
from dataexport.services import audit_events
from dataexport.services.audit_events import AuditQuery

router = Router()  # type: ignore[no-untyped-call]

OrgId = Annotated[
    str | None, Query(min_length=1, max_length=256, description="Tenant (operators: required)")
]


@cache
def audit_trail() -> AuditTrail:
    return components.audit_trail(cached_config(AuditTableConfig))


def event_view(event: AuditEvent) -> dict[str, Any]:
    """An event exactly as it was hashed, plus its hash, so a reader can check it themselves."""
    return {**event.hashed_fields(), "hash": event.hash}


@router.get(
    "/v1/audit-events",
    tags=["Audit"],
    summary="The audit trail (admins: their tenant; operators: any, with org)",
    responses=answers({200: ("A page of events, oldest first", AuditPage)}, 400),
)
def list_audit_events(
    *,
    org: OrgId = None,
    type: Annotated[
        list[str] | None,
        Query(description="Event types, repeated or comma-separated (e.g. DATA_EXPORT)"),
    ] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    start: Annotated[
        UtcTimestamp | None, Query(alias="from", description="ISO 8601, inclusive")
    ] = None,
    end: Annotated[
        UtcTimestamp | None, Query(alias="to", description="ISO 8601, exclusive")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response[str]:
    caller = current_caller()
    scope = ("audit-events", caller.org_id, caller.user_id, org or "")
    query = AuditQuery(
        org=org,
        types=tuple(type or ()),
        actor_id=actor,
        start=start,
        end=end,
        limit=limit,
        cursor=opened_cursor(cursor, scope),
    )
    page = audit_events.list_audit_events(caller, query, audit_trail())
    items = [event_view(event) for event in page.events]
    return page_response(AuditPage, items, page.next_cursor, scope)


@router.get(
    "/v1/audit-events/verify",
    tags=["Audit"],
    summary="Check that a tenant's audit chain is whole",
    responses=answers({200: ("What the check found", AuditChainReport)}, 400),
)
def verify_audit_chain(org: OrgId = None) -> Response[str]:
    report = audit_events.verify_audit_chain(current_caller(), org, audit_trail())
    return model_response(200, AuditChainReport, report.model_dump(mode="json"))
