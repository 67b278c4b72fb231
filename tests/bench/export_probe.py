"""One benchmark measurement in a process of its own: time, output size and peak memory.

    python -m tests.bench.export_probe KIND [JOB_ID]

KIND is one of:
- `copy_devnull`: the limit, `psql -c "\\copy (query) TO '/dev/null'"` (psql's own peak memory);
- `copy_pg8000`: the same COPY streamed through pg8000 into a counting sink;
- `format_step`: the Format step for JOB_ID (a running job), into the local runtime's S3, as
  a warm Lambda runs it (clients created before the clock starts);
- `format_no_upload`: the Format step's own work for format JOB_ID (COPY, framing, sha256), its
  output dropped rather than uploaded;
- `csv_cursor`: the Python CSV writer fed by a server-side cursor (the reference);
- `fetch_all`: the seeds' approach, every row in memory, then Python's csv module;
- `pandas`: pandas `read_sql` then `to_csv`;
- `xlsxwriter`: xlsxwriter's constant-memory mode alone, writing the XLSX export's rows (read
  from PostgreSQL and put in the export's time zone before the clock starts) to a file.
The database comes from BENCH_DATABASE_SECRET (RDS-shaped JSON); `format_step` reads the local
runtime's environment. Prints one JSON line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pg8000.dbapi
import pg8000.native

from dataexport import components
from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.catalog.loader import load_catalog
from dataexport.config import FormatStepConfig, read_config
from dataexport.export_request import ExportRequest, resolve_export
from dataexport.query_builder import BoundQuery, RowScope
from dataexport.row_sources import PostgresRows
from dataexport.services.export_steps import FormatOutcome
from tests.e2e.format_step_process import run_format_step
from tests.process_memory import peak_rss_bytes

TENANT = "org_acme"


class CountingSink:
    """Where benchmark output goes: counted, then dropped, like /dev/null."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)


def connect(secret: DatabaseSecret) -> pg8000.native.Connection:
    if secret.host.startswith("/"):
        return pg8000.native.Connection(
            secret.username,
            database=secret.dbname,
            unix_sock=f"{secret.host}/.s.PGSQL.{secret.port}",
        )
    return pg8000.native.Connection(
        secret.username,
        password=secret.password or None,
        database=secret.dbname,
        host=secret.host,
        port=secret.port,
    )


def literal_query(secret: DatabaseSecret, query: BoundQuery) -> str:
    """The export's query with its one value (the tenant) quoted by the server: COPY and psql's
    \\copy take no parameters."""
    connection = connect(secret)
    try:
        literal = connection.run("SELECT quote_literal(CAST(:v AS text))", v=TENANT)[0][0]
    finally:
        connection.close()
    return query.sql.replace(":p0", str(literal))


def psql_binary() -> str:
    """The embedded server's psql (same version as the server), else the one on PATH."""
    import pgserver  # noqa: PLC0415 - the dev-only package, needed by this probe alone

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    found = str(bundled) if bundled.exists() else shutil.which("psql")
    if found is None:
        raise RuntimeError("psql is needed for the COPY limit")
    return found


def copy_to_devnull(secret: DatabaseSecret, query: BoundQuery) -> dict[str, Any]:
    """psql's `\\copy ... TO '/dev/null'`: PostgreSQL producing the CSV, libpq receiving it.
    Rows and bytes are those of `copy_pg8000` (the same query and output)."""
    select = literal_query(secret, query)
    command = [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", secret.dbname]
    command += ["-U", secret.username, "-h", secret.host, "-p", str(secret.port)]
    command += ["-c", f"\\copy ({select}) TO '/dev/null' (FORMAT csv, HEADER)"]
    started = time.perf_counter()
    subprocess.run(command, env={**os.environ, "PGPASSWORD": secret.password}, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"rows": None, "bytes": None, "seconds": seconds, "peak_bytes": peak}


def copy_through_pg8000(secret: DatabaseSecret, query: BoundQuery) -> tuple[int, int]:
    sink = CountingSink()
    select = literal_query(secret, query)
    connection = connect(secret)
    try:
        connection.run(f"COPY ({select}) TO STDOUT (FORMAT csv, HEADER)", stream=sink)
        rows = connection.row_count
    finally:
        connection.close()
    return int(rows), sink.bytes


def fetch_all_then_write(secret: DatabaseSecret, query: BoundQuery) -> tuple[int, int]:
    """The seeds' way: every row in memory, then the csv module."""
    connection = connect(secret)
    try:
        rows: list[list[Any]] = connection.run(query.sql, **query.params)
    finally:
        connection.close()
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return len(rows), len(buffer.getvalue().encode())


def pandas_read_sql_to_csv(secret: DatabaseSecret, query: BoundQuery) -> tuple[int, int]:
    """What a data scientist would write: pandas.read_sql, then DataFrame.to_csv."""
    import pandas  # noqa: PLC0415 - a benchmark peer, not a dependency of the product

    connection = pg8000.dbapi.connect(
        secret.username,
        database=secret.dbname,
        unix_sock=f"{secret.host}/.s.PGSQL.{secret.port}" if secret.host.startswith("/") else None,
        host=None if secret.host.startswith("/") else secret.host,
        port=secret.port,
        password=secret.password or None,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas prefers SQLAlchemy; a DB-API connection works
            frame = pandas.read_sql(literal_query(secret, query), connection)
    finally:
        connection.close()
    with tempfile.NamedTemporaryFile(suffix=".csv") as output:
        frame.to_csv(output.name, index=False)
        return len(frame), Path(output.name).stat().st_size


def csv_writer_from_cursor(secret: DatabaseSecret, query: BoundQuery) -> tuple[int, int]:
    """The Python CSV writer fed by a server-side cursor: the reference rendering."""
    export = resolve_export(ExportRequest(dataset="usage_logs", format="csv"), load_catalog())
    sink = CountingSink()
    writer = export.writer(export.columns, export.options, sink)
    writer.open()
    reader = PostgresReader(secret, statement_timeout_seconds=3600)
    writer.write_rows(row for batch in reader.stream(query) for row in batch)
    return writer.close().rows, sink.bytes


class HashingSink(CountingSink):
    """Output hashed like the sink hashes it, then dropped: the Format step without S3."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        super().write(data)
        self.digest.update(data)


def format_without_upload(secret: DatabaseSecret, format_name: str) -> tuple[int, int]:
    """The Format step's own work (COPY plan, the writer's framing, sha256) with the output
    dropped instead of uploaded: what the step costs apart from the local S3."""
    export = resolve_export(ExportRequest(dataset="usage_logs", format=format_name), load_catalog())
    sink = HashingSink()
    writer = export.writer(export.columns, export.options, sink)
    writer.open()
    rows = PostgresRows(PostgresReader(secret, statement_timeout_seconds=3600))
    rows.write(export, RowScope(org_id=TENANT), writer, lambda done: None)
    return writer.close().rows, sink.bytes


def xlsx_rows(secret: DatabaseSecret) -> list[list[Any]]:
    """The rows an XLSX export writes, as xlsxwriter takes them: times local and naive."""
    export = resolve_export(ExportRequest(dataset="usage_logs", format="xlsx"), load_catalog())
    reader = PostgresReader(secret, statement_timeout_seconds=3600)
    zone = export.options.timezone
    return [
        [
            value.astimezone(zone).replace(tzinfo=None) if isinstance(value, datetime) else value
            for value in row
        ]
        for batch in PostgresRows(reader).stream(export, RowScope(org_id=TENANT))
        for row in batch
    ]


def xlsxwriter_alone(rows: list[list[Any]]) -> tuple[int, int]:
    """xlsxwriter's constant-memory mode writing `rows` under a bold header, to a file."""
    import xlsxwriter  # noqa: PLC0415 - a benchmark peer, not a dependency of the product

    export = resolve_export(ExportRequest(dataset="usage_logs", format="xlsx"), load_catalog())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "peer.xlsx"
        workbook = xlsxwriter.Workbook(
            str(path), {"constant_memory": True, "default_date_format": "yyyy-mm-dd hh:mm:ss"}
        )
        sheet = workbook.add_worksheet()
        sheet.write_row(
            0, 0, [column.label for column in export.columns], workbook.add_format({"bold": True})
        )
        sheet.freeze_panes(1, 0)
        for number, row in enumerate(rows, start=1):
            sheet.write_row(number, 0, row)
        workbook.close()
        return len(rows), path.stat().st_size


def summary(part: FormatOutcome) -> tuple[int, int]:
    return part.rows, part.bytes


def warm_up_format_step(job_id: str) -> None:
    """What a warm Lambda already holds before it is invoked: its clients (and the service
    descriptions they load), the catalog, the stores."""
    config = read_config(FormatStepConfig)
    components.job_store(config).get(job_id)
    components.object_store(config)
    components.catalog(config)
    components.checkpoint_store(config)
    components.row_sources(config)


def main(kind: str, job_id: str | None) -> None:
    secret = DatabaseSecret.from_secret_string(os.environ["BENCH_DATABASE_SECRET"])
    export = resolve_export(ExportRequest(dataset="usage_logs", format="csv"), load_catalog())
    query = export.select(RowScope(org_id=TENANT))
    if kind == "copy_devnull":
        print(json.dumps(copy_to_devnull(secret, query)))
        return
    runs = {
        "copy_pg8000": lambda: copy_through_pg8000(secret, query),
        "fetch_all": lambda: fetch_all_then_write(secret, query),
        "csv_cursor": lambda: csv_writer_from_cursor(secret, query),
        "pandas": lambda: pandas_read_sql_to_csv(secret, query),
        "format_step": lambda: summary(run_format_step(str(job_id))),
        "format_no_upload": lambda: format_without_upload(secret, str(job_id)),
    }
    if kind == "format_step":
        warm_up_format_step(str(job_id))
    if kind == "xlsxwriter":
        prepared = xlsx_rows(secret)
        runs["xlsxwriter"] = lambda: xlsxwriter_alone(prepared)
    started = time.perf_counter()
    rows, size = runs[kind]()
    seconds = time.perf_counter() - started
    report = {"rows": rows, "bytes": size, "seconds": seconds, "peak_bytes": peak_rss_bytes()}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
