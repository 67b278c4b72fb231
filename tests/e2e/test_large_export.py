"""Ten million rows through the local runtime: the same file as an independent COPY, and a
cancel in the middle that leaves nothing behind. Slow (minutes): `make test-slow`.

LARGE_EXPORT_ROWS sets the size (default 10,000,000).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from dataexport_local.postgres import LocalDatabase
from tests.bench.export_probe import psql_binary
from tests.e2e.http_client import ApiClient
from tests.e2e.test_format_memory import BASE_TIME, probe_runtime

pytestmark = pytest.mark.slow

ROWS = int(os.environ.get("LARGE_EXPORT_ROWS", "10000000"))
TENANT = "org_probe"
FIELDS = ["id", "payload", "amount"]
HEADER = b"ID,Payload,Amount\n"


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any, database: LocalDatabase) -> Iterator[Any]:
    with probe_runtime(runtime_factory, database, {"ExportsPerHour": "100"}, ROWS) as started:
        yield started


@pytest.fixture(scope="module")
def admin(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("ada", TENANT, "admin"))


def probe_request(timezone: str) -> dict[str, Any]:
    # Integers, hex text and numerics: cells COPY writes exactly as the CSV writer does.
    return {
        "dataset": "memory_probe",
        "format": "csv",
        "fields": FIELDS,
        "time_range": {
            "start": BASE_TIME.isoformat(),
            "end": (BASE_TIME + timedelta(seconds=ROWS + 1)).isoformat(),
        },
        "options": {"timezone": timezone, "bom": False, "line_ending": "lf"},
    }


def independent_copy(database: LocalDatabase) -> tuple[str, int]:
    """sha256 and line count of psql's own COPY of the same rows, after the same header."""
    settings = database.admin_settings
    query = (
        f"SELECT {', '.join(FIELDS)} FROM demo.memory_probe WHERE org_id = '{TENANT}' ORDER BY id"
    )
    command = [psql_binary(), "-X", "-q", "-d", settings.dbname, "-U", settings.username]
    command += ["-h", settings.host, "-p", str(settings.port)]
    command += ["-c", f"\\copy ({query}) TO STDOUT (FORMAT csv)"]
    digest = hashlib.sha256(HEADER)
    lines = 1
    environment = {**os.environ, "PGPASSWORD": settings.password}
    with subprocess.Popen(command, env=environment, stdout=subprocess.PIPE) as copying:
        assert copying.stdout is not None
        for block in iter(lambda: copying.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            digest.update(block)
            lines += block.count(b"\n")
    assert copying.returncode == 0
    return digest.hexdigest(), lines


def downloaded(client: ApiClient, job_id: str) -> tuple[str, int]:
    """sha256 and line count of the file, streamed from its presigned URL."""
    redirect = client.call("GET", f"/v1/exports/{job_id}/download")
    assert redirect.status == 302, redirect.body
    digest = hashlib.sha256()
    lines = 0
    with urllib.request.urlopen(redirect.headers["Location"]) as response:
        for block in iter(lambda: response.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def test_ten_million_rows_match_an_independent_copy(
    runtime: Any, admin: ApiClient, database: LocalDatabase
) -> None:
    # Given ROWS probe rows, when an admin exports all of them as CSV
    started = time.monotonic()
    job = admin.create_export(probe_request("UTC"))
    done = admin.wait_for(job["id"], {"completed", "failed"}, timeout=3600)
    exported_in = time.monotonic() - started
    assert done["status"] == "completed", done["error"]

    # Then the downloaded file has every row and the sha256 of psql's own COPY of them
    sha256, lines = downloaded(admin, job["id"])
    expected_sha256, expected_lines = independent_copy(database)
    print(
        f"\n{ROWS:,} rows exported in {exported_in:.1f} s "
        f"({ROWS / exported_in:,.0f} rows/s end to end), {done['bytes'] / 1e6:,.1f} MB"
    )
    assert done["rows_exported"] == ROWS == lines - 1
    assert (sha256, lines) == (expected_sha256, expected_lines)
    assert done["sha256"] == sha256


def test_cancelling_a_running_export_leaves_no_staging_objects_or_uploads(
    runtime: Any, admin: ApiClient
) -> None:
    # Given the same export, running and part-way through
    job = admin.create_export(probe_request("Europe/Berlin"))
    deadline = time.monotonic() + 600
    while not admin.call("GET", f"/v1/exports/{job['id']}").json().get("rows_exported"):
        assert time.monotonic() < deadline, "the export never reported progress"
        time.sleep(0.2)

    # When it is cancelled
    answer = admin.call("POST", f"/v1/exports/{job['id']}/cancel")
    assert answer.status == 200, answer.body
    assert answer.json()["status"] == "cancelled"

    # Then, once the steps still running have stopped, nothing of it is left in the bucket
    s3 = runtime.boto3_client("s3")
    prefixes = [f"staging/{job['id']}/", f"exports/{TENANT}/{job['id']}/"]
    deadline = time.monotonic() + 120
    while True:
        left = [
            key
            for prefix in prefixes
            for key in [
                *(
                    item["Key"]
                    for item in s3.list_objects_v2(Bucket=runtime.bucket_name, Prefix=prefix).get(
                        "Contents", []
                    )
                ),
                *(
                    upload["Key"]
                    for upload in s3.list_multipart_uploads(
                        Bucket=runtime.bucket_name, Prefix=prefix
                    ).get("Uploads", [])
                ),
            ]
        ]
        status = runtime.boto3_client("stepfunctions").describe_execution(
            executionArn=runtime.execution_arn(job["id"])
        )["status"]
        # StopExecution does not stop a running Format invocation: it stops itself.
        if not left and status != "RUNNING" and not runtime.is_running("ExportFormatFunction"):
            break
        assert time.monotonic() < deadline, f"still left after the cancel: {left} ({status})"
        time.sleep(0.5)
    assert status == "ABORTED"
    assert admin.call("GET", f"/v1/exports/{job['id']}").json()["status"] == "cancelled"
