"""GET /v1/audit-events and /verify over real HTTP: who reads which tenant, filters, paging,
and tampering found by the API and by `dataexport-local audit verify`."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from dataexport.adapters.audit_store import AuditTrail
from dataexport.audit import AuditEvent, AuditEventType
from dataexport_local.cli import main
from dataexport_local.runtime import LocalRuntime
from dataexport_local.template import REGION
from tests.e2e.http_client import ApiClient

ACME, GLOBEX = "org_acme", "org_globex"
# Refused requests are audited in the caller's own tenant: tests that provoke refusals act
# from this tenant so that acme's seeded chain stays exactly as the fixture wrote it.
INITECH = "org_initech"


@pytest.fixture(scope="module")
def audit_table(runtime: LocalRuntime) -> str:
    return next(t.name for t in runtime.template.tables if t.logical_id == "AuditTable")


@pytest.fixture(scope="module")
def trail(audit_table: str) -> AuditTrail:
    return AuditTrail(audit_table, REGION)


@pytest.fixture(scope="module")
def acme_events(trail: AuditTrail) -> list[AuditEvent]:
    """Given a history in two tenants: six events in acme, two in globex."""
    kinds = [
        ("alice", "member", AuditEventType.DATA_EXPORT),
        ("alice", "member", AuditEventType.DATA_EXPORTED),
        ("bob", "member", AuditEventType.RATE_LIMIT_EXCEEDED),
        ("carol", "admin", AuditEventType.DATA_DELETED),
        ("bob", "member", AuditEventType.DATA_EXPORT),
        ("alice", "member", AuditEventType.PERMISSION_DENIED),
    ]
    events = [
        trail.record(
            kind,
            org_id=ACME,
            actor_id=actor,
            actor_role=role,  # type: ignore[arg-type]
            target_type="export",
            target_id=f"exp_{index}",
            source_ip="192.0.2.10",
            request_id=f"req-{index}",
            detail={"dataset": "usage_logs"},
        )
        for index, (actor, role, kind) in enumerate(kinds)
    ]
    for _ in range(2):
        trail.record(
            AuditEventType.DATA_EXPORT, org_id=GLOBEX, actor_id="gina", actor_role="member"
        )
    return events


def client(runtime: LocalRuntime, sub: str, org: str, role: str) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(sub, org, role))


def items(answer: Any) -> list[dict[str, Any]]:
    assert answer.status == 200, answer.body
    found: list[dict[str, Any]] = answer.json()["items"]
    return found


def test_an_admin_reads_their_tenants_trail_newest_first(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    admin = client(runtime, "carol", ACME, "admin")
    listed = items(admin.call("GET", "/v1/audit-events"))
    assert [event["seq"] for event in listed] == [6, 5, 4, 3, 2, 1]
    assert {event["org_id"] for event in listed} == {ACME}
    newest = listed[0]
    assert newest["event_id"] == acme_events[-1].event_id
    assert (newest["type"], newest["actor_id"], newest["source_ip"], newest["request_id"]) == (
        "PERMISSION_DENIED",
        "alice",
        "192.0.2.10",
        "req-5",
    )


def test_a_reader_can_check_an_events_hash_from_the_answer_alone(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    admin = client(runtime, "carol", ACME, "admin")
    for event in items(admin.call("GET", "/v1/audit-events")):
        fields = {name: value for name, value in event.items() if name != "hash"}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode()).hexdigest() == event["hash"]


def test_an_admin_cannot_read_another_tenant(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    admin = client(runtime, "ivan", INITECH, "admin")
    for path in ("/v1/audit-events", "/v1/audit-events/verify"):
        answer = admin.call("GET", f"{path}?org={GLOBEX}")
        assert answer.status == 403, path
        assert answer.json()["error_code"] == "PERMISSION_DENIED"
    # Naming their own tenant is fine, and both refusals were themselves audited there.
    listed = items(admin.call("GET", f"/v1/audit-events?org={INITECH}"))
    refusals = [event for event in listed if event["type"] == "PERMISSION_DENIED"]
    assert len(refusals) == 2
    assert all(
        event["actor_id"] == "ivan" and event["target_type"] == "route" for event in refusals
    )
    assert admin.call("GET", "/v1/audit-events/verify").json()["ok"] is True


def test_members_may_not_read_the_trail(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    member = client(runtime, "irene", INITECH, "member")
    for path in ("/v1/audit-events", f"/v1/audit-events?org={INITECH}", "/v1/audit-events/verify"):
        answer = member.call("GET", path)
        assert answer.status == 403, path
        assert answer.json()["error_code"] == "PERMISSION_DENIED"


def test_without_a_token_the_trail_is_401(runtime: LocalRuntime) -> None:
    for path in ("/v1/audit-events", "/v1/audit-events/verify"):
        answer = ApiClient(runtime.api_url, None).call("GET", path)
        assert answer.status == 401 and answer.json()["error_code"] == "UNAUTHENTICATED"


def test_an_operator_reads_any_tenant_it_names(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    operator = client(runtime, "olga", "platform", "operator")
    assert [e["org_id"] for e in items(operator.call("GET", f"/v1/audit-events?org={GLOBEX}"))] == [
        GLOBEX,
        GLOBEX,
    ]
    acme_ids = {e["event_id"] for e in items(operator.call("GET", f"/v1/audit-events?org={ACME}"))}
    assert {event.event_id for event in acme_events} <= acme_ids
    unnamed = operator.call("GET", "/v1/audit-events")
    assert unnamed.status == 400 and unnamed.json()["detail"]["field"] == "org"


def test_filters_by_type_actor_and_time(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    admin = client(runtime, "carol", ACME, "admin")

    def seqs(**query: Any) -> list[int]:
        return [e["seq"] for e in items(admin.call("GET", f"/v1/audit-events?{urlencode(query)}"))]

    assert seqs(type="DATA_EXPORT") == [5, 1]
    assert seqs(type="DATA_EXPORT,RATE_LIMIT_EXCEEDED") == [5, 3, 1]
    repeated = admin.call("GET", "/v1/audit-events?type=DATA_DELETED&type=DATA_EXPORTED")
    assert [e["seq"] for e in items(repeated)] == [4, 2]
    assert seqs(actor="bob") == [5, 3]
    third, fifth = acme_events[2].hashed_fields()["at"], acme_events[4].hashed_fields()["at"]
    assert seqs(**{"from": third, "to": fifth}) == [4, 3]
    assert seqs(**{"from": fifth}) == [6, 5]


@pytest.mark.parametrize(
    ("query", "status", "code", "field"),
    [
        ("type=NOT_A_TYPE", 400, "VALIDATION_ERROR", "type"),
        ("from=2026-02-02T00:00:00Z&to=2026-02-01T00:00:00Z", 400, "INVALID_DATE_RANGE", "from"),
        ("from=2026-02-01T00:00:00Z&to=2026-02-01T00:00:00Z", 400, "INVALID_DATE_RANGE", "from"),
        ("from=yesterday", 400, "VALIDATION_ERROR", "from"),
        ("limit=0", 400, "VALIDATION_ERROR", "limit"),
        ("limit=201", 400, "VALIDATION_ERROR", "limit"),
        ("cursor=not-a-cursor", 400, "VALIDATION_ERROR", "cursor"),
    ],
)
def test_bad_queries_name_the_field(
    runtime: LocalRuntime, query: str, status: int, code: str, field: str
) -> None:
    answer = client(runtime, "carol", ACME, "admin").call("GET", f"/v1/audit-events?{query}")
    assert answer.status == status, answer.body
    assert answer.json()["error_code"] == code
    assert answer.json()["detail"]["field"] == field


def test_pages_follow_the_cursor_and_a_cursor_stays_in_its_tenant(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    admin = client(runtime, "carol", ACME, "admin")
    seen: list[int] = []
    path = "/v1/audit-events?limit=4"
    first = admin.call("GET", path).json()
    seen += [e["seq"] for e in first["items"]]
    assert first["next_cursor"]
    second = admin.call("GET", f"{path}&cursor={first['next_cursor']}").json()
    seen += [e["seq"] for e in second["items"]]
    assert seen == [6, 5, 4, 3, 2, 1] and second["next_cursor"] is None

    operator = client(runtime, "olga", "platform", "operator")
    stolen = operator.call("GET", f"/v1/audit-events?org={GLOBEX}&cursor={first['next_cursor']}")
    assert stolen.status == 400 and stolen.json()["detail"]["field"] == "cursor"


def test_verify_reports_an_intact_chain(
    runtime: LocalRuntime, acme_events: list[AuditEvent]
) -> None:
    admin = client(runtime, "carol", ACME, "admin")
    report = admin.call("GET", "/v1/audit-events/verify").json()
    assert report == {
        "org_id": ACME,
        "ok": True,
        "count": 6,
        "head_seq": 6,
        "head_hash": acme_events[-1].hash,
        "problem": None,
    }
    operator = client(runtime, "olga", "platform", "operator")
    assert operator.call("GET", f"/v1/audit-events/verify?org={GLOBEX}").json()["count"] == 2
    assert operator.call("GET", "/v1/audit-events/verify").status == 400


# ---------------------------------------------------------------------------- tampering


def record_chain(trail: AuditTrail, org_id: str, length: int) -> list[AuditEvent]:
    return [
        trail.record(
            AuditEventType.DATA_EXPORT,
            org_id=org_id,
            actor_id=f"usr_{index}",
            actor_role="member",
            detail={"rows": index},
        )
        for index in range(length)
    ]


def key(org_id: str, seq: int) -> dict[str, Any]:
    return {"org_id": {"S": org_id}, "seq": {"N": str(seq)}}


def verify_over_http(runtime: LocalRuntime, org_id: str) -> dict[str, Any]:
    operator = client(runtime, "olga", "platform", "operator")
    answer = operator.call("GET", f"/v1/audit-events/verify?org={org_id}")
    assert answer.status == 200, answer.body
    report: dict[str, Any] = answer.json()
    return report


def test_the_api_and_the_command_find_a_changed_event(
    runtime: LocalRuntime, trail: AuditTrail, audit_table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org_id = "org_changed"
    record_chain(trail, org_id, 4)
    assert main(["audit", "verify", "--org", org_id, "--api-url", runtime.api_url]) == 0
    assert "audit chain OK: 4 events" in capsys.readouterr().out

    runtime.boto3_client("dynamodb").update_item(
        TableName=audit_table,
        Key=key(org_id, 2),
        UpdateExpression="SET actor_id = :who",
        ExpressionAttributeValues={":who": {"S": "usr_innocent"}},
    )

    report = verify_over_http(runtime, org_id)
    assert report["ok"] is False
    assert (report["problem"]["seq"], report["problem"]["kind"]) == (2, "changed")
    assert main(["audit", "verify", "--org", org_id, "--api-url", runtime.api_url]) == 1
    assert "BROKEN at seq 2 (changed)" in capsys.readouterr().out


def test_the_api_and_the_command_find_a_removed_event(
    runtime: LocalRuntime, trail: AuditTrail, audit_table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org_id = "org_removed"
    record_chain(trail, org_id, 5)
    runtime.boto3_client("dynamodb").delete_item(TableName=audit_table, Key=key(org_id, 3))

    report = verify_over_http(runtime, org_id)
    assert (report["problem"]["seq"], report["problem"]["kind"]) == (3, "removed")
    assert main(["audit", "verify", "--org", org_id, "--api-url", runtime.api_url, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problem"]["seq"] == 3


def test_the_api_and_the_command_find_reordered_events(
    runtime: LocalRuntime, trail: AuditTrail, audit_table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org_id = "org_reordered"
    record_chain(trail, org_id, 5)
    dynamodb = runtime.boto3_client("dynamodb")
    second = dynamodb.get_item(TableName=audit_table, Key=key(org_id, 2))["Item"]
    fourth = dynamodb.get_item(TableName=audit_table, Key=key(org_id, 4))["Item"]
    second["seq"], fourth["seq"] = fourth["seq"], second["seq"]
    dynamodb.put_item(TableName=audit_table, Item=second)
    dynamodb.put_item(TableName=audit_table, Item=fourth)

    report = verify_over_http(runtime, org_id)
    assert (report["problem"]["seq"], report["problem"]["kind"]) == (2, "reordered")
    assert main(["audit", "verify", "--org", org_id, "--api-url", runtime.api_url]) == 1
    assert "BROKEN at seq 2 (reordered)" in capsys.readouterr().out
