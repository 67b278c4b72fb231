"""The audit chain: how an event is sealed, and how each kind of tampering is reported."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from dataexport.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditEventType,
    ChainVerifier,
    ProblemKind,
    check_detail,
    seal_event,
    verify_chain,
)
from dataexport.identity import Role

START = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_chain(length: int, org_id: str = "org_acme") -> list[AuditEvent]:
    events: list[AuditEvent] = []
    for index in range(length):
        events.append(
            seal_event(
                events[-1] if events else None,
                AuditEventType.DATA_EXPORT,
                org_id=org_id,
                actor_id=f"usr_{index % 3}",
                actor_role="member",
                at=START + timedelta(seconds=index),
                target_type="export",
                target_id=f"exp_{index:026d}",
                source_ip="203.0.113.7",
                request_id=f"req-{index}",
                detail={"dataset": "usage_logs", "format": "csv", "rows": index},
            )
        )
    return events


def tampered(event: AuditEvent, **changes: object) -> AuditEvent:
    """The event with fields changed and its stored hash left as it was."""
    return AuditEvent.model_validate({**event.model_dump(), **changes})


# ---------------------------------------------------------------------------- sealing


def test_the_hash_is_sha256_of_sorted_compact_json_of_every_other_field() -> None:
    (event,) = make_chain(1)
    expected_json = json.dumps(
        {
            "actor_id": "usr_0",
            "actor_role": "member",
            "at": "2026-03-01T12:00:00.123456Z",
            "detail": {"dataset": "usage_logs", "format": "csv", "rows": 0},
            "event_id": event.event_id,
            "org_id": "org_acme",
            "prev_hash": GENESIS_HASH,
            "request_id": "req-0",
            "seq": 1,
            "source_ip": "203.0.113.7",
            "target_id": "exp_" + "0" * 26,
            "target_type": "export",
            "type": "DATA_EXPORT",
        },
        separators=(",", ":"),
    )
    assert event.hash == hashlib.sha256(expected_json.encode()).hexdigest()


def test_a_tenants_first_event_follows_64_zeros_and_each_next_one_its_predecessor() -> None:
    events = make_chain(3)
    assert [event.seq for event in events] == [1, 2, 3]
    assert events[0].prev_hash == "0" * 64
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert len({event.event_id for event in events}) == 3


def test_event_times_are_kept_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    event = seal_event(
        None,
        AuditEventType.DATA_DELETED,
        org_id="org_acme",
        actor_id="usr_1",
        actor_role="admin",
        at=datetime(2026, 3, 1, 13, 0, tzinfo=berlin),
    )
    assert event.at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert event.hashed_fields()["at"] == "2026-03-01T12:00:00.000000Z"


def test_an_event_never_follows_another_tenants_event() -> None:
    (other,) = make_chain(1, org_id="org_globex")
    with pytest.raises(ValueError, match="own tenant"):
        seal_event(
            other,
            AuditEventType.DATA_EXPORT,
            org_id="org_acme",
            actor_id="usr_1",
            actor_role="member",
            at=START,
        )


def test_naive_times_are_refused() -> None:
    (event,) = make_chain(1)
    with pytest.raises(ValidationError):
        AuditEvent.model_validate({**event.model_dump(), "at": datetime(2026, 1, 1)})


@pytest.mark.parametrize(
    "detail",
    [
        {"download_url": "x"},
        {"token": "x"},
        {"where": "https://bucket.s3.amazonaws.com/exports/a.csv?X-Amz-Signature=1"},
        {"who": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig"},
        {"rows": [{"id": 1}]},
        {"note": "x" * 300},
        {"Bad-Key": 1},
        {f"k{index}": index for index in range(17)},
    ],
)
def test_detail_refuses_urls_tokens_row_data_and_anything_large(detail: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="detail"):
        check_detail(detail)


def test_detail_keeps_small_metadata() -> None:
    detail = {"dataset": "usage_logs", "rows": 12, "gzip": True, "fields": ["a", "b"], "x": None}
    assert check_detail(detail) == detail


# ---------------------------------------------------------------------------- verification


def test_an_intact_chain_is_ok_and_reports_its_head() -> None:
    events = make_chain(5)
    report = verify_chain(events)
    assert report.ok and report.problem is None
    assert (report.count, report.head_seq, report.head_hash) == (5, 5, events[-1].hash)


def test_an_empty_chain_is_ok() -> None:
    report = verify_chain([])
    assert report.ok and report.count == 0 and report.head_seq is None


@pytest.mark.parametrize(
    "change",
    [
        {"actor_id": "usr_someone_else"},
        {"detail": {"dataset": "invoices", "format": "csv", "rows": 2}},
        {"type": AuditEventType.DATA_DELETED},
        {"at": START + timedelta(days=1)},
        {"source_ip": None},
    ],
)
def test_a_changed_event_is_reported_at_its_seq(change: dict[str, object]) -> None:
    events = make_chain(5)
    events[2] = tampered(events[2], **change)
    report = verify_chain(events)
    assert not report.ok and report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, ProblemKind.CHANGED)
    assert report.count == 5


def test_a_changed_and_resealed_event_breaks_the_link_to_the_next() -> None:
    events = make_chain(5)
    forged = tampered(events[2], actor_id="usr_someone_else")
    events[2] = forged.model_copy(update={"hash": forged.computed_hash()})
    report = verify_chain(events)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (4, ProblemKind.REMOVED)


def test_a_removed_event_is_a_gap_at_its_seq() -> None:
    events = make_chain(6)
    del events[3]
    report = verify_chain(events)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (4, ProblemKind.REMOVED)
    assert report.count == 5


def test_removing_the_first_event_is_reported() -> None:
    report = verify_chain(make_chain(3)[1:])
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (1, ProblemKind.REMOVED)


def test_a_removed_event_with_the_rest_renumbered_and_resealed_is_reported() -> None:
    events = make_chain(5)
    del events[1]
    renumbered = [events[0]]
    for event in events[1:]:
        moved = event.model_copy(update={"seq": event.seq - 1})
        renumbered.append(moved.model_copy(update={"hash": moved.computed_hash()}))
    report = verify_chain(renumbered)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, ProblemKind.REMOVED)


def test_two_swapped_events_are_reported_as_reordered() -> None:
    """In a store keyed by seq, a swap exchanges the contents of two seqs."""
    events = make_chain(6)
    second, fifth = events[1], events[4]
    events[1] = fifth.model_copy(update={"seq": 2})
    events[4] = second.model_copy(update={"seq": 5})
    report = verify_chain(events)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, ProblemKind.REORDERED)
    assert "Event 5" in report.problem.message


def test_adjacent_swapped_events_are_reported_as_reordered() -> None:
    events = make_chain(4)
    events[2], events[3] = (
        events[3].model_copy(update={"seq": 3}),
        events[2].model_copy(update={"seq": 4}),
    )
    report = verify_chain(events)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, ProblemKind.REORDERED)


def test_events_given_out_of_seq_order_are_reordered() -> None:
    events = make_chain(5)
    events[2], events[3] = events[3], events[2]
    report = verify_chain(events)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, ProblemKind.REORDERED)


def test_a_repeated_event_is_reordered() -> None:
    events = make_chain(3)
    report = verify_chain([*events, events[1]])
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (4, ProblemKind.REORDERED)


def test_only_the_first_problem_is_reported() -> None:
    events = make_chain(6)
    events[4] = tampered(events[4], actor_id="later")
    events[1] = tampered(events[1], actor_id="earlier")
    report = verify_chain(events)
    assert report.problem is not None and report.problem.seq == 2


def test_an_unreadable_item_counts_as_changed() -> None:
    events = make_chain(3)
    verifier = ChainVerifier()
    verifier.add(events[0])
    verifier.add_unreadable(2)
    verifier.add(events[2])
    report = verifier.report()
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, ProblemKind.CHANGED)
    assert report.count == 3


def test_a_callers_role_is_recorded_as_its_name() -> None:
    event = seal_event(
        None,
        AuditEventType.DATA_EXPORTED,
        org_id="org_acme",
        actor_id="usr_1",
        actor_role=Role.ADMIN,
        at=START,
    )
    assert event.actor_role == "admin" and type(event.actor_role) is str
    assert event.computed_hash() == event.hash
