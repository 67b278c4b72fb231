"""The purge claim and the retention run against moto's DynamoDB and S3 built from
template.yaml: claims with a fake clock, legal holds, policies, paging, and two runs at once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.job_store import JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.retention_store import RetentionPolicyStore
from dataexport.audit import AuditEventType
from dataexport.export_job import (
    ExportJob,
    ExportStatus,
    export_key,
    export_prefix,
    new_job_id,
    utc_now,
)
from dataexport.services.exports import HOLDABLE
from dataexport.services.retention import (
    PURGE_LEASE,
    ExpiryResult,
    RetentionPolicies,
    RetentionRunSummary,
    expire_if_due,
    purge_due_exports,
)
from dataexport_local.aws import LocalAws
from dataexport_local.template import REGION

DEFAULT_RETENTION = timedelta(days=7)


class RecordingObjects(ObjectStore):
    """The bucket, counting the deletions of each prefix (from any thread)."""

    def __init__(self, bucket: str, region: str) -> None:
        super().__init__(bucket, region)
        self.bucket = bucket
        self._lock = threading.Lock()
        self.removals: Counter[str] = Counter()

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            self.removals[prefix] += 1
        return super().delete_prefix(prefix)


@dataclass(frozen=True)
class Stores:
    jobs: JobStore
    objects: RecordingObjects
    audit: AuditTrail
    retention: RetentionPolicies


@pytest.fixture(scope="module")
def stores() -> Iterator[Stores]:
    with LocalAws(parameter_secrets={"DatabaseSecretArn": "{}"}) as aws:
        tables = {table.logical_id: table.name for table in aws.template.tables}
        (bucket,) = aws.template.buckets
        yield Stores(
            jobs=JobStore(tables["ExportsTable"], REGION),
            objects=RecordingObjects(bucket.name, REGION),
            audit=AuditTrail(tables["AuditTable"], REGION),
            retention=RetentionPolicies(
                RetentionPolicyStore(tables["ControlTable"], REGION), DEFAULT_RETENTION
            ),
        )


@pytest.fixture
def org_id() -> str:
    return f"org_{uuid.uuid4().hex[:10]}"


def completed_export(
    stores: Stores,
    org_id: str,
    *,
    expires_at: datetime,
    dataset: str = "usage_logs",
    split_files: int = 0,
    held: bool = False,
) -> ExportJob:
    """A completed export with its objects in the bucket: one file, or split files and a
    manifest."""
    job_id = new_job_id()
    job = ExportJob(
        id=job_id,
        org_id=org_id,
        owner_id="u_owner",
        dataset=dataset,
        format="csv",
        fields=["model"],
        file_name=f"{dataset}-{job_id}.csv",
        status=ExportStatus.COMPLETED,
        progress=100,
        created_at=expires_at - DEFAULT_RETENTION - timedelta(minutes=1),
        completed_at=expires_at - DEFAULT_RETENTION,
        expires_at=expires_at,
        legal_hold=held,
        file_count=split_files,
    )
    names = [f"{job.file_name}.{n}" for n in range(1, split_files + 1)] + ["manifest.json"]
    for name in names if split_files else [job.file_name]:
        stores.objects.put(export_key(job, name), b"model\r\nclaude\r\n", "text/csv")
    job = job.model_copy(update={"s3_key": export_key(job, names[-1] if split_files else None)})
    stores.jobs.create(job)
    return job


def retention_run(stores: Stores, run_id: str, now: datetime, **budget: Any) -> RetentionRunSummary:
    """One retention run over the stores (`budget`: stop_starting_at, page_size)."""
    return purge_due_exports(
        jobs=stores.jobs,
        objects=stores.objects,
        audit=stores.audit,
        retention=stores.retention,
        run_id=run_id,
        now=now,
        **budget,
    )


def objects_of(stores: Stores, job: ExportJob) -> list[str]:
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_objects_v2(Bucket=stores.objects.bucket, Prefix=export_prefix(job))
    return [item["Key"] for item in listed.get("Contents", [])]


def purge_events(stores: Stores, org_id: str) -> Counter[str]:
    return Counter(
        event.target_id or ""
        for event in stores.audit.chain(org_id)
        if event.type is AuditEventType.RETENTION_PURGED
    )


def test_a_claim_goes_to_one_claimant_until_its_lease_runs_out(stores: Stores, org_id: str) -> None:
    # Given an export that expired a minute ago
    now = utc_now()
    job = completed_export(stores, org_id, expires_at=now - timedelta(minutes=1))

    # When run A claims it, run B cannot, neither later within A's lease
    assert stores.jobs.claim_purge(job.id, "run_a", now, PURGE_LEASE) is not None
    assert stores.jobs.claim_purge(job.id, "run_b", now, PURGE_LEASE) is None
    within = now + PURGE_LEASE - timedelta(seconds=1)
    assert stores.jobs.claim_purge(job.id, "run_b", within, PURGE_LEASE) is None
    # and no legal hold may be placed while it is being purged
    assert stores.jobs.set_legal_hold(job.id, True, HOLDABLE) is None

    # Then once A's lease has run out (A died), B takes the claim over
    after = now + PURGE_LEASE + timedelta(seconds=1)
    assert stores.jobs.claim_purge(job.id, "run_b", after, PURGE_LEASE) is not None
    # and only the holder can mark it expired
    assert stores.jobs.expire_claimed(job.id, "run_a") is None
    expired = stores.jobs.expire_claimed(job.id, "run_b")
    assert expired is not None and expired.status is ExportStatus.EXPIRED
    assert job.id not in set(stores.jobs.due_for_expiry(after, 100))


def test_a_claim_is_refused_for_a_held_or_not_yet_due_export(stores: Stores, org_id: str) -> None:
    now = utc_now()
    held = completed_export(stores, org_id, expires_at=now - timedelta(hours=1), held=True)
    later = completed_export(stores, org_id, expires_at=now + timedelta(hours=1))
    assert stores.jobs.claim_purge(held.id, "run", now, PURGE_LEASE) is None
    assert stores.jobs.claim_purge(later.id, "run", now, PURGE_LEASE) is None
    # the index lists what is due (held ones too: the run counts them), not what is not
    due = set(stores.jobs.due_for_expiry(now, 100))
    assert held.id in due and later.id not in due


def test_the_run_keeps_held_exports_and_purges_and_audits_the_rest(
    stores: Stores, org_id: str
) -> None:
    # Given two due exports (one split into files with a manifest), one held, one not due
    now = utc_now()
    single = completed_export(stores, org_id, expires_at=now - timedelta(days=1))
    split = completed_export(stores, org_id, expires_at=now - timedelta(hours=2), split_files=3)
    held = completed_export(stores, org_id, expires_at=now - timedelta(hours=3), held=True)
    later = completed_export(stores, org_id, expires_at=now + timedelta(days=1))
    assert len(objects_of(stores, split)) == 4

    # When the retention run runs
    summary = retention_run(stores, "run_1", now)

    # Then the due exports are gone and expired, audited once each by the system
    assert summary.failed == 0 and summary.finished
    assert summary.expired >= 2 and summary.held >= 1  # other tests' exports may be due too
    for purged in (single, split):
        assert objects_of(stores, purged) == []
        assert stores.jobs.get(purged.id).status is ExportStatus.EXPIRED
    events = [e for e in stores.audit.chain(org_id) if e.type is AuditEventType.RETENTION_PURGED]
    assert sorted(event.target_id or "" for event in events) == sorted([single.id, split.id])
    assert {(e.actor_id, e.actor_role, e.target_type) for e in events} == {
        ("retention", "system", "export")
    }
    assert next(e for e in events if e.target_id == split.id).detail["files"] == 3
    # And the held and the not-yet-due exports are untouched
    for kept in (held, later):
        assert stores.jobs.get(kept.id).status is ExportStatus.COMPLETED
        assert objects_of(stores, kept)


def test_two_runs_at_once_purge_and_audit_each_export_once(stores: Stores, org_id: str) -> None:
    # Given a dozen due exports of one tenant
    now = utc_now()
    jobs = [
        completed_export(stores, org_id, expires_at=now - timedelta(minutes=index + 1))
        for index in range(12)
    ]
    held = completed_export(stores, org_id, expires_at=now - timedelta(minutes=30), held=True)
    stores.objects.removals.clear()
    start = threading.Barrier(2)

    def run(run_id: str) -> int:
        start.wait()
        return retention_run(stores, run_id, now, page_size=3).expired

    # When two retention runs start at the same moment
    with ThreadPoolExecutor(max_workers=2) as pool:
        expired = list(pool.map(run, ["run_a", "run_b"]))

    # Then between them they expired each export once
    ours = {job.id for job in jobs}
    assert all(stores.jobs.get(job_id).status is ExportStatus.EXPIRED for job_id in ours)
    assert sum(expired) >= len(ours)  # other tests' exports may be due too
    # each export's objects were deleted by exactly one run, and it was audited exactly once
    assert {stores.objects.removals[export_prefix(job)] for job in jobs} == {1}
    assert purge_events(stores, org_id) == dict.fromkeys(ours, 1)
    # And the held export is still there
    assert stores.jobs.get(held.id).status is ExportStatus.COMPLETED and objects_of(stores, held)


def test_the_run_pages_through_the_index_and_stops_at_its_time_budget(
    stores: Stores, org_id: str
) -> None:
    now = utc_now()
    jobs = [
        completed_export(stores, org_id, expires_at=now - timedelta(seconds=index + 1))
        for index in range(5)
    ]
    # A run with no time left starts nothing and says it did not finish
    stopped = retention_run(stores, "run_out_of_time", now, stop_starting_at=0.0)
    assert (stopped.expired, stopped.finished) == (0, False)
    assert all(stores.jobs.get(job.id).status is ExportStatus.COMPLETED for job in jobs)
    # A run reading two at a time reaches every one of them
    summary = retention_run(stores, "run_paged", now, page_size=2)
    assert summary.finished and summary.expired >= 5
    assert all(stores.jobs.get(job.id).status is ExportStatus.EXPIRED for job in jobs)


def test_a_longer_policy_keeps_an_export_and_a_shorter_one_never_cuts_it(
    stores: Stores, org_id: str
) -> None:
    # Given two exports of different datasets, both due under the 7-day default
    now = utc_now()
    audit_export = completed_export(
        stores, org_id, expires_at=now - timedelta(hours=1), dataset="audit_events"
    )
    usage_export = completed_export(stores, org_id, expires_at=now + timedelta(days=1))
    # When the tenant keeps audit_events for 30 days and usage_logs for 1
    assert stores.retention.store.replace(org_id, {"audit_events": 30, "usage_logs": 1}, 0)

    def decide(job: ExportJob) -> tuple[ExpiryResult, datetime | None]:
        decision = expire_if_due(
            job.id,
            jobs=stores.jobs,
            objects=stores.objects,
            audit=stores.audit,
            retention=stores.retention,
            claimant="run",
            now=now,
        )
        return decision.result, decision.expires_at

    # Then the audit export is kept, its expiry moved to completion + 30 days
    assert audit_export.completed_at is not None
    extended = audit_export.completed_at + timedelta(days=30)
    assert decide(audit_export) == (ExpiryResult.NOT_DUE, extended)
    assert stores.jobs.get(audit_export.id).expires_at == extended
    assert objects_of(stores, audit_export)
    # and the usage export still expires when it was going to, not earlier
    assert decide(usage_export) == (ExpiryResult.NOT_DUE, usage_export.expires_at)
    assert stores.jobs.get(usage_export.id).expires_at == usage_export.expires_at


def test_of_two_updates_of_one_version_of_the_policies_exactly_one_is_written(
    stores: Stores, org_id: str
) -> None:
    store = stores.retention.store
    assert store.replace(org_id, {"fees": 3}, 0)
    version = store.read(org_id).version
    start = threading.Barrier(2)

    def replace(days: int) -> bool:
        start.wait()
        return store.replace(org_id, {"fees": days}, version)

    with ThreadPoolExecutor(max_workers=2) as pool:
        won = list(pool.map(replace, [10, 20]))

    assert sorted(won) == [False, True]
    stored = store.read(org_id)
    assert stored.version == version + 1
    assert stored.days_by_dataset == {"fees": 10 if won[0] else 20}
