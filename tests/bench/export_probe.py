"""One benchmark measurement in a process of its own: time, output size and peak memory.

    python -m tests.bench.export_probe KIND
KIND is `copy`, `fetch_all` or a format name. The database comes from BENCH_DATABASE_SECRET
(the RDS-shaped secret JSON of the embedded or DATABASE_URL server). Prints one JSON line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from typing import Any

import pg8000.native

from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.catalog.loader import load_catalog
from dataexport.export_request import ExportRequest, resolve_export
from dataexport.formats import FORMATS
from dataexport.formats.writer import PartPosition
from dataexport.query_builder import BoundQuery, RowScope
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


def copy_to_devnull(secret: DatabaseSecret, query: BoundQuery) -> tuple[int, int]:
    """The limit: PostgreSQL formats the CSV itself; COPY takes no parameters, so the one
    value (the tenant) is quoted by the server."""
    sink = CountingSink()
    connection = connect(secret)
    try:
        literal = connection.run("SELECT quote_literal(CAST(:v AS text))", v=TENANT)[0][0]
        select = query.sql.replace(":p0", literal)
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


def main(kind: str) -> None:
    secret = DatabaseSecret.from_secret_string(os.environ["BENCH_DATABASE_SECRET"])
    export = resolve_export(ExportRequest(dataset="usage_logs", format="csv"), load_catalog())
    query = export.select(RowScope(org_id=TENANT))
    started = time.perf_counter()
    if kind == "copy":
        rows, size = copy_to_devnull(secret, query)
    elif kind == "fetch_all":
        rows, size = fetch_all_then_write(secret, query)
    else:
        sink = CountingSink()
        reader = PostgresReader(secret, statement_timeout_seconds=3600)
        writer = FORMATS[kind](export.columns, export.options, sink, PartPosition(True, True))
        writer.open()
        writer.write_rows(row for batch in reader.stream(query) for row in batch)
        rows, size = writer.close().rows, sink.bytes
    seconds = time.perf_counter() - started
    report = {"rows": rows, "bytes": size, "seconds": seconds, "peak_bytes": peak_rss_bytes()}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
