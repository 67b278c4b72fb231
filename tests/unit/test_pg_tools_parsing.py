"""What the backup and restore adapters read and hand to PostgreSQL's tools, without a server."""

from __future__ import annotations

import pytest

from dataexport.adapters.pg_dump import (
    DumpFailed,
    DumpFailureCode,
    TocSummary,
    client_environment,
    dump_failure_message,
    major_version,
    parse_toc_listing,
)
from dataexport.adapters.postgres import DatabaseSecret, TlsMode
from dataexport.database_url import InvalidDatabaseUrl, parse_database_url

# `pg_restore --list` of a small archive, as PostgreSQL 16 prints it.
LISTING = """\
;
; Archive created at 2026-12-03 17:42:00 UTC
;     dbname: app
;     TOC Entries: 13
;     Dumped from database version: 16.2
;
;
; Selected TOC Entries:
;
6; 2615 16384 SCHEMA - s1 postgres
218; 1259 16395 SEQUENCE public sq postgres
217; 1259 16392 TABLE public we ird postgres
216; 1259 16385 TABLE s1 a postgres
2546; 0 16392 TABLE DATA public we ird postgres
2545; 0 16385 TABLE DATA s1 a postgres
2555; 0 0 SEQUENCE SET public sq postgres
2401; 2606 16391 CONSTRAINT s1 a a_pkey postgres
2402; 2606 16393 FK CONSTRAINT s1 a a_fk postgres
"""


def test_a_listing_counts_its_entries_and_the_tables_with_rows() -> None:
    # given pg_restore's listing, header comments included; when it is parsed
    summary = parse_toc_listing(LISTING.splitlines(keepends=True))

    # then comments are not entries, and only TABLE DATA entries hold rows
    assert summary == TocSummary(entries=9, table_data_entries=2)


def test_a_table_named_like_an_entry_kind_is_not_taken_for_table_data() -> None:
    listing = ["217; 1259 16392 TABLE public TABLE DATA postgres\n"]

    assert parse_toc_listing(listing) == TocSummary(entries=1, table_data_entries=0)


def test_an_empty_listing_has_no_entries() -> None:
    assert parse_toc_listing([";\n", "; Selected TOC Entries:\n", "\n"]) == TocSummary(0, 0)


@pytest.mark.parametrize(
    ("version", "major"),
    [("16.2", 16), ("16.2 (Debian 16.2-1.pgdg120+2)", 16), ("17beta1", 17), ("9.6.24", 9)],
)
def test_the_major_version_is_read_from_what_the_server_and_tools_say(
    version: str, major: int
) -> None:
    assert major_version(version) == major


def test_credentials_reach_the_tools_in_their_environment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a process that has PG* settings of its own
    monkeypatch.setenv("PGSERVICE", "elsewhere")
    secret = DatabaseSecret("db.internal", 6543, "backup", "s3cret", "app")

    # when the tools' environment is built
    environment = client_environment(secret, application_name="dataexport-backup")

    # then only the secret's settings are there, with verified TLS for a TCP host
    assert {name: value for name, value in environment.items() if name.startswith("PG")} == {
        "PGHOST": "db.internal",
        "PGPORT": "6543",
        "PGUSER": "backup",
        "PGPASSWORD": "s3cret",
        "PGDATABASE": "app",
        "PGAPPNAME": "dataexport-backup",
        "PGCONNECT_TIMEOUT": "30",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "system",
    }


def test_a_failure_becomes_the_backups_error_with_its_code() -> None:
    error = DumpFailed(DumpFailureCode.STOPPED).backup_error()

    assert error.code == "STOPPED"
    assert error.message == "The backup was stopped before it was complete."


def test_a_database_url_names_a_tcp_target() -> None:
    target = parse_database_url("postgresql://app%40ro:p%3Ass@db.internal:6543/sales")

    assert target.secret == DatabaseSecret("db.internal", 6543, "app@ro", "p:ss", "sales")
    assert target.tls is TlsMode.VERIFY
    assert "p:ss" not in target.describe()


def test_a_database_url_names_a_socket_directory_and_takes_the_password_given_apart() -> None:
    target = parse_database_url(
        "postgresql://postgres@/restored?host=/var/run/pg&sslmode=disable", password="pw"
    )

    assert target.secret == DatabaseSecret("/var/run/pg", 5432, "postgres", "pw", "restored")
    assert target.tls is TlsMode.DISABLE


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "postgresql://h/db?sslmode=prefer", "postgresql://h:x/db"]
)
def test_a_url_that_cannot_be_used_is_refused(url: str) -> None:
    with pytest.raises(InvalidDatabaseUrl):
        parse_database_url(url)


SECRET = DatabaseSecret(
    host="db.internal.example", port=5432, username="backup_role", password="s3cr3t!", dbname="app"
)


def test_a_failed_dump_reports_pg_dumps_reason_without_where_or_how_it_connected() -> None:
    said = [
        "pg_dump: error: query failed: server closed the connection unexpectedly",
        'pg_dump: error: connection to server at "db.internal.example" (10.0.0.5), port 5432 '
        "failed: password=s3cr3t! user=backup_role postgresql://backup_role:s3cr3t!@db/app",
        "pg_dump: detail: Query was: LOCK TABLE demo.usage_logs IN ACCESS SHARE MODE",
        "pg_dump: warning: something unrelated",
        "unrelated noise",
    ]
    message = dump_failure_message(said, SECRET)
    assert message.startswith("pg_dump stopped with an error before the dump was complete: ")
    assert "query failed: server closed the connection unexpectedly" in message
    assert "connection to the database server failed" in message
    for secret_part in (
        "s3cr3t",
        "backup_role",
        "db.internal.example",
        "10.0.0.5",
        "postgresql://",
    ):
        assert secret_part not in message
    assert "unrelated" not in message and "LOCK" not in message


def test_a_dump_that_said_nothing_useful_keeps_the_general_message() -> None:
    message = dump_failure_message(["pg_dump: warning: only a warning"], SECRET)
    assert message == "pg_dump stopped with an error before the dump was complete."
