"""Export throughput and memory against PostgreSQL's own COPY, measured in one run.

`make bench` (BENCH_ROWS, default 2,000,000) loads the demo usage logs, then runs, each in a
process of its own (so peak memory is that process's, read from VmHWM):
- the limit: `COPY (SELECT ...) TO STDOUT (FORMAT csv)` streamed to /dev/null through pg8000;
- each format's writer fed by the export's server-side cursor, as the Format step runs it;
- the seeds' approach: fetch every row first, then write CSV with the csv module.
It prints rows/s, MB/s, peak memory and each time's ratio to the COPY limit. Nothing here
asserts a speed: timings belong in benchmarks, not in tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dataexport.formats import FORMATS
from dataexport_local.postgres import LocalDatabase, seed_demo_data

ROWS = int(os.environ.get("BENCH_ROWS", "2000000"))
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
            f"{self.name:<26} {self.rows / self.seconds:>11,.0f} rows/s "
            f"{self.bytes / MB / self.seconds:>7.1f} MB/s "
            f"{self.peak_bytes / 2**20:>7.1f} MiB peak "
            f"{self.seconds / limit_seconds:>6.2f}x COPY"
        )


@pytest.fixture(scope="module")
def secret(database: LocalDatabase) -> Iterator[str]:
    seed_demo_data(database, ROWS)
    yield json.dumps(database.reader_settings.as_secret())


def measure(name: str, kind: str, secret: str) -> Measurement:
    finished = subprocess.run(
        [sys.executable, "-m", "tests.bench.export_probe", kind],
        env={**os.environ, "BENCH_DATABASE_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    return Measurement(
        name, report["rows"], report["bytes"], report["seconds"], report["peak_bytes"]
    )


def test_export_throughput_against_copy(secret: str) -> None:
    limit = measure("COPY TO STDOUT (limit)", "copy", secret)
    results = [measure(f"{name} writer (cursor)", name, secret) for name in sorted(FORMATS)]
    results.append(measure("seed: fetch all + csv", "fetch_all", secret))

    print(f"\n{ROWS:,} usage logs seeded; tenant org_acme's export has {limit.rows:,} rows")
    for measurement in [limit, *results]:
        print(measurement.line(limit.seconds))
    assert all(result.rows == limit.rows for result in results)
