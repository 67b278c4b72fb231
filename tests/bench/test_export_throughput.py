"""Export throughput and memory against PostgreSQL's own COPY, measured in one run.

`make bench` (BENCH_ROWS, default 2,000,000) loads the demo usage logs, starts the local runtime,
and runs each measurement in a process of its own (peak memory is that process's VmHWM):
- the limit: psql's `\\copy (SELECT ...) TO '/dev/null' (FORMAT csv)` of the export's query;
- the same COPY streamed through pg8000 (the driver the product uses) into a counting sink;
- the Format step, end to end into the local runtime's S3, for every format and compression;
- the Format step's own work without the upload (COPY, framing, sha256; output dropped), so
  what the local S3 costs on the same two cores can be told apart;
- the Python CSV writer fed by a server-side cursor (the reference the COPY path must equal);
- two peers: the seeds' approach (fetch everything, then csv) and pandas read_sql + to_csv.
It prints rows/s, MB/s of output, peak memory, and each rate as a share of the limit's rate.
The limit and each Format step are the fastest of BENCH_REPEAT runs (default 3; the peak is the
largest), so a moment of noise on a shared machine does not decide a ratio; the slow peers run
once. BENCH_FORMATS (comma-separated) measures only some formats. Nothing here asserts a speed:
timings belong in benchmarks, not in tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from dataexport import components
from dataexport.catalog.loader import load_catalog
from dataexport.config import FormatStepConfig, read_config
from dataexport.export_job import ExportJob, ExportStatus, new_job_id, utc_now
from dataexport.formats import FORMATS
from dataexport.formats.compression import Compression
from dataexport.store_keys import staging_prefix
from dataexport_local.postgres import LocalDatabase, seed_demo_data
from dataexport_local.runtime import LocalRuntime
from tests.bench.export_probe import TENANT

ROWS = int(os.environ.get("BENCH_ROWS", "2000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
FORMAT_NAMES = [
    name for name in os.environ.get("BENCH_FORMATS", ",".join(sorted(FORMATS))).split(",") if name
]
MB = 1_000_000


@dataclass(frozen=True)
class Measurement:
    name: str
    rows: int
    bytes: int
    seconds: float
    peak_bytes: int

    def line(self, limit_seconds: float) -> str:
        return (
            f"{self.name:<30} {self.rows / self.seconds:>11,.0f} rows/s "
            f"{self.bytes / MB / self.seconds:>7.1f} MB/s "
            f"{self.peak_bytes / 2**20:>7.1f} MiB peak "
            f"{limit_seconds / self.seconds:>6.2f} of COPY"
        )


@pytest.fixture(scope="module")
def secret(database: LocalDatabase) -> Iterator[str]:
    seed_demo_data(database, ROWS)
    yield json.dumps(database.reader_settings.as_secret())


@pytest.fixture(scope="module")
def runtime(database: LocalDatabase, secret: str) -> Iterator[LocalRuntime]:
    # The bench runs the Format step's code here and in its probes, with that function's
    # environment, as its Lambda workers have it.
    with LocalRuntime(database=database) as started, started.as_function("ExportFormatFunction"):
        yield started


def probe(
    kind: str,
    secret: str,
    arguments: Callable[[], list[str]] = list,
    repeat: int = REPEAT,
    after_run: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """The fastest of `repeat` runs of one measurement (its peak memory: the largest);
    `arguments` gives each run its own (a new job for each Format step), `after_run` is called
    with each run's first argument once it is measured."""
    reports = []
    for _ in range(repeat):
        run_arguments = arguments()
        reports.append(probe_once(kind, secret, *run_arguments))
        if after_run is not None:
            after_run(run_arguments[0])
    fastest = min(reports, key=lambda report: report["seconds"])
    return {**fastest, "peak_bytes": max(report["peak_bytes"] for report in reports)}


def probe_once(kind: str, secret: str, *arguments: str) -> dict[str, float]:
    finished = subprocess.run(
        [sys.executable, "-m", "tests.bench.export_probe", kind, *arguments],
        env={**os.environ, "BENCH_DATABASE_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if finished.returncode != 0:
        # The probe's own traceback (or a native library's abort message) says why.
        raise RuntimeError(
            f"probe {kind} {' '.join(arguments)} exited with {finished.returncode}:\n"
            + finished.stderr[-4000:]
        )
    report: dict[str, float] = json.loads(finished.stdout.strip().splitlines()[-1])
    return report


def measure(
    name: str,
    kind: str,
    secret: str,
    arguments: Callable[[], list[str]] = list,
    repeat: int = REPEAT,
    *,
    after_run: Callable[[str], None] | None = None,
) -> Measurement:
    report = probe(kind, secret, arguments, repeat, after_run)
    return Measurement(
        name,
        int(report["rows"]),
        int(report["bytes"]),
        report["seconds"],
        int(report["peak_bytes"]),
    )


def remove_staging(runtime: LocalRuntime, job_id: str) -> None:
    """What the Upload step does once it joined them: the local S3 (in this process) then
    does not carry every earlier run's output into the next one's measurement. As the operator:
    the Format step's role may write staging objects but not list them."""
    s3 = runtime.boto3_client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=runtime.bucket_name, Prefix=staging_prefix(job_id)
    )
    for page in pages:
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=runtime.bucket_name, Delete={"Objects": keys})


def running_job(format_name: str, compression: Compression) -> str:
    """A job of the tenant's whole usage log, as the Query step leaves it: running."""
    jobs = components.job_store(read_config(FormatStepConfig))
    job = ExportJob(
        id=new_job_id(),
        org_id=TENANT,
        owner_id="usr_bench",
        dataset="usage_logs",
        format=format_name,
        compression=compression.value,
        fields=load_catalog().get("usage_logs").default_field_names(),
        owner_scoped=False,
        file_name=f"bench.{format_name}{compression.suffix}",
        created_at=utc_now(),
    )
    jobs.create(job)
    jobs.transition(job.id, ExportStatus.RUNNING, started_at=utc_now())
    return job.id


def test_export_throughput_against_copy(secret: str, runtime: LocalRuntime) -> None:
    limit_report = probe("copy_devnull", secret)
    through_driver = measure("COPY through pg8000", "copy_pg8000", secret)
    limit = Measurement(
        "COPY TO /dev/null (limit)",
        through_driver.rows,
        through_driver.bytes,
        limit_report["seconds"],
        int(limit_report["peak_bytes"]),
    )
    steps = [
        measure(
            f"Format step {name}{'' if codec is Compression.NONE else ' + ' + codec.value}",
            "format_step",
            secret,
            lambda name=name, codec=codec: [running_job(name, codec)],  # type: ignore[misc]
            after_run=lambda job_id: remove_staging(runtime, job_id),
        )
        for name in FORMAT_NAMES
        for codec in Compression
        if codec is Compression.NONE or not FORMATS[name].compresses_itself
    ]
    without_upload = [
        measure(
            f"Format step {name}, no upload",
            "format_no_upload",
            secret,
            lambda name=name: [name],  # type: ignore[misc]
        )
        for name in FORMAT_NAMES
    ]
    peers = [
        # Each a minute or more at the default size, and far from the limit: one run is enough.
        measure("csv writer (cursor, reference)", "csv_cursor", secret, repeat=1),
        measure("seed: fetch all + csv", "fetch_all", secret, repeat=1),
        measure("pandas read_sql + to_csv", "pandas", secret, repeat=1),
    ]
    if "xlsx" in FORMAT_NAMES:
        # What XLSX is held to: xlsxwriter alone on the same rows, already in memory.
        peers.append(measure("xlsxwriter constant_memory", "xlsxwriter", secret, repeat=1))

    print(f"\n{ROWS:,} usage logs seeded; tenant {TENANT}'s export has {limit.rows:,} rows")
    for measurement in [limit, through_driver, *steps, *without_upload, *peers]:
        print(measurement.line(limit.seconds))
    xlsx = next((step for step in steps if step.name == "Format step xlsx"), None)
    if xlsx is not None:
        print(f"Format step xlsx: {peers[-1].seconds / xlsx.seconds:.2f} of xlsxwriter alone")
    assert all(result.rows == limit.rows for result in [*steps, *without_upload, *peers])
