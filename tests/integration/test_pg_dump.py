"""pg_dump against the embedded PostgreSQL: what the archive holds, and every way it can fail.

Each failure test also checks that pg_dump and pg_restore were reaped: this process has no
child left (not even a zombie) and no more open files than before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pg8000.native
import psutil
import pytest

from dataexport.adapters.pg_dump import (
    APPLICATION_NAME,
    DumpFailed,
    DumpFailureCode,
    DumpOutcome,
    PostgresTools,
    dump_database,
    unmatched_objects,
)
from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.backup import BackupOptions
from tests.integration.conftest import PgEndpoint

DEADLINE_SECONDS = 30.0


def secret_for(socket_dir: str, dbname: str, username: str = "postgres") -> DatabaseSecret:
    return DatabaseSecret(host=socket_dir, port=5432, username=username, password="", dbname=dbname)


class SinkBroken(Exception):
    """What a failing S3 upload would raise."""


@contextmanager
def no_children_left() -> Iterator[None]:
    """Assert that the block leaves no child process and no open file behind."""
    me = psutil.Process()
    children_before = {child.pid for child in me.children()}
    files_before = me.num_fds()
    yield
    deadline = time.monotonic() + DEADLINE_SECONDS
    while {child.pid for child in me.children()} != children_before:
        assert time.monotonic() < deadline, "a child process was left behind"
        time.sleep(0.05)
    assert me.num_fds() <= files_before


def wait_for_blocked_pg_dump(admin: pg8000.native.Connection) -> int:
    """pg_dump's backend pid, once it waits for a lock."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        rows = admin.run(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
            "AND wait_event_type = 'Lock'",
            name=APPLICATION_NAME,
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.05)
    raise AssertionError("pg_dump never waited for the lock")


@dataclass(frozen=True)
class BlockedDump:
    admin: pg8000.native.Connection  # a connection of the test's own, to look around with
    pid: int  # pg_dump's backend
    outcome: Future[DumpOutcome]


@contextmanager
def blocked_dump(
    pg_endpoint: PgEndpoint,
    database: str,
    secret: DatabaseSecret,
    tools: PostgresTools,
    should_stop: Callable[[], bool],
) -> Iterator[BlockedDump]:
    """A dump running in a thread, its pg_dump waiting for sales.orders, which another session
    holds in ACCESS EXCLUSIVE mode; on leaving, the lock is released and no child is left."""
    holder = pg_endpoint.connect(database=database)
    admin = pg_endpoint.connect(database=database)
    with no_children_left(), ThreadPoolExecutor(max_workers=1) as pool:
        try:
            holder.run("BEGIN")
            holder.run("LOCK TABLE sales.orders IN ACCESS EXCLUSIVE MODE")
            outcome = pool.submit(
                dump_database,
                secret,
                BackupOptions(),
                lambda chunk: None,
                tools=tools,
                should_stop=should_stop,
                poll_seconds=0.1,
            )
            yield BlockedDump(admin, wait_for_blocked_pg_dump(admin), outcome)
        finally:
            holder.run("ROLLBACK")
            holder.close()
            admin.close()


def test_a_dump_counts_its_entries_and_leaves_out_excluded_rows(
    pg_socket_dir: str, backup_source_database: str, postgres_tools: PostgresTools
) -> None:
    # given a database with four tables in three schemas, one of them logs
    secret = secret_for(pg_socket_dir, backup_source_database)
    chunks: list[bytes] = []

    # when it is dumped without the log's rows
    with no_children_left():
        outcome = dump_database(
            secret,
            BackupOptions(exclude_table_data=["sales.audit_log"]),
            chunks.append,
            tools=postgres_tools,
        )

    # then the archive is pg_dump's custom format, written in chunks of about a MiB
    archive = b"".join(chunks)
    assert archive.startswith(b"PGDMP")
    assert len(chunks) > 1
    assert all(len(chunk) == 1024 * 1024 for chunk in chunks[:-1])
    # and three tables' rows are in it: the log's structure only
    assert outcome.table_data_entries == 3
    assert outcome.toc_entries > outcome.table_data_entries
    assert outcome.server_version.startswith("16.")
    assert outcome.pg_dump_version == postgres_tools.pg_dump_version
    assert outcome.dump_seconds > 0


@pytest.mark.parametrize(
    ("options", "tables_with_rows"),
    [
        (BackupOptions(schemas=["reporting"]), 1),
        (BackupOptions(exclude_schemas=["sales"]), 2),
        (BackupOptions(tables=["public.customers", "reporting.*"]), 2),
        (BackupOptions(exclude_tables=["sales.orders"]), 3),
    ],
)
def test_the_selection_options_reach_pg_dump(
    pg_socket_dir: str,
    backup_source_database: str,
    postgres_tools: PostgresTools,
    options: BackupOptions,
    tables_with_rows: int,
) -> None:
    # given the four-table database; when only part of it is dumped
    outcome = dump_database(
        secret_for(pg_socket_dir, backup_source_database),
        options,
        lambda chunk: None,
        tools=postgres_tools,
    )

    # then only the chosen tables' rows are in the archive
    assert outcome.table_data_entries == tables_with_rows


def test_names_are_matched_against_the_catalog_as_pg_dump_matches_them(
    pg_socket_dir: str, backup_source_database: str
) -> None:
    # given the four-table database read through the API's own reader
    reader = PostgresReader(secret_for(pg_socket_dir, backup_source_database), 30)

    # when names that exist, in every spelling pg_dump accepts, are checked
    found = BackupOptions(
        schemas=["sales", "report*", "PUBLIC"],
        tables=["customers", "sales.orders", "sales.*", "SALES.Orders", "*.daily"],
        exclude_table_data=["sales.audit_log"],
    )
    # then nothing is missing
    assert unmatched_objects(reader, found) == []

    # and names that match nothing are reported with the field that gave them, in order
    # ("orders" is not on the search path without its schema, as pg_dump reads -t orders)
    missing = BackupOptions(
        schemas=["sales", "nowhere"],
        tables=["orders", "sales.nope", "customers"],
        exclude_tables=["sales_orders"],
        exclude_table_data=["sales.audit*", "no_log"],
    )
    assert [(item.field, item.pattern) for item in unmatched_objects(reader, missing)] == [
        ("schemas[1]", "nowhere"),
        ("tables[0]", "orders"),
        ("tables[1]", "sales.nope"),
        ("exclude_tables[0]", "sales_orders"),
        ("exclude_table_data[1]", "no_log"),
    ]


def test_a_failed_pg_dump_reports_its_own_reason(
    pg_socket_dir: str, backup_source_database: str, postgres_tools: PostgresTools
) -> None:
    # given a selection that matches no table (a nightly option the API never checked)
    secret = secret_for(pg_socket_dir, backup_source_database)

    # when it is dumped
    with no_children_left(), pytest.raises(DumpFailed) as raised:
        dump_database(
            secret, BackupOptions(tables=["gone_table"]), lambda chunk: None, tools=postgres_tools
        )

    # then the failure says what pg_dump said, and nothing of where the database is
    assert raised.value.code is DumpFailureCode.DUMP_FAILED
    message = raised.value.backup_error().message
    assert "no matching tables were found" in message
    assert pg_socket_dir not in message


def test_an_unknown_role_is_an_authentication_failure(
    pg_socket_dir: str, backup_source_database: str, postgres_tools: PostgresTools
) -> None:
    # given credentials of a role the server does not have (it trusts local connections, so
    # a wrong password alone would not be refused)
    secret = secret_for(pg_socket_dir, backup_source_database, username="nobody_here")

    # when a dump is attempted
    with no_children_left(), pytest.raises(DumpFailed) as raised:
        dump_database(secret, BackupOptions(), lambda chunk: None, tools=postgres_tools)

    # then it is refused as such, and the operator's message names no user or host
    assert raised.value.code is DumpFailureCode.AUTHENTICATION_FAILED
    error = raised.value.backup_error()
    assert error.code == "AUTHENTICATION_FAILED"
    assert "nobody_here" not in error.message
    assert pg_socket_dir not in error.message


def test_a_missing_database_is_database_not_found(
    pg_socket_dir: str, postgres_tools: PostgresTools
) -> None:
    secret = secret_for(pg_socket_dir, "no_such_database")

    with pytest.raises(DumpFailed) as raised:
        dump_database(secret, BackupOptions(), lambda chunk: None, tools=postgres_tools)

    assert raised.value.code is DumpFailureCode.DATABASE_NOT_FOUND
    assert "no_such_database" not in raised.value.message


def test_no_server_is_a_connection_failure(tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = secret_for(str(tmp_path_factory.mktemp("nothing")), "postgres")

    with pytest.raises(DumpFailed) as raised:
        dump_database(secret, BackupOptions(), lambda chunk: None, tools=PostgresTools())

    assert raised.value.code is DumpFailureCode.CONNECTION_FAILED


def test_a_backend_terminated_mid_dump_fails_the_dump(
    pg_socket_dir: str,
    pg_endpoint: PgEndpoint,
    backup_source_database: str,
    postgres_tools: PostgresTools,
) -> None:
    # given pg_dump blocked behind another session's lock on a table
    secret = secret_for(pg_socket_dir, backup_source_database)
    deadline = time.monotonic() + DEADLINE_SECONDS  # a safety net, should the test go wrong
    with blocked_dump(
        pg_endpoint,
        backup_source_database,
        secret,
        postgres_tools,
        should_stop=lambda: time.monotonic() > deadline,
    ) as dump:
        # when its backend is terminated
        dump.admin.run("SELECT pg_terminate_backend(:pid)", pid=dump.pid)
        error = dump.outcome.exception(timeout=DEADLINE_SECONDS)

    # then the dump fails as a failed dump, not a stop (and both tools were reaped), saying
    # what pg_dump said without the socket it connected through
    assert isinstance(error, DumpFailed)
    assert error.code is DumpFailureCode.DUMP_FAILED
    assert error.message.startswith("pg_dump stopped with an error before the dump was complete: ")
    assert pg_socket_dir not in error.message


def test_a_stop_request_kills_a_blocked_pg_dump_quickly(
    pg_socket_dir: str,
    pg_endpoint: PgEndpoint,
    backup_source_database: str,
    postgres_tools: PostgresTools,
) -> None:
    # given pg_dump blocked behind a lock, sending nothing
    secret = secret_for(pg_socket_dir, backup_source_database)
    stop_requested_at: list[float] = []
    with blocked_dump(
        pg_endpoint,
        backup_source_database,
        secret,
        postgres_tools,
        should_stop=lambda: bool(stop_requested_at),
    ) as dump:
        # when the caller asks it to stop
        stop_requested_at.append(time.monotonic())
        error = dump.outcome.exception(timeout=DEADLINE_SECONDS)
        stopped_after = time.monotonic() - stop_requested_at[0]

    # then it stops within a poll or two, as STOPPED
    assert isinstance(error, DumpFailed)
    assert error.code is DumpFailureCode.STOPPED
    assert stopped_after < 2.0


def test_a_failing_writer_stops_the_dump_and_its_error_propagates(
    pg_socket_dir: str, backup_source_database: str, postgres_tools: PostgresTools
) -> None:
    # given a sink that breaks on the first chunk, while pg_dump still has MiBs to send
    def write(chunk: bytes) -> None:
        raise SinkBroken("the upload failed")

    # when the database is dumped into it
    with no_children_left(), pytest.raises(SinkBroken):
        dump_database(
            secret_for(pg_socket_dir, backup_source_database),
            BackupOptions(),
            write,
            tools=postgres_tools,
        )

    # then the sink's own error reached the caller (and both tools were reaped)
