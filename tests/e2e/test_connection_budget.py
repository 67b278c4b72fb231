"""FormatReservedConcurrency bounds the database connections of every export together: it is the
Format function's reserved concurrency, and no export plans more partitions at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.http_client import ApiClient

BUDGET = 2


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[Any]:
    parameters = {
        "ExportSegmentRows": "300",
        "ExportPartitionSegments": "1",
        "FormatMaxConcurrency": "4",
        "FormatReservedConcurrency": str(BUDGET),
    }
    with runtime_factory(parameters) as started:
        yield started


def test_an_export_of_many_partitions_runs_no_more_at_once_than_the_budget(runtime: Any) -> None:
    # Given the Format function reserved at BUDGET, and an export of many small partitions
    assert runtime.template.function("ExportFormatFunction").reserved_concurrency == BUDGET
    admin = ApiClient(runtime.api_url, runtime.token("u_budget", "org_acme", "admin"))
    job = admin.wait_for(
        admin.create_export({"dataset": "usage_logs", "format": "csv", "fields": ["model"]})["id"],
        {"completed", "failed"},
    )
    assert job["status"] == "completed", job["error"]

    # Then the Query step planned more partitions than the budget, run BUDGET at a time
    sfn = runtime.boto3_client("stepfunctions")
    events = sfn.get_execution_history(
        executionArn=runtime.execution_arn(job["id"]), maxResults=1000
    )["events"]
    (plan,) = [
        json.loads(event["stateExitedEventDetails"]["output"])
        for event in events
        if event["type"] == "TaskStateExited"
        and event["stateExitedEventDetails"]["name"] == "Query"
    ]
    assert len(plan["partitions"]) > BUDGET
    assert plan["max_concurrency"] == BUDGET
