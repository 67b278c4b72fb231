"""PostgreSQL for the integration tests: an embedded server (pgserver), or DATABASE_URL's.

The embedded server starts once per session in a short /tmp directory (a unix socket path must
stay under ~100 characters) and is stopped and deleted at the end. Tests that change data work
in a scratch database of their own, so they never disturb each other or a shared server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native
import pytest
from pgserver._commands import POSTGRES_BIN_PATH
from pgserver.postgres_server import get_server

from dataexport.adapters.pg_dump import PostgresTools

SUPERUSER = "postgres"
DEFAULT_PORT = 5432

ConnectionFactory = Callable[..., pg8000.native.Connection]


@dataclass(frozen=True)
class PgEndpoint:
    """How to reach the test server: a unix socket directory, or a TCP host."""

    user: str
    password: str | None
    database: str
    socket_dir: str | None = None
    host: str | None = None
    port: int = DEFAULT_PORT

    def connect(
        self, database: str | None = None, user: str | None = None
    ) -> pg8000.native.Connection:
        options: dict[str, object] = {
            "user": user or self.user,
            "database": database or self.database,
            "password": self.password if user is None else None,
        }
        if self.socket_dir is not None:
            options["unix_sock"] = f"{self.socket_dir}/.s.PGSQL.{self.port}"
        else:
            options.update(host=self.host, port=self.port)
        return pg8000.native.Connection(**options)


def endpoint_from_url(url: str) -> PgEndpoint:
    """`postgresql://user:password@host:port/db` (or `?host=/socket/dir`) as an endpoint."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir is None and parts.hostname and parts.hostname.startswith("/"):
        socket_dir = parts.hostname
    return PgEndpoint(
        user=unquote(parts.username or SUPERUSER),
        password=unquote(parts.password) if parts.password else None,
        database=unquote(parts.path.lstrip("/")) or "postgres",
        socket_dir=socket_dir,
        host=None if socket_dir else (parts.hostname or "localhost"),
        port=parts.port or DEFAULT_PORT,
    )


@pytest.fixture(scope="session")
def pg_endpoint() -> Iterator[PgEndpoint]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield endpoint_from_url(url)
        return
    root = tempfile.mkdtemp(prefix="dxit", dir="/tmp")
    server = get_server(Path(root) / "pg", cleanup_mode="stop")
    try:
        yield endpoint_from_url(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_socket_dir(pg_endpoint: PgEndpoint) -> str:
    """The server's unix socket directory (tests needing it skip on a TCP DATABASE_URL)."""
    if pg_endpoint.socket_dir is None:
        pytest.skip("DATABASE_URL points at a TCP server")
    return pg_endpoint.socket_dir


@pytest.fixture(scope="session")
def pg_superuser_conn_factory(pg_endpoint: PgEndpoint) -> ConnectionFactory:
    """A callable opening a new superuser connection, to `database` if given."""

    def connect(database: str | None = None) -> pg8000.native.Connection:
        return pg_endpoint.connect(database=database)

    return connect


@contextmanager
def _new_database(connect: ConnectionFactory, prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = connect()
    try:
        admin.run(f"CREATE DATABASE {name}")
        yield name
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        admin.close()


@pytest.fixture(scope="module")
def pg_scratch_database(pg_superuser_conn_factory: ConnectionFactory) -> Iterator[str]:
    """A new, empty database for one test module, dropped afterwards."""
    with _new_database(pg_superuser_conn_factory, "dx_test") as name:
        yield name


@pytest.fixture
def pg_empty_database(pg_superuser_conn_factory: ConnectionFactory) -> Iterator[str]:
    """A new, empty database for one test (a restore's target), dropped afterwards."""
    with _new_database(pg_superuser_conn_factory, "dx_empty") as name:
        yield name


@pytest.fixture(scope="session")
def postgres_tools() -> PostgresTools:
    """pg_dump and pg_restore as pgserver ships them (the same major version as its server)."""
    return PostgresTools(str(POSTGRES_BIN_PATH))


# The tables of backup_source_database, with the rows each holds. sales.orders is large enough
# (a few MiB dumped) that pg_dump's output spans several chunks.
BACKUP_SOURCE_ROWS = {
    "public.customers": 50,
    "sales.orders": 60_000,
    "sales.audit_log": 30,
    "reporting.daily": 5,
}


@pytest.fixture(scope="module")
def backup_source_database(pg_scratch_database: str, pg_endpoint: PgEndpoint) -> str:
    """A database with tables in three schemas and the rows BACKUP_SOURCE_ROWS says."""
    connection = pg_endpoint.connect(database=pg_scratch_database)
    try:
        for statement in (
            "CREATE SCHEMA sales",
            "CREATE SCHEMA reporting",
            "CREATE TABLE public.customers (id serial PRIMARY KEY, name text NOT NULL)",
            "INSERT INTO public.customers (name) SELECT 'customer ' || g "
            "FROM generate_series(1, 50) g",
            "CREATE TABLE sales.orders (id bigint PRIMARY KEY, "
            "customer_id int REFERENCES public.customers, note text)",
            "INSERT INTO sales.orders SELECT g, 1 + g % 50, md5(g::text) || md5((g * 7)::text) "
            "FROM generate_series(1, 60000) g",
            "CREATE TABLE sales.audit_log (at timestamptz DEFAULT now(), line text)",
            "INSERT INTO sales.audit_log (line) SELECT 'line ' || g FROM generate_series(1, 30) g",
            "CREATE TABLE reporting.daily (day date PRIMARY KEY, total numeric)",
            "INSERT INTO reporting.daily SELECT current_date - g, g * 10.5 "
            "FROM generate_series(1, 5) g",
        ):
            connection.run(statement)
    finally:
        connection.close()
    return pg_scratch_database
