"""Who may read which tenant's audit trail, and how the query is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dataexport.audit import AuditEventType
from dataexport.errors import InvalidDateRange, InvalidRequest, PermissionDenied
from dataexport.identity import Caller, Role
from dataexport.services.audit_events import audited_tenant, parse_event_types, time_window


def caller(role: Role, org_id: str = "org_acme") -> Caller:
    return Caller(user_id="u1", org_id=org_id, role=role)


def test_an_admin_reads_their_own_tenant_named_or_not() -> None:
    assert audited_tenant(caller(Role.ADMIN), None) == "org_acme"
    assert audited_tenant(caller(Role.ADMIN), "org_acme") == "org_acme"


def test_an_admin_may_not_name_another_tenant() -> None:
    with pytest.raises(PermissionDenied):
        audited_tenant(caller(Role.ADMIN), "org_globex")


@pytest.mark.parametrize("org", [None, "org_acme", "org_globex"])
def test_a_member_reads_no_trail(org: str | None) -> None:
    with pytest.raises(PermissionDenied):
        audited_tenant(caller(Role.MEMBER), org)


def test_an_operator_reads_any_tenant_but_must_name_it() -> None:
    assert audited_tenant(caller(Role.OPERATOR, "platform"), "org_globex") == "org_globex"
    with pytest.raises(InvalidRequest) as missing:
        audited_tenant(caller(Role.OPERATOR, "platform"), None)
    assert missing.value.field == "org"


def test_types_may_be_repeated_or_comma_separated() -> None:
    assert parse_event_types(["DATA_EXPORT,data_deleted", " BACKUP_FAILED "]) == {
        AuditEventType.DATA_EXPORT,
        AuditEventType.DATA_DELETED,
        AuditEventType.BACKUP_FAILED,
    }
    assert parse_event_types([]) == frozenset()


def test_unknown_types_are_named() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_event_types(["DATA_EXPORT,DROP_TABLE"])
    assert refused.value.field == "type" and "DROP_TABLE" in refused.value.message


def test_the_window_is_utc_and_from_must_precede_to() -> None:
    plus_two = timezone(timedelta(hours=2))
    start, end = time_window(datetime(2026, 1, 1, 2, tzinfo=plus_two), datetime(2026, 1, 2))
    assert start == datetime(2026, 1, 1, tzinfo=UTC)
    assert end == datetime(2026, 1, 2, tzinfo=UTC)
    for later, earlier in ((end, start), (start, start)):
        with pytest.raises(InvalidDateRange):
            time_window(later, earlier)
    assert time_window(None, end) == (None, end)
