"""The Format step streams: ten times more rows do not raise its peak memory beyond a constant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataexport import components
from dataexport.config import FormatStepConfig, read_config
from dataexport.export_job import ExportJob, ExportStatus, new_job_id, utc_now
from dataexport_local.postgres import LocalDatabase

SMALL_ROWS = 300_000
LARGE_ROWS = 10 * SMALL_ROWS
BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)
MIB = 1024 * 1024
# Both exports fill the upload pipeline (queued chunks, the part being cut, parts in flight):
# that working set is bounded, so beyond it the peak must not grow with the row count.
ALLOWED_GROWTH = 16 * MIB
# The product's code called here (and the process started) runs with the Format function's
# environment, as in its Lambda: the test process has no function's environment.
pytestmark = pytest.mark.usefixtures("as_format_function")

# What a Format Lambda may use at most, whatever the export's size.
PEAK_LIMIT = 150 * 1_000_000


@contextmanager
def probe_runtime(
    runtime_factory: Any, database: LocalDatabase, parameters: dict[str, str], rows: int
) -> Iterator[Any]:
    """A local runtime with `parameters`, over a probe table of `rows` rows of org_probe."""
    with runtime_factory(parameters) as started:
        superuser = database.connect()
        try:
            fill_probe_table(superuser, rows)
            superuser.run("ANALYZE demo.memory_probe")
        finally:
            superuser.close()
        yield started


def fill_probe_table(superuser: Any, rows: int) -> None:
    superuser.run("DROP TABLE IF EXISTS demo.memory_probe")
    superuser.run(
        "CREATE TABLE demo.memory_probe (id bigint PRIMARY KEY, org_id text NOT NULL, "
        "created_at timestamptz NOT NULL, payload text, amount numeric(14, 4))"
    )
    superuser.run(
        "INSERT INTO demo.memory_probe SELECT g, 'org_probe', "
        "CAST(:base AS timestamptz) + g * interval '1 second', repeat(md5(g::text), 3), g / 7.0 "
        "FROM generate_series(1, :rows) AS g",
        base=BASE_TIME,
        rows=rows,
    )
    superuser.run("GRANT SELECT ON demo.memory_probe TO dataexport_reader")


def probe_job(rows: int, format_name: str = "csv") -> ExportJob:
    """A queued job over the first `rows` probe rows."""
    job = ExportJob(
        id=new_job_id(),
        org_id="org_probe",
        owner_id="probe",
        dataset="memory_probe",
        format=format_name,
        fields=["id", "created_at", "payload", "amount"],
        time_range={
            "start": BASE_TIME.isoformat(),
            "end": (BASE_TIME + timedelta(seconds=rows + 1)).isoformat(),
        },
        owner_scoped=False,
        file_name=f"memory_probe.{format_name}",
        created_at=utc_now(),
    )
    components.job_store(read_config(FormatStepConfig)).create(job)
    return job


def running_job(rows: int) -> ExportJob:
    """A job over the first `rows` probe rows, as the Query step leaves it: running."""
    jobs = components.job_store(read_config(FormatStepConfig))
    job = probe_job(rows)
    return jobs.transition(job.id, ExportStatus.RUNNING, started_at=utc_now())


def peak_memory_of_format(rows: int) -> tuple[int, int]:
    """Peak RSS of a separate process running the Format step, and the bytes it wrote."""
    job = running_job(rows)
    finished = subprocess.run(
        [sys.executable, "-m", "tests.e2e.format_step_process", job.id],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["rows"] == rows
    return int(report["peak_bytes"]), int(report["bytes"])


@pytest.mark.serial
def test_ten_times_the_rows_keeps_peak_memory_flat(runtime: Any, superuser: Any) -> None:
    # Given a table with enough rows for a small and a ten times larger export
    fill_probe_table(superuser, LARGE_ROWS)

    # When the Format step exports each
    small_peak, small_bytes = peak_memory_of_format(SMALL_ROWS)
    large_peak, large_bytes = peak_memory_of_format(LARGE_ROWS)

    # Then the output grew tenfold but the peak memory only by a bounded constant
    print(
        f"\nFormat step peak RSS: {SMALL_ROWS} rows ({small_bytes / MIB:.1f} MiB) -> "
        f"{small_peak / MIB:.1f} MiB; {LARGE_ROWS} rows ({large_bytes / MIB:.1f} MiB) -> "
        f"{large_peak / MIB:.1f} MiB"
    )
    assert large_bytes > 9 * small_bytes
    assert large_peak - small_peak < ALLOWED_GROWTH
    assert large_peak <= PEAK_LIMIT
