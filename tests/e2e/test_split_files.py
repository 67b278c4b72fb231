"""An export split by `max_file_size_mb`: numbered files, each whole (header, brackets) and
within the limit as stored, a manifest.json listing them, and every row exactly once, in order,
across partitions and segments."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from dataexport.query_builder import RowScope
from dataexport_local.postgres import LocalDatabase
from tests.e2e.http_client import ApiClient
from tests.e2e.test_format_memory import BASE_TIME, probe_runtime
from tests.e2e.test_partitioned_export import plain, reference_bytes

TENANT = "org_probe"
ROWS = 200_000
LIMIT_MB = 5
SEGMENT_ROWS = 40_000


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any, database: LocalDatabase) -> Iterator[Any]:
    # Two partitions of several segments: files run across segment and partition ends.
    parameters = {
        "ExportSegmentRows": str(SEGMENT_ROWS),
        "ExportPartitionSegments": "3",
        "ExportsPerHour": "100",
    }
    with probe_runtime(runtime_factory, database, parameters, ROWS) as started:
        yield started


@pytest.fixture(scope="module")
def admin(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("ada", TENANT, "admin"))


def probe_request(format_name: str, compression: str, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": "memory_probe",
        "format": format_name,
        "compression": compression,
        "fields": ["id", "created_at", "payload", "amount"],
        "time_range": {
            "start": BASE_TIME.isoformat(),
            "end": (BASE_TIME + timedelta(seconds=ROWS + 1)).isoformat(),
        },
        "options": {"timezone": "Europe/Berlin"},
        **extra,
    }


def file_rows(format_name: str, data: bytes) -> list[Any]:
    """A whole file read back as users would, one item per row."""
    if format_name == "json":
        rows: list[Any] = json.loads(data)
        return rows
    if format_name == "ndjson":
        return [json.loads(line) for line in data.splitlines()]
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert table[0] == ["ID", "Time", "Payload", "Amount"]
    return table[1:]


@pytest.mark.parametrize(
    ("format_name", "compression"),
    [("csv", "none"), ("json", "none"), ("ndjson", "zstd"), ("csv", "gzip")],
)
def test_a_split_export_is_whole_files_within_the_limit_and_a_manifest(
    runtime: Any, admin: ApiClient, database: LocalDatabase, format_name: str, compression: str
) -> None:
    # Given an export of 200,000 rows, asked for in files of at most 5 MB
    request = probe_request(format_name, compression, max_file_size_mb=LIMIT_MB)

    # When it runs through the state machine
    job = admin.create_export(request)
    done = admin.wait_for(job["id"], {"completed", "failed"}, timeout=300)
    assert done["status"] == "completed", done["error"]

    # Then its manifest lists numbered files, and matches the job and its own checksum
    _, manifest_download = admin.download(job["id"])
    manifest = manifest_download.json()
    assert hashlib.sha256(manifest_download.body).hexdigest() == done["sha256"]
    assert manifest["rows"] == done["rows_exported"] == ROWS
    assert manifest["bytes"] == done["bytes"]
    listed = [{k: v for k, v in file.items() if k != "download_url"} for file in done["files"]]
    assert manifest["files"] == listed
    assert [file["number"] for file in manifest["files"]] == list(range(1, len(listed) + 1))
    assert [column["name"] for column in manifest["schema"]] == request["fields"]
    assert manifest["timezone"] == "Europe/Berlin"
    assert len(listed) >= 2

    # And every file is within the limit as stored, is a whole file of its format, and holds
    # exactly the rows the manifest says, the files together the export's rows in order
    rows: list[Any] = []
    for file in manifest["files"]:
        _, download = admin.download(job["id"], file["number"])
        assert file["file_name"] in download.headers["Content-Disposition"]
        assert len(download.body) == file["bytes"] <= LIMIT_MB * 1_000_000
        assert hashlib.sha256(download.body).hexdigest() == file["sha256"]
        in_file = file_rows(format_name, plain(download.body, compression))
        assert len(in_file) == file["rows"] > 0
        rows += in_file
    whole = reference_bytes(database, {**request, "max_file_size_mb": None}, RowScope(TENANT))
    assert rows == file_rows(format_name, whole)

    # And files other than the last are well filled (pieces are a quarter of the limit)
    assert all(file["bytes"] >= LIMIT_MB * 1_000_000 // 2 for file in manifest["files"][:-1])


def test_deleting_a_split_export_removes_every_file_and_the_manifest(
    runtime: Any, admin: ApiClient
) -> None:
    job = admin.create_export(probe_request("ndjson", "none", max_file_size_mb=LIMIT_MB))
    done = admin.wait_for(job["id"], {"completed", "failed"}, timeout=300)
    assert done["status"] == "completed", done["error"]
    s3 = runtime.boto3_client("s3")
    prefix = f"exports/{TENANT}/{job['id']}/"

    def stored() -> list[str]:
        listed = s3.list_objects_v2(Bucket=runtime.bucket_name, Prefix=prefix)
        return [item["Key"] for item in listed.get("Contents", [])]

    assert len(stored()) == len(done["files"]) + 1
    assert admin.call("DELETE", f"/v1/exports/{job['id']}").status == 200
    assert stored() == []


def test_a_file_limit_below_five_mb_is_refused_naming_the_field(admin: ApiClient) -> None:
    answer = admin.call("POST", "/v1/exports", probe_request("csv", "none", max_file_size_mb=4))
    assert answer.status == 400
    assert answer.json()["error_code"] == "VALIDATION_ERROR"
    assert "max_file_size_mb" in json.dumps(answer.json())


def test_asking_for_a_file_the_export_does_not_have_names_the_files_it_has(
    admin: ApiClient,
) -> None:
    split = admin.create_export(probe_request("csv", "zstd", max_file_size_mb=LIMIT_MB))
    whole = admin.create_export(probe_request("ndjson", "gzip"))
    for job in (split, whole):
        done = admin.wait_for(job["id"], {"completed", "failed"}, timeout=300)
        assert done["status"] == "completed", done["error"]
    files = len(admin.call("GET", f"/v1/exports/{split['id']}").json()["files"])

    missing = admin.call("GET", f"/v1/exports/{split['id']}/download?file={files + 1}")
    assert missing.status == 400
    assert missing.json()["detail"] == {"field": "file", "files": files}
    one_file = admin.call("GET", f"/v1/exports/{whole['id']}/download?file=1")
    assert one_file.status == 400
    assert one_file.json()["detail"]["field"] == "file"
    redirect, download = admin.download(whole["id"])
    assert "manifest" not in redirect.headers["Location"]
    assert len(download.body) == admin.call("GET", f"/v1/exports/{whole['id']}").json()["bytes"]
