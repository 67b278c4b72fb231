"""An export of more partitions than the inline Map should take runs its Format step in a
Distributed Map: each partition a child execution, the file the same as ever."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataexport.query_builder import RowScope
from dataexport_local.postgres import LocalDatabase
from tests.e2e.http_client import ApiClient
from tests.e2e.test_partitioned_export import (
    END,
    PARTITION_SEGMENTS,
    SEGMENT_ROWS,
    START,
    reference_bytes,
)


@pytest.fixture(scope="module")
def distributed_runtime(runtime_factory: Any) -> Iterator[Any]:
    # Every export of more than one partition goes to the Distributed Map.
    parameters = {
        "ExportSegmentRows": str(SEGMENT_ROWS),
        "ExportPartitionSegments": str(PARTITION_SEGMENTS),
        "FormatDistributedPartitions": "1",
        "FormatDistributedMaxConcurrency": "3",
        "ExportsPerHour": "100",
    }
    with runtime_factory(parameters) as started:
        yield started


def states_entered(runtime: Any, job_id: str) -> list[str]:
    sfn = runtime.boto3_client("stepfunctions")
    history = sfn.get_execution_history(executionArn=runtime.execution_arn(job_id), maxResults=1000)
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history["events"]
        if "stateEnteredEventDetails" in event
    ]


def test_an_export_of_many_partitions_is_formatted_by_a_distributed_map(
    distributed_runtime: Any, database: LocalDatabase
) -> None:
    # Given an export of more partitions than the inline Map takes
    client = ApiClient(
        distributed_runtime.api_url,
        distributed_runtime.token("usr_acme_admin", "org_acme", "admin"),
    )
    request = {
        "dataset": "usage_logs",
        "format": "ndjson",
        "time_range": {"start": START, "end": END},
        "options": {"timezone": "Asia/Kolkata"},
    }

    # When it runs
    job = client.create_export(request)
    done = client.wait_for(job["id"], {"completed", "failed"}, timeout=180)
    assert done["status"] == "completed", done["error"]

    # Then its partitions went through the Distributed Map (child executions), not the inline
    entered = states_entered(distributed_runtime, job["id"])
    assert "FormatDistributed" in entered and "FormatInline" not in entered
    assert "FormatPartition" not in entered

    # And the file is byte for byte the one an uninterrupted writer produces
    _, download = client.download(job["id"])
    assert download.body == reference_bytes(database, request, RowScope("org_acme"))
    assert -(-done["rows_exported"] // (SEGMENT_ROWS * PARTITION_SEGMENTS)) >= 2
