"""Reading the audit trail: who may read which tenant's chain, its pages, and its verification.

Admins read their own tenant. Operators read any tenant, and must name it. Members read none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from dataexport.adapters.audit_store import AuditPage, AuditTrail
from dataexport.audit import AuditEventType, ChainReport
from dataexport.errors import InvalidDateRange, InvalidRequest, PermissionDenied
from dataexport.identity import Caller, Role


@dataclass(frozen=True)
class AuditQuery:
    """A page request of GET /v1/audit-events, already parsed."""

    org: str | None = None
    types: tuple[str, ...] = ()  # as given: repeated and/or comma-separated names
    actor_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 50
    cursor: str | None = None


def audited_tenant(caller: Caller, requested_org: str | None) -> str:
    """The tenant whose trail `caller` reads: PermissionDenied for members and other tenants."""
    if caller.role is Role.OPERATOR:
        if not requested_org:
            raise InvalidRequest("org", "Operators name the tenant to read with ?org=.")
        return requested_org
    if caller.role is not Role.ADMIN:
        raise PermissionDenied("Only admins and operators may read the audit trail.")
    if requested_org and requested_org != caller.org_id:
        raise PermissionDenied("Admins may read only their own tenant's audit trail.")
    return caller.org_id


def parse_event_types(values: Iterable[str]) -> frozenset[AuditEventType]:
    """Event types from repeated and/or comma-separated values; unknown ones are a 400."""
    names = [part.strip().upper() for value in values for part in value.split(",")]
    known = {member.value for member in AuditEventType}
    unknown = sorted({name for name in names if name and name not in known})
    if unknown:
        raise InvalidRequest(
            "type", f"Unknown event type(s): {', '.join(unknown)}.", {"allowed": sorted(known)}
        )
    return frozenset(AuditEventType(name) for name in names if name)


def time_window(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """`from` and `to` in UTC (a time without an offset is UTC); `from` must be before `to`."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start >= end:
        raise InvalidDateRange("from", "'from' must be earlier than 'to'.")
    return start, end


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def list_audit_events(caller: Caller, query: AuditQuery, trail: AuditTrail) -> AuditPage:
    """A page of one tenant's events, newest first."""
    org_id = audited_tenant(caller, query.org)
    start, end = time_window(query.start, query.end)
    return trail.events(
        org_id,
        types=parse_event_types(query.types),
        actor_id=query.actor_id,
        start=start,
        end=end,
        limit=query.limit,
        cursor=query.cursor,
    )


def verify_audit_chain(caller: Caller, org: str | None, trail: AuditTrail) -> ChainReport:
    """Verify one tenant's whole chain: the check `dataexport-local audit verify` runs."""
    return trail.verify(audited_tenant(caller, org))
