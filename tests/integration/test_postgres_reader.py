"""Reading PostgreSQL: failures become named errors whose messages are safe to show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.errors import QueryFailed, SourceUnavailable
from dataexport.query_builder import BoundQuery


def reader_for(socket_dir: str, timeout_seconds: int = 30) -> PostgresReader:
    secret = DatabaseSecret(
        host=socket_dir, port=5432, username="postgres", password="", dbname="postgres"
    )
    return PostgresReader(secret, timeout_seconds)


def test_an_unreachable_database_is_source_unavailable(tmp_path: Path) -> None:
    reader = reader_for(str(tmp_path / "no-server-here"))
    with pytest.raises(SourceUnavailable) as raised:
        reader.count(BoundQuery("SELECT 1"))
    assert "no-server-here" not in raised.value.message


def test_a_query_the_database_refuses_is_query_failed_without_sql(pg_socket_dir: str) -> None:
    reader = reader_for(pg_socket_dir)
    with pytest.raises(QueryFailed) as raised:
        list(reader.stream(BoundQuery("SELECT secret_column FROM missing_table")))
    assert "missing_table" not in raised.value.message
    assert "SELECT" not in raised.value.message


def test_the_statement_timeout_stops_a_long_query(pg_socket_dir: str) -> None:
    reader = reader_for(pg_socket_dir, timeout_seconds=1)
    with pytest.raises(QueryFailed, match="longer than the allowed time"):
        reader.count(BoundQuery("SELECT count(*) FROM (SELECT pg_sleep(3)) AS slow"))


def test_rows_stream_in_batches_from_one_snapshot(pg_socket_dir: str) -> None:
    reader = reader_for(pg_socket_dir)
    query = BoundQuery("SELECT g FROM generate_series(1, :n) AS g ORDER BY g", {"n": 12_345})
    batches = list(reader.stream(query, batch_rows=5_000))
    assert [len(batch) for batch in batches] == [5_000, 5_000, 2_345]
    assert [row[0] for batch in batches for row in batch] == list(range(1, 12_346))


def test_the_export_transaction_cannot_write(
    pg_socket_dir: str, pg_superuser_conn_factory: Callable[[], Any]
) -> None:
    admin = pg_superuser_conn_factory()
    admin.run("CREATE TABLE IF NOT EXISTS reader_write_probe (id int)")
    reader = reader_for(pg_socket_dir)
    writing = BoundQuery(
        "WITH w AS (INSERT INTO reader_write_probe VALUES (1) RETURNING id) SELECT count(*) FROM w"
    )
    with pytest.raises(QueryFailed):
        reader.count(writing)
    assert admin.run("SELECT count(*) FROM reader_write_probe") == [[0]]
    admin.run("DROP TABLE reader_write_probe")
    admin.close()
