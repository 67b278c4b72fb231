"""Restoring a backup archive: `pg_restore` into a database, and a look at what it holds.

pg_restore runs as a child process, never through a shell, with the target's credentials in
its environment only. Its messages go to this process's stderr: the operator running the
restore is the one who needs them.
"""

from __future__ import annotations

import hashlib
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Final
from urllib.parse import urlsplit

import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

from dataexport.adapters.pg_dump import PostgresTools, client_environment
from dataexport.adapters.postgres import DatabaseSecret, TlsMode, connection_options
from dataexport.errors import DataExportError

APPLICATION_NAME: Final = "dataexport-restore"
DOWNLOAD_CHUNK_BYTES: Final = 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS: Final = 60
# Relations an archive's own would collide with: tables, partitioned tables, views,
# materialized views, foreign tables and sequences outside PostgreSQL's own schemas.
_USER_RELATIONS: Final = """
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""
# Each table's name quoted by the server itself (format %I), so the count query uses names
# from the catalog only.
_USER_TABLES: Final = """
    SELECT format('%I.%I', n.nspname, c.relname), n.nspname || '.' || c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    ORDER BY 2
"""


class RestoreFailed(DataExportError):
    """pg_restore did not complete; with --single-transaction nothing of it was kept."""

    error_code = "RESTORE_FAILED"


class DownloadFailed(DataExportError):
    error_code = "DOWNLOAD_FAILED"


def user_relation_count(target: DatabaseSecret, *, tls: TlsMode = TlsMode.VERIFY) -> int:
    """How many tables, views and sequences the target holds outside the system schemas."""
    with _connection(target, tls) as connection:
        return int(connection.run(_USER_RELATIONS)[0][0])


def table_row_counts(target: DatabaseSecret, *, tls: TlsMode = TlsMode.VERIFY) -> dict[str, int]:
    """Every user table's exact row count, by "schema.table" (a partitioned table counts its
    partitions' rows)."""
    with _connection(target, tls) as connection:
        return {
            name: int(connection.run(f"SELECT count(*) FROM {quoted}")[0][0])
            for quoted, name in connection.run(_USER_TABLES)
        }


@contextmanager
def _connection(target: DatabaseSecret, tls: TlsMode) -> Iterator[pg8000.native.Connection]:
    try:
        connection = pg8000.native.Connection(
            **connection_options(target, application_name=APPLICATION_NAME, tls=tls)
        )
    except (DatabaseError, InterfaceError, OSError):
        raise RestoreFailed("The target database could not be reached.") from None
    try:
        yield connection
    except DatabaseError as exc:
        detail = exc.args[0] if exc.args else {}
        state = detail.get("C", "?") if isinstance(detail, dict) else "?"
        raise RestoreFailed(f"The target database refused a query (SQLSTATE {state}).") from None
    except (InterfaceError, OSError):
        raise RestoreFailed("The connection to the target database broke.") from None
    finally:
        with suppress(InterfaceError, OSError):  # a connection already gone needs no goodbye
            connection.close()


def restore_archive(
    archive: Path, target: DatabaseSecret, *, tools: PostgresTools, tls: TlsMode = TlsMode.VERIFY
) -> None:
    """Restore a custom-format archive into `target` in one transaction, without the
    archive's owners and grants; RestoreFailed if pg_restore reports any error."""
    environment = client_environment(target, application_name=APPLICATION_NAME, tls=tls)
    arguments = [
        tools.pg_restore,
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        "--no-password",
        # An empty URI: every connection setting comes from the PG* environment.
        "--dbname=postgresql://",
        str(archive),
    ]
    # A fixed program path and no shell; pg_restore's messages go straight to the operator.
    finished = subprocess.run(  # noqa: S603
        arguments, env=environment, stdin=subprocess.DEVNULL, check=False
    )
    if finished.returncode != 0:
        raise RestoreFailed(
            f"pg_restore failed (exit status {finished.returncode}); nothing was restored."
        )


def download_archive(url: str, destination: IO[bytes]) -> int:
    """Stream the archive a (presigned) URL answers into `destination`; returns its size.
    The URL is never logged or shown: its query string is a credential."""
    if urlsplit(url).scheme not in ("https", "http"):
        raise DownloadFailed("The download URL must be an https:// URL.")
    size = 0
    try:
        # The scheme is checked above: no file:// or other opener.
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as answer:  # noqa: S310
            while chunk := answer.read(DOWNLOAD_CHUNK_BYTES):
                destination.write(chunk)
                size += len(chunk)
    except (OSError, ValueError) as exc:
        # urllib's HTTPError and URLError are OSErrors; their text may repeat the URL.
        status = getattr(exc, "code", None)
        reason = f"HTTP {status}" if status else type(exc).__name__
        raise DownloadFailed(
            f"The archive could not be downloaded ({reason}); a download link expires, "
            "so ask GET /v1/backups/{id}/download for a new one."
        ) from None
    return size


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex, read a MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
