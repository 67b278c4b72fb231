"""The audit trail against moto's DynamoDB, with the AuditTable created from template.yaml.

Appends race for the next seq and must all land, in one unbroken chain; tampering done directly
on the stored items (change, delete, swap) is what the verification must find. Last, the
audit_events dataset's reader streams the same table through a real format writer.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataexport.adapters.audit_events_reader import AuditEventsReader
from dataexport.adapters.audit_store import AuditTrail
from dataexport.audit import AuditEvent, AuditEventType, ProblemKind, verify_chain
from dataexport.catalog.loader import load_catalog
from dataexport.catalog.model import FilterOperator
from dataexport.errors import InvalidRequest
from dataexport.filters import FilterClause, TimeWindow
from dataexport.formats.ndjson_writer import NdjsonWriter
from dataexport.formats.writer import FormatOptions, OutputColumn
from dataexport.query_builder import RowScope
from dataexport_local.aws import LocalAws
from dataexport_local.template import REGION
from tests.unit.format_samples import BytesSink

THREADS = 30


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAws]:
    # The template's resources in moto; no database is needed for the audit table.
    with LocalAws(parameter_secrets={"DatabaseSecretArn": "{}"}) as aws:
        yield aws


@pytest.fixture(scope="module")
def table_name(local_aws: LocalAws) -> str:
    return next(t.name for t in local_aws.template.tables if t.logical_id == "AuditTable")


@pytest.fixture
def trail(table_name: str) -> AuditTrail:
    return AuditTrail(table_name, REGION)


@pytest.fixture
def org_id() -> str:
    return f"org_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def dynamodb(local_aws: LocalAws) -> Any:
    return local_aws.client("dynamodb")


def record(trail: AuditTrail, org_id: str, index: int, **changes: Any) -> AuditEvent:
    arguments: dict[str, Any] = {
        "org_id": org_id,
        "actor_id": f"usr_{index % 2}",
        "actor_role": "member",
        "target_type": "export",
        "target_id": f"exp_{index}",
        "source_ip": "198.51.100.4",
        "request_id": f"req-{index}",
        "detail": {"dataset": "usage_logs", "rows": index},
    }
    arguments.update(changes)
    event_type = arguments.pop("type", AuditEventType.DATA_EXPORT)
    return trail.record(event_type, **arguments)


def test_the_table_is_keyed_by_tenant_and_seq_and_lists_tenants(
    dynamodb: Any, table_name: str
) -> None:
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "org_id", "KeyType": "HASH"},
        {"AttributeName": "seq", "KeyType": "RANGE"},
    ]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["tenants-index"]


class PauseLog:
    def __init__(self) -> None:
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        time.sleep(seconds)


def test_concurrent_appends_get_every_seq_once_in_one_valid_chain(
    table_name: str, org_id: str
) -> None:
    # Given 30 writers released at the same moment on one tenant
    pause_log = PauseLog()
    trail = AuditTrail(table_name, REGION, pause=pause_log)
    start = threading.Barrier(THREADS)

    def append(index: int) -> AuditEvent:
        start.wait()
        return record(trail, org_id, index)

    # When they all record an event
    with ThreadPoolExecutor(THREADS) as pool:
        events = list(pool.map(append, range(THREADS)))
    # (the race is real: some appends lost it and tried again)
    assert pause_log.pauses, "no append ever lost the race for a seq"

    # Then each got its own seq, 1..30, and the stored chain verifies
    assert sorted(event.seq for event in events) == list(range(1, THREADS + 1))
    stored = list(trail.chain(org_id))
    assert [event.seq for event in stored] == list(range(1, THREADS + 1))
    assert {event.event_id for event in stored} == {event.event_id for event in events}
    report = trail.verify(org_id)
    assert report.ok, report.problem
    assert (report.count, report.head_seq, report.org_id) == (THREADS, THREADS, org_id)


def test_a_recorded_event_reads_back_exactly_as_it_was_hashed(
    trail: AuditTrail, org_id: str
) -> None:
    event = record(trail, org_id, 7, detail={"dataset": "invoices", "gzip": True, "rows": 10**15})
    (stored,) = trail.chain(org_id)
    assert stored == event
    assert stored.computed_hash() == stored.hash
    assert trail.head(org_id) == event


def test_tenants_have_separate_chains(trail: AuditTrail, org_id: str) -> None:
    other = f"{org_id}_other"
    record(trail, org_id, 1)
    first_other = record(trail, other, 1)
    record(trail, org_id, 2)
    assert first_other.seq == 1 and first_other.prev_hash == "0" * 64
    assert [e.seq for e in trail.chain(org_id)] == [1, 2]
    assert {org_id, other} <= set(trail.tenants(limit=1000).org_ids)


def test_a_changed_item_is_reported_at_its_seq(
    trail: AuditTrail, org_id: str, dynamodb: Any, table_name: str
) -> None:
    for index in range(5):
        record(trail, org_id, index)
    dynamodb.update_item(
        TableName=table_name,
        Key={"org_id": {"S": org_id}, "seq": {"N": "3"}},
        UpdateExpression="SET actor_id = :who",
        ExpressionAttributeValues={":who": {"S": "usr_innocent"}},
    )
    report = trail.verify(org_id)
    assert report.problem is not None and not report.ok
    assert (report.problem.seq, report.problem.kind) == (3, ProblemKind.CHANGED)


def test_an_item_changed_beyond_reading_is_reported_as_changed(
    trail: AuditTrail, org_id: str, dynamodb: Any, table_name: str
) -> None:
    for index in range(3):
        record(trail, org_id, index)
    dynamodb.update_item(
        TableName=table_name,
        Key={"org_id": {"S": org_id}, "seq": {"N": "2"}},
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "type"},
        ExpressionAttributeValues={":t": {"S": "NOTHING_HAPPENED"}},
    )
    report = trail.verify(org_id)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, ProblemKind.CHANGED)
    assert report.count == 3


def test_a_deleted_item_is_reported_as_removed(
    trail: AuditTrail, org_id: str, dynamodb: Any, table_name: str
) -> None:
    for index in range(5):
        record(trail, org_id, index)
    dynamodb.delete_item(TableName=table_name, Key={"org_id": {"S": org_id}, "seq": {"N": "4"}})
    report = trail.verify(org_id)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (4, ProblemKind.REMOVED)


def test_two_swapped_items_are_reported_as_reordered(
    trail: AuditTrail, org_id: str, dynamodb: Any, table_name: str
) -> None:
    for index in range(6):
        record(trail, org_id, index)
    swap_items(dynamodb, table_name, org_id, 2, 5)
    report = trail.verify(org_id)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, ProblemKind.REORDERED)


def swap_items(dynamodb: Any, table_name: str, org_id: str, first: int, second: int) -> None:
    """Exchange the contents of two seqs, as someone with write access to the table could."""

    def get(seq: int) -> dict[str, Any]:
        key = {"org_id": {"S": org_id}, "seq": {"N": str(seq)}}
        item: dict[str, Any] = dynamodb.get_item(TableName=table_name, Key=key)["Item"]
        return item

    a, b = get(first), get(second)
    a["seq"], b["seq"] = b["seq"], a["seq"]
    for item in (a, b):
        item.pop("chain_start", None)
        dynamodb.put_item(TableName=table_name, Item=item)


def test_pages_are_newest_first_with_filters_and_a_cursor(table_name: str, org_id: str) -> None:
    moments = iter(datetime(2026, 2, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(100))
    clocked = AuditTrail(table_name, REGION, clock=lambda: next(moments))
    for index in range(12):
        kind = AuditEventType.DATA_EXPORT if index % 3 else AuditEventType.DATA_DELETED
        record(clocked, org_id, index, type=kind)

    first = clocked.events(org_id, limit=5)
    assert [e.seq for e in first.events] == [12, 11, 10, 9, 8] and first.next_cursor
    second = clocked.events(org_id, limit=5, cursor=first.next_cursor)
    assert [e.seq for e in second.events] == [7, 6, 5, 4, 3]
    last = clocked.events(org_id, limit=5, cursor=second.next_cursor)
    assert [e.seq for e in last.events] == [2, 1] and last.next_cursor is None

    deleted = clocked.events(org_id, types=[AuditEventType.DATA_DELETED])
    assert [e.seq for e in deleted.events] == [10, 7, 4, 1]
    by_actor = clocked.events(org_id, actor_id="usr_1")
    assert {e.actor_id for e in by_actor.events} == {"usr_1"} and len(by_actor.events) == 6
    window = clocked.events(
        org_id,
        start=datetime(2026, 2, 1, 3, tzinfo=UTC),
        end=datetime(2026, 2, 1, 6, tzinfo=UTC),
    )
    assert [e.seq for e in window.events] == [6, 5, 4]
    filtered_pages = clocked.events(org_id, types=[AuditEventType.DATA_EXPORT], limit=3)
    assert len(filtered_pages.events) == 3 and filtered_pages.next_cursor


def test_a_cursor_of_another_tenant_is_refused(trail: AuditTrail, org_id: str) -> None:
    for index in range(3):
        record(trail, org_id, index)
    cursor = trail.events(org_id, limit=1).next_cursor
    assert cursor
    with pytest.raises(InvalidRequest) as refused:
        trail.events(f"{org_id}_other", cursor=cursor)
    assert refused.value.field == "cursor"
    with pytest.raises(InvalidRequest):
        trail.events(org_id, cursor="not-a-cursor")


def test_detail_that_must_never_be_recorded_is_refused_before_writing(
    trail: AuditTrail, org_id: str
) -> None:
    with pytest.raises(ValueError, match="detail"):
        record(trail, org_id, 1, detail={"download_url": "https://example.com/x"})
    assert trail.head(org_id) is None


# ---------------------------------------------------------------------------- audit_events dataset


def test_the_audit_events_dataset_streams_a_tenants_rows_in_seq_order(
    table_name: str, org_id: str
) -> None:
    # Given five events an hour apart, and another tenant's
    moments = iter(datetime(2026, 2, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(100))
    clocked = AuditTrail(table_name, REGION, clock=lambda: next(moments))
    kinds = [AuditEventType.DATA_EXPORT, AuditEventType.DATA_DELETED] * 3
    for index, kind in enumerate(kinds[:5]):
        record(clocked, org_id, index, type=kind)
    record(clocked, f"{org_id}_other", 0)
    dataset = load_catalog(None).get("audit_events")
    reader = AuditEventsReader(clocked)

    # When the admin's export reads DATA_EXPORT events from 01:00, in batches of two
    batches = list(
        reader.stream(
            dataset,
            ["seq", "type", "actor_id", "at", "detail"],
            RowScope(org_id),
            [FilterClause("type", FilterOperator.IN, ["DATA_EXPORT"])],
            TimeWindow(start=datetime(2026, 2, 1, 1, tzinfo=UTC)),
            batch_rows=2,
        )
    )

    # Then the rows come in seq order, fields in the order asked, values typed
    assert [len(batch) for batch in batches] == [2]
    assert batches[0] == [
        [
            3,
            "DATA_EXPORT",
            "usr_0",
            datetime(2026, 2, 1, 2, tzinfo=UTC),
            {"dataset": "usage_logs", "rows": 2},
        ],
        [
            5,
            "DATA_EXPORT",
            "usr_0",
            datetime(2026, 2, 1, 4, tzinfo=UTC),
            {"dataset": "usage_logs", "rows": 4},
        ],
    ]
    assert reader.count(dataset, RowScope(org_id), [], TimeWindow()) == 5


def test_an_exported_audit_file_can_be_verified_on_its_own(trail: AuditTrail, org_id: str) -> None:
    for index in range(4):
        record(trail, org_id, index)
    dataset = load_catalog(None).get("audit_events")
    fields = dataset.column_names
    rows = [
        row
        for batch in AuditEventsReader(trail).stream(
            dataset, fields, RowScope(org_id), [], TimeWindow()
        )
        for row in batch
    ]
    columns = [OutputColumn(c.name, c.label, c.type) for c in dataset.columns]
    sink = BytesSink()
    writer = NdjsonWriter(columns, FormatOptions(), sink)
    writer.open()
    writer.write_rows(rows)
    writer.close()

    exported = [json.loads(line) for line in sink.data.decode().splitlines()]
    assert verify_chain(AuditEvent.model_validate(line) for line in exported).ok


def test_the_reader_refuses_owner_scoped_reads_and_unknown_fields(
    trail: AuditTrail, org_id: str
) -> None:
    dataset = load_catalog(None).get("audit_events")
    reader = AuditEventsReader(trail)
    with pytest.raises(ValueError, match="whole tenants"):
        list(reader.stream(dataset, ["seq"], RowScope(org_id, "usr_1"), [], TimeWindow()))
    with pytest.raises(InvalidRequest) as unknown:
        list(reader.stream(dataset, ["seq", "password"], RowScope(org_id), [], TimeWindow()))
    assert unknown.value.field == "fields"
    with pytest.raises(InvalidRequest) as not_filterable:
        clause = FilterClause("source_ip", FilterOperator.EQ, "1.2.3.4")
        list(reader.stream(dataset, ["seq"], RowScope(org_id), [clause], TimeWindow()))
    assert not_filterable.value.field == "filters[0].field"
