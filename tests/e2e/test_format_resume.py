"""A Format step killed mid-partition resumes from its checkpoint: the segments it finished are
kept as they are, the rest are written once, and the final file is identical (same sha256) to
an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from dataexport import components
from dataexport.config import FormatStepConfig, UploadStepConfig, read_config
from dataexport.export_job import ExportJob, ExportStatus, PartSummary
from dataexport.services.export_steps import (
    FormatOutcome,
    Partition,
    Splitting,
    complete_export,
    plan_export,
)
from dataexport.store_keys import staging_prefix
from tests.e2e.format_step_process import run_format_step
from tests.e2e.test_format_memory import fill_probe_table, probe_job

# The product's code called here runs with the Format function's environment, as in its Lambda.
pytestmark = pytest.mark.usefixtures("as_format_function")

ROWS = 60_000
SEGMENT_ROWS = 5_000
KILLED_IN_SEGMENT = 5


def planned_job(format_name: str) -> tuple[ExportJob, Partition]:
    """A queued probe export, planned as one partition of ROWS / SEGMENT_ROWS segments."""
    config = read_config(FormatStepConfig)
    jobs = components.job_store(config)
    job = probe_job(ROWS, format_name)
    plan = plan_export(
        job.id,
        jobs=jobs,
        rows_for=components.row_sources(config),
        catalog=components.catalog(config),
        splitting=Splitting(segment_rows=SEGMENT_ROWS, partition_segments=ROWS),
    )
    assert len(plan.partitions) == 1
    return jobs.get(job.id), plan.partitions[0]


def format_in_process_killed_in(job: ExportJob, partition: Partition, segment: int) -> int:
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.e2e.format_step_process",
            job.id,
            json.dumps(partition.to_payload()),
            str(segment),
        ],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return finished.returncode


def uploaded(runtime: Any, job: ExportJob, outcome: FormatOutcome) -> ExportJob:
    """The Upload step for a one-partition job whose Format step is done, with the Upload
    function's environment."""
    assert outcome.done
    with runtime.as_function("ExportUploadFunction"):
        config = read_config(UploadStepConfig)
        return complete_export(
            job.id,
            [
                PartSummary(
                    index=0, rows=outcome.rows, bytes=outcome.bytes, segments=outcome.segments
                )
            ],
            jobs=components.job_store(config),
            objects=components.object_store(config),
            checkpoints=components.checkpoint_store(config),
            catalog=components.catalog(config),
            queue=components.export_queue(config),
            retention=components.retention_policies(config),
        )


def staged_objects(runtime: Any, job_id: str) -> dict[str, str]:
    s3 = runtime.boto3_client("s3")
    listed = s3.list_objects_v2(Bucket=runtime.bucket_name, Prefix=staging_prefix(job_id))
    return {
        item["Key"]: item["ETag"] + str(item["LastModified"]) for item in listed.get("Contents", [])
    }


def test_a_killed_format_step_resumes_where_it_was_and_changes_nothing(
    runtime: Any, superuser: Any
) -> None:
    # Given a table of ROWS probe rows and two identical jobs split into 12 segments
    fill_probe_table(superuser, ROWS)
    interrupted, partition = planned_job("csv")
    uninterrupted, other_partition = planned_job("csv")
    assert partition.segment_count == ROWS // SEGMENT_ROWS

    # When the first job's Format step is killed while it writes segment 5
    exit_code = format_in_process_killed_in(interrupted, partition, KILLED_IN_SEGMENT)
    assert exit_code == -signal.SIGKILL
    checkpoints = components.checkpoint_store(read_config(FormatStepConfig))
    kept = checkpoints.finished_segments(interrupted.id, 0)
    assert len(kept) == KILLED_IN_SEGMENT
    before = staged_objects(runtime, interrupted.id)

    # And a new invocation takes the partition over
    outcome = run_format_step(interrupted.id, partition)

    # Then it kept the finished segments as they were and wrote only the others
    assert set(before) == {piece.key for segment in kept for piece in segment.pieces}
    after = staged_objects(runtime, interrupted.id)
    assert {key: after[key] for key in before} == before
    finished = checkpoints.finished_segments(interrupted.id, 0)
    assert finished[:KILLED_IN_SEGMENT] == kept
    assert len(finished) == outcome.segments == partition.segment_count

    # And once joined, the file is identical to an uninterrupted run's
    resumed = uploaded(runtime, interrupted, outcome)
    reference = uploaded(runtime, uninterrupted, run_format_step(uninterrupted.id, other_partition))
    assert resumed.status is ExportStatus.COMPLETED
    assert (resumed.rows_exported, resumed.bytes, resumed.sha256) == (
        reference.rows_exported,
        reference.bytes,
        reference.sha256,
    )
    assert resumed.rows_exported == ROWS

    # And nothing of either job is left in staging, not even the killed step's upload
    s3 = runtime.boto3_client("s3")
    for job in (interrupted, uninterrupted):
        assert staged_objects(runtime, job.id) == {}
        uploads = s3.list_multipart_uploads(
            Bucket=runtime.bucket_name, Prefix=staging_prefix(job.id)
        )
        assert uploads.get("Uploads", []) == []


def test_rows_gone_from_the_first_segment_after_planning_still_make_a_valid_json_file(
    runtime: Any, superuser: Any
) -> None:
    # Given a JSON export planned in segments, whose first segment's rows are deleted before
    # the Format step runs (the application's database goes on changing)
    fill_probe_table(superuser, ROWS)
    job, partition = planned_job("json")
    superuser.run("DELETE FROM demo.memory_probe WHERE id <= :last", last=SEGMENT_ROWS * 2)

    # When it is formatted and joined
    outcome = run_format_step(job.id, partition)
    completed = uploaded(runtime, job, outcome)

    # Then the file is one valid array of the rows that are left, in order
    assert completed.s3_key is not None
    s3 = runtime.boto3_client("s3")
    body = s3.get_object(Bucket=runtime.bucket_name, Key=completed.s3_key)["Body"].read()
    rows = json.loads(body)
    assert [row["id"] for row in rows] == list(range(SEGMENT_ROWS * 2 + 1, ROWS + 1))
    assert completed.rows_exported == ROWS - SEGMENT_ROWS * 2
