"""dataexport-restore against the embedded PostgreSQL: a backup comes back row for row, and a
restore that would be wrong is refused before anything is touched."""

from __future__ import annotations

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dataexport.adapters.pg_dump import PostgresTools, dump_database
from dataexport.adapters.pg_restore import RestoreFailed, table_row_counts
from dataexport.adapters.postgres import DatabaseSecret, TlsMode
from dataexport.backup import BackupOptions
from dataexport.database_url import DatabaseTarget
from dataexport.restore import RestoreRefused, main, restore_backup, restore_from_url
from tests.integration.conftest import BACKUP_SOURCE_ROWS, PgEndpoint


def target_in(socket_dir: str, dbname: str) -> DatabaseTarget:
    secret = DatabaseSecret(
        host=socket_dir, port=5432, username="postgres", password="", dbname=dbname
    )
    return DatabaseTarget(secret, TlsMode.VERIFY)


@pytest.fixture(scope="module")
def backup_archive(
    pg_socket_dir: str,
    backup_source_database: str,
    postgres_tools: PostgresTools,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The source database dumped as the backup task dumps it, sales.audit_log's rows left
    out, into memory and then a file."""
    written = bytearray()
    dump_database(
        target_in(pg_socket_dir, backup_source_database).secret,
        BackupOptions(exclude_table_data=["sales.audit_log"]),
        written.extend,
        tools=postgres_tools,
    )
    archive = tmp_path_factory.mktemp("backup") / "backup.dump"
    archive.write_bytes(bytes(written))
    return archive


def test_a_backup_restores_into_an_pg_empty_database_row_for_row(
    pg_socket_dir: str, backup_archive: Path, pg_empty_database: str, postgres_tools: PostgresTools
) -> None:
    # given a backup of four tables, one without its rows, and a new empty database
    target = target_in(pg_socket_dir, pg_empty_database)

    # when the backup is restored into it
    summary = restore_backup(backup_archive, target, tools=postgres_tools)

    # then every table is back with its rows; the excluded one is there, empty
    expected = {**BACKUP_SOURCE_ROWS, "sales.audit_log": 0}
    assert summary.row_counts == expected
    assert table_row_counts(target.secret) == expected
    assert (summary.tables, summary.rows) == (4, sum(expected.values()))


def test_the_command_checks_the_sha256_and_prints_a_summary(
    pg_socket_dir: str,
    backup_archive: Path,
    pg_empty_database: str,
    postgres_tools: PostgresTools,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given the backup's digest, as GET /v1/backups/{id} shows it
    digest = hashlib.sha256(backup_archive.read_bytes()).hexdigest()
    url = f"postgresql://postgres@/{pg_empty_database}?host={pg_socket_dir}"

    # when an operator runs dataexport-restore
    code = main(
        [
            "--file",
            str(backup_archive),
            "--sha256",
            digest.upper(),
            "--database-url",
            url,
            "--bin-dir",
            str(postgres_tools.bin_dir),
        ]
    )

    # then it succeeds with one line saying what was restored
    assert code == 0
    assert capsys.readouterr().out.strip() == (
        f"Restored 4 tables, {sum(BACKUP_SOURCE_ROWS.values()) - 30:,} rows into "
        f"postgresql://postgres@{pg_socket_dir}:5432/{pg_empty_database}."
    )


def test_a_wrong_sha256_is_refused_before_the_target_is_touched(
    pg_socket_dir: str,
    backup_archive: Path,
    pg_empty_database: str,
    postgres_tools: PostgresTools,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://postgres@/{pg_empty_database}?host={pg_socket_dir}"

    code = main(["--file", str(backup_archive), "--sha256", "0" * 64, "--database-url", url])

    assert code == 1
    assert "SHA-256" in capsys.readouterr().err
    assert table_row_counts(target_in(pg_socket_dir, pg_empty_database).secret) == {}


def test_a_database_that_has_tables_is_refused(
    pg_socket_dir: str,
    backup_archive: Path,
    backup_source_database: str,
    postgres_tools: PostgresTools,
) -> None:
    # given a target that already holds tables (the source itself)
    target = target_in(pg_socket_dir, backup_source_database)

    # when the backup is restored into it, then nothing happens but a clear refusal
    with pytest.raises(RestoreRefused, match="already holds"):
        restore_backup(backup_archive, target, tools=postgres_tools)
    assert table_row_counts(target.secret) == BACKUP_SOURCE_ROWS


def test_a_restore_that_fails_leaves_nothing_behind(
    pg_socket_dir: str,
    pg_endpoint: PgEndpoint,
    backup_archive: Path,
    pg_empty_database: str,
    postgres_tools: PostgresTools,
) -> None:
    # given a non-empty target, allowed, whose one table collides with the archive's
    connection = pg_endpoint.connect(database=pg_empty_database)
    connection.run("CREATE SCHEMA reporting")
    connection.run("CREATE TABLE reporting.daily (clash int)")
    connection.close()
    target = target_in(pg_socket_dir, pg_empty_database)

    # when the restore runs into the clash, then it fails and rolls everything back
    with pytest.raises(RestoreFailed, match="nothing was restored"):
        restore_backup(backup_archive, target, tools=postgres_tools, allow_non_empty=True)
    assert table_row_counts(target.secret) == {"reporting.daily": 0}


def test_an_archive_is_restored_from_its_download_link(
    pg_socket_dir: str, backup_archive: Path, pg_empty_database: str, postgres_tools: PostgresTools
) -> None:
    # given the archive served over HTTP, as a presigned URL serves it
    handler = partial(SimpleHTTPRequestHandler, directory=str(backup_archive.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{backup_archive.name}?X-Amz-Signature=x"
    try:
        # when it is restored from the URL
        summary = restore_from_url(
            url,
            target_in(pg_socket_dir, pg_empty_database),
            tools=postgres_tools,
            expected_sha256=hashlib.sha256(backup_archive.read_bytes()).hexdigest(),
        )
    finally:
        server.shutdown()
        server.server_close()

    # then it is whole
    assert summary.row_counts["sales.orders"] == BACKUP_SOURCE_ROWS["sales.orders"]
