"""DATABASE_URL selects another PostgreSQL; its parts become the handlers' secret."""

from __future__ import annotations

import pytest

from dataexport_local.postgres import (
    DatabaseError,
    EmbeddedPostgres,
    ExternalPostgres,
    database_from_environment,
    parse_database_url,
)


def test_a_tcp_url_gives_host_port_user_password_and_database() -> None:
    settings = parse_database_url("postgresql://app%40ro:p%3Ass@db.internal:6543/sales")
    assert settings.as_secret() == {
        "host": "db.internal",
        "port": 6543,
        "username": "app@ro",
        "password": "p:ss",
        "dbname": "sales",
    }
    assert not settings.is_socket
    assert "p:ss" not in settings.describe()


def test_a_socket_url_names_the_socket_directory() -> None:
    settings = parse_database_url("postgresql://postgres:@/postgres?host=/var/run/pg")
    assert settings.is_socket and settings.socket_path == "/var/run/pg/.s.PGSQL.5432"


def test_only_postgresql_urls_are_accepted() -> None:
    with pytest.raises(DatabaseError, match="postgresql://"):
        parse_database_url("mysql://root@localhost/db")


def test_database_url_wins_over_the_embedded_server() -> None:
    chosen = database_from_environment({"DATABASE_URL": "postgresql://u@h/d"})
    assert isinstance(chosen, ExternalPostgres)
    assert chosen.reader_settings.username == "u"
    assert isinstance(database_from_environment({}), EmbeddedPostgres)
