"""A split export whose job record lists only some of its files (as one with very many files
lists only its first hundred): the others download by number, as the manifest lists them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from dataexport_local.postgres import LocalDatabase
from tests.conftest import WORKER_SETUP
from tests.e2e.http_client import ApiClient
from tests.e2e.test_format_memory import probe_runtime
from tests.e2e.test_split_files import LIMIT_MB, ROWS, SEGMENT_ROWS, TENANT, probe_request


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any, database: LocalDatabase) -> Iterator[Any]:
    # The job lists one file: every worker of this runtime sets that before its handler.
    parameters = {
        "ExportSegmentRows": str(SEGMENT_ROWS),
        "ExportPartitionSegments": "3",
        "ExportsPerHour": "100",
    }

    def one_file_listed(parameters: Any) -> Any:
        return runtime_factory(parameters, worker_setup_files=[WORKER_SETUP / "one_file_listed.py"])

    with probe_runtime(one_file_listed, database, parameters, ROWS) as started:
        yield started


@pytest.fixture(scope="module")
def admin(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("ada", TENANT, "admin"))


def test_files_past_those_the_job_lists_download_by_number(admin: ApiClient) -> None:
    # Given a split export whose job record lists only its first file (this module's runtime)
    job = admin.create_export(probe_request("csv", "zstd", max_file_size_mb=LIMIT_MB))
    done = admin.wait_for(job["id"], {"completed", "failed"}, timeout=300)
    assert done["status"] == "completed", done["error"]
    assert len(done["files"]) == 1 < done["file_count"]

    # When the last file is asked for by its number
    manifest = admin.download(job["id"])[1].json()
    last = manifest["files"][-1]
    assert last["number"] == done["file_count"] == len(manifest["files"])
    _, download = admin.download(job["id"], last["number"])

    # Then it is the file the manifest lists
    assert hashlib.sha256(download.body).hexdigest() == last["sha256"]
    assert last["file_name"] in download.headers["Content-Disposition"]
    beyond = admin.call("GET", f"/v1/exports/{job['id']}/download?file={last['number'] + 1}")
    assert beyond.status == 400
