"""`dataexport-restore`: restore a backup archive into an empty database.

The archive comes from a file or from the download link the API gives
(`GET /v1/backups/{id}/download`); its SHA-256 can be checked before anything is touched. The
restore is one transaction: it either completes or leaves the target as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dataexport.adapters.pg_dump import PostgresTools, check_database
from dataexport.adapters.pg_restore import (
    download_archive,
    file_sha256,
    restore_archive,
    table_row_counts,
    user_relation_count,
)
from dataexport.database_url import DatabaseTarget, parse_database_url
from dataexport.errors import DataExportError


class RestoreRefused(DataExportError):
    """The restore would be unsafe or wrong: a non-empty target, an archive not the one meant."""

    error_code = "RESTORE_REFUSED"


@dataclass(frozen=True)
class RestoreSummary:
    """The target's tables after the restore, with their exact row counts."""

    row_counts: dict[str, int]

    @property
    def tables(self) -> int:
        return len(self.row_counts)

    @property
    def rows(self) -> int:
        return sum(self.row_counts.values())


def restore_backup(
    archive: Path,
    target: DatabaseTarget,
    *,
    tools: PostgresTools,
    expected_sha256: str | None = None,
    allow_non_empty: bool = False,
) -> RestoreSummary:
    """Restore `archive` (pg_dump's custom format) into `target`, which must hold no tables
    unless `allow_non_empty`; with `expected_sha256` the archive must have that digest."""
    if not archive.is_file():
        raise RestoreRefused(f"There is no archive file at {archive}.")
    if expected_sha256 is not None:
        actual = file_sha256(archive)
        if actual != expected_sha256.strip().lower():
            raise RestoreRefused(
                f"The archive's SHA-256 is {actual}, not {expected_sha256}: it is not the backup "
                "meant, or it was damaged. Nothing was restored."
            )
    check_database(target.secret, tls=target.tls)
    existing = user_relation_count(target.secret, tls=target.tls)
    if existing and not allow_non_empty:
        raise RestoreRefused(
            f"The target database already holds {existing} tables, views or sequences. "
            "Restore into a new, empty database (or pass --allow-non-empty)."
        )
    restore_archive(archive, target.secret, tools=tools, tls=target.tls)
    return RestoreSummary(table_row_counts(target.secret, tls=target.tls))


def restore_from_url(
    url: str,
    target: DatabaseTarget,
    *,
    tools: PostgresTools,
    expected_sha256: str | None = None,
    allow_non_empty: bool = False,
) -> RestoreSummary:
    """Download the archive to a temporary file (pg_restore needs to seek in it), restore it
    as restore_backup does, and delete the file."""
    with tempfile.TemporaryDirectory(prefix="dataexport-restore-") as directory:
        archive = Path(directory) / "backup.dump"
        with archive.open("wb") as file:
            download_archive(url, file)
        return restore_backup(
            archive,
            target,
            tools=tools,
            expected_sha256=expected_sha256,
            allow_non_empty=allow_non_empty,
        )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dataexport-restore",
        description="Restore a dataexport backup archive into an empty PostgreSQL database.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="the archive (.dump) on disk")
    source.add_argument("--url", help="the download_url that GET /v1/backups/{id}/download answers")
    parser.add_argument(
        "--sha256", help="the backup's sha256 (GET /v1/backups/{id}): checked first"
    )
    parser.add_argument(
        "--database-url",
        required=True,
        help="postgresql://user[:password]@host:port/db (?host=/socket/dir, ?sslmode=...); "
        "the password may come from PGPASSWORD instead",
    )
    parser.add_argument(
        "--allow-non-empty",
        action="store_true",
        help="restore even if the target already holds tables",
    )
    parser.add_argument(
        "--bin-dir", help="the directory of pg_restore (default: the one on the PATH)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: restore, print a one-line summary; 1 and a message on failure."""
    arguments = _arguments(argv)
    tools = PostgresTools(arguments.bin_dir)
    try:
        target = parse_database_url(arguments.database_url, password=os.environ.get("PGPASSWORD"))
        if arguments.url:
            summary = restore_from_url(
                arguments.url,
                target,
                tools=tools,
                expected_sha256=arguments.sha256,
                allow_non_empty=arguments.allow_non_empty,
            )
        else:
            summary = restore_backup(
                arguments.file,
                target,
                tools=tools,
                expected_sha256=arguments.sha256,
                allow_non_empty=arguments.allow_non_empty,
            )
    except DataExportError as exc:
        print(f"dataexport-restore: {exc.message}", file=sys.stderr)
        return 1
    print(f"Restored {summary.tables} tables, {summary.rows:,} rows into {target.describe()}.")
    return 0
