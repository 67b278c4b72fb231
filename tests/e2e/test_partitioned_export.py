"""A large export is split into partitions of segments, formatted by many Format invocations
(each stopped by its time budget and continued from its checkpoint), and joined into one file
that is byte for byte what one uninterrupted writer produces."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard

from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.catalog.loader import load_catalog
from dataexport.export_request import ExportRequest, resolve_export
from dataexport.query_builder import RowScope
from dataexport.row_sources import PostgresRows, counted
from dataexport_local.postgres import LocalDatabase
from tests.conftest import TEST_DATASETS
from tests.e2e.http_client import ApiClient
from tests.unit.format_samples import BytesSink

START, END = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
SEGMENT_ROWS = 300
PARTITION_SEGMENTS = 2


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[Any]:
    # Small segments, two per partition, and no time budget: every Format invocation writes
    # one segment and hands the rest of its partition to the next one.
    parameters = {
        "ExportSegmentRows": str(SEGMENT_ROWS),
        "ExportPartitionSegments": str(PARTITION_SEGMENTS),
        "FormatMaxConcurrency": "2",
        "FormatTimeBudgetSeconds": "0",
        "ExportsPerHour": "100",
    }
    with runtime_factory(parameters) as started:
        yield started


def reference_bytes(database: LocalDatabase, request: dict[str, Any], scope: RowScope) -> bytes:
    """The whole export written by the Python writer from one cursor: the reference."""
    resolved = resolve_export(ExportRequest.model_validate(request), load_catalog(TEST_DATASETS))
    reader = PostgresReader(
        DatabaseSecret.from_secret_string(json.dumps(database.reader_settings.as_secret())), 60
    )
    sink = BytesSink()
    writer = resolved.writer(resolved.columns, resolved.options, sink)
    writer.open()
    writer.write_rows(counted(PostgresRows(reader).stream(resolved, scope), lambda done: None))
    writer.close()
    return sink.data


def format_invocations(runtime: Any, job_id: str) -> int:
    sfn = runtime.boto3_client("stepfunctions")
    history = sfn.get_execution_history(executionArn=runtime.execution_arn(job_id), maxResults=1000)
    return sum(
        1
        for event in history["events"]
        if event["type"] == "TaskStateEntered"
        and event["stateEnteredEventDetails"]["name"] == "FormatPartition"
    )


def plain(body: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(body)
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
        data: bytes = reader.read()
        return data
    return body


@pytest.mark.parametrize(
    ("format_name", "compression", "timezone"),
    [
        ("csv", "none", "Europe/Berlin"),
        ("json", "none", "UTC"),
        ("ndjson", "none", "America/St_Johns"),
        ("csv", "gzip", "Asia/Kolkata"),
        ("ndjson", "zstd", "UTC"),
    ],
)
def test_a_split_export_joins_into_exactly_the_uninterrupted_file(
    runtime: Any, database: LocalDatabase, format_name: str, compression: str, timezone: str
) -> None:
    # Given an admin export large enough for several partitions of several segments
    client = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))
    request = {
        "dataset": "usage_logs",
        "format": format_name,
        "compression": compression,
        "time_range": {"start": START, "end": END},
        "options": {"timezone": timezone},
    }

    # When it runs through the state machine and is downloaded
    job = client.create_export(request)
    done = client.wait_for(job["id"], {"completed", "failed"}, timeout=180)
    assert done["status"] == "completed", done["error"]
    _, download = client.download(job["id"])

    # Then it took more partitions and more Format invocations than one
    rows = done["rows_exported"]
    segments = -(-rows // SEGMENT_ROWS)
    assert segments >= 2 * PARTITION_SEGMENTS
    assert format_invocations(runtime, job["id"]) == segments

    # And the joined file is byte for byte the reference, with its size and checksum
    assert hashlib.sha256(download.body).hexdigest() == done["sha256"]
    assert len(download.body) == done["bytes"]
    expected = reference_bytes(database, request, RowScope("org_acme"))
    assert plain(download.body, compression) == expected
    if format_name == "json":
        assert len(json.loads(expected)) == rows
