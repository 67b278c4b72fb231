"""A Format step whose job is cancelled stops by itself and leaves nothing in staging.

StopExecution does not stop a Lambda that is already running, so the step learns of the
cancellation from its own writes. Against moto's DynamoDB and S3 built from template.yaml; the
rows come from an in-memory source that cancels the job part-way, the way a user's request
would arrive while the step streams.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.checkpoint_store import CheckpointStore
from dataexport.adapters.control_store import ControlStore
from dataexport.adapters.job_store import JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.audit import AuditEventType
from dataexport.catalog.loader import Catalog, load_catalog
from dataexport.catalog.model import Dataset
from dataexport.errors import ExportCancelled
from dataexport.export_job import ExportJob, ExportStatus, new_job_id, utc_now
from dataexport.export_request import ResolvedExport
from dataexport.query_builder import RowScope
from dataexport.row_sources import RowSource, WholeStreamRows
from dataexport.services import export_steps
from dataexport.services.export_queue import ExportQueue
from dataexport.services.export_steps import Partition, fail_export, format_partition
from dataexport.store_keys import staging_prefix
from dataexport_local.aws import LocalAws
from dataexport_local.template import REGION
from tests.conftest import TEST_DATASETS

BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)
BATCH_ROWS = 10_000
# About 1.3 MB of CSV per batch: eight batches pass the 8 MiB first part of the upload.
BATCHES = 12


@dataclass(frozen=True)
class Aws:
    jobs: JobStore
    objects: ObjectStore
    s3: Any
    bucket: str
    queue: ExportQueue
    audit: AuditTrail
    catalog: Catalog
    checkpoints: CheckpointStore


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    with LocalAws(parameter_secrets={"DatabaseSecretArn": "{}"}) as local:
        tables = {table.logical_id: table.name for table in local.template.tables}
        bucket = next(b.name for b in local.template.buckets if b.logical_id == "ExportsBucket")
        jobs = JobStore(tables["ExportsTable"], REGION)
        machine = next(
            m.arn for m in local.template.state_machines if m.logical_id == "ExportStateMachine"
        )
        yield Aws(
            jobs=jobs,
            objects=ObjectStore(bucket, REGION),
            s3=local.client("s3"),
            bucket=bucket,
            queue=ExportQueue(
                jobs,
                ControlStore(tables["ControlTable"], REGION),
                ExportWorkflow(machine, REGION),
                1,
            ),
            audit=AuditTrail(tables["AuditTable"], REGION),
            catalog=load_catalog(TEST_DATASETS),
            checkpoints=CheckpointStore(tables["ControlTable"], REGION),
        )


class RowsCancelledPartWay(WholeStreamRows):
    """Probe rows in batches; the job is cancelled as batch `cancel_at` is read."""

    def __init__(self, jobs: JobStore, job_id: str, cancel_at: int) -> None:
        self._jobs = jobs
        self._job_id = job_id
        self._cancel_at = cancel_at

    def count(self, export: ResolvedExport, scope: RowScope) -> int:
        return BATCHES * BATCH_ROWS

    def stream(self, export: ResolvedExport, scope: RowScope) -> Iterator[list[list[Any]]]:
        for batch in range(BATCHES):
            if batch == self._cancel_at:
                self._jobs.transition(self._job_id, ExportStatus.CANCELLED, completed_at=utc_now())
            first = batch * BATCH_ROWS
            yield [
                [n, BASE_TIME + timedelta(seconds=n), f"payload {n:08d} " * 8, Decimal(n) / 7]
                for n in range(first, first + BATCH_ROWS)
            ]


def running_job(jobs: JobStore) -> ExportJob:
    job = ExportJob(
        id=new_job_id(),
        org_id="org_probe",
        owner_id="probe",
        dataset="memory_probe",
        format="csv",
        fields=["id", "created_at", "payload", "amount"],
        owner_scoped=False,
        file_name="memory_probe.csv",
        created_at=utc_now(),
    )
    jobs.create(job)
    return jobs.transition(job.id, ExportStatus.RUNNING, started_at=utc_now())


def format_with(aws: Aws, job: ExportJob, rows: RowSource) -> None:
    def rows_for(dataset: Dataset) -> RowSource:
        return rows

    format_partition(
        Partition(job.id, 0, 1),
        jobs=aws.jobs,
        rows_for=rows_for,
        objects=aws.objects,
        catalog=aws.catalog,
        checkpoints=aws.checkpoints,
    )


def staged(aws: Aws, job_id: str) -> tuple[list[str], list[str]]:
    """The objects and the unfinished multipart uploads under the job's staging prefix."""
    prefix = staging_prefix(job_id)
    listed = aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix=prefix)
    uploads = aws.s3.list_multipart_uploads(Bucket=aws.bucket, Prefix=prefix)
    return (
        [item["Key"] for item in listed.get("Contents", [])],
        [upload["Key"] for upload in uploads.get("Uploads", [])],
    )


def test_progress_is_written_only_while_the_job_runs(aws: Aws) -> None:
    # Given a running job
    job = running_job(aws.jobs)

    # When its progress is written, then it is cancelled and progress is written again
    written = aws.jobs.add_rows_exported_while_running(job.id, 10)
    aws.jobs.transition(job.id, ExportStatus.CANCELLED)
    refused = aws.jobs.add_rows_exported_while_running(job.id, 20)

    # Then the first write landed and the second was refused, changing nothing
    assert written and not refused
    stored = aws.jobs.get(job.id)
    assert stored.status is ExportStatus.CANCELLED and stored.rows_exported == 10


def test_a_step_cancelled_mid_stream_stops_at_its_next_progress_write(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running job whose Format step reports progress after every batch, and which is
    # cancelled once more than one S3 part has been uploaded
    monkeypatch.setattr(export_steps, "PROGRESS_INTERVAL_SECONDS", 0.0)
    job = running_job(aws.jobs)
    rows = RowsCancelledPartWay(aws.jobs, job.id, cancel_at=BATCHES - 2)

    # When the step formats the partition
    with pytest.raises(ExportCancelled):
        format_with(aws, job, rows)

    # Then it stopped before the end, its multipart upload was aborted and nothing is staged
    assert staged(aws, job.id) == ([], [])
    stored = aws.jobs.get(job.id)
    assert stored.status is ExportStatus.CANCELLED
    assert stored.rows_exported == (BATCHES - 2) * BATCH_ROWS


def test_a_step_cancelled_after_its_last_progress_write_removes_its_part(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running job cancelled while its last batch is read, before any progress write
    monkeypatch.setattr(export_steps, "PROGRESS_INTERVAL_SECONDS", 3600.0)
    job = running_job(aws.jobs)
    rows = RowsCancelledPartWay(aws.jobs, job.id, cancel_at=BATCHES - 1)

    # When the step completes its staging object
    with pytest.raises(ExportCancelled):
        format_with(aws, job, rows)

    # Then it deleted that object again: nothing of the cancelled job stays in staging
    assert staged(aws, job.id) == ([], [])


def test_the_fail_step_leaves_a_cancelled_job_cancelled(aws: Aws) -> None:
    # Given a job that was cancelled while a step was still working on it
    job = running_job(aws.jobs)
    aws.jobs.transition(job.id, ExportStatus.CANCELLED, completed_at=utc_now())

    # When that step's error reaches the Fail step
    cause = json.dumps({"errorMessage": f"Export {job.id} is no longer running."})
    ended = fail_export(
        job.id,
        "ExportCancelled",
        cause,
        jobs=aws.jobs,
        objects=aws.objects,
        queue=aws.queue,
        audit=aws.audit,
    )

    # Then the job stays cancelled, without an error, and no failure is audited
    assert ended.status is ExportStatus.CANCELLED and ended.error is None
    assert aws.jobs.get(job.id).status is ExportStatus.CANCELLED
    failures = aws.audit.events(job.org_id, types=[AuditEventType.EXPORT_FAILED])
    assert not [event for event in failures.events if event.target_id == job.id]
