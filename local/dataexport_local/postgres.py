"""PostgreSQL for the local runtime: an embedded server (pgserver), or yours via DATABASE_URL.

The embedded server listens on a unix socket only (no TCP port to clash with); its data directory
persists between runs (default `<repo>/.local/pg`), so `seed` once and `serve` many times. Set
`DATABASE_URL=postgresql://user:password@host:port/dbname` to use another server instead; the
handlers then connect with that URL's user.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.native

from dataexport_local.template import REPOSITORY_ROOT

DATABASE_URL_ENV: Final = "DATABASE_URL"
DEFAULT_DATA_DIR: Final = REPOSITORY_ROOT / ".local" / "pg"
READER_ROLE: Final = "dataexport_reader"
SUPERUSER: Final = "postgres"
DEFAULT_PORT: Final = 5432
# A unix socket path must fit in ~104 bytes (sun_path); the socket file adds ".s.PGSQL.5432".
MAX_SOCKET_DIR_LENGTH: Final = 90


class DatabaseError(Exception):
    """The local database cannot be started or reached."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and as whom to connect: a TCP host, or a unix socket directory as `host`."""

    host: str
    port: int
    username: str
    password: str
    dbname: str

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    @property
    def socket_path(self) -> str:
        return f"{self.host}/.s.PGSQL.{self.port}"

    def connect(self) -> pg8000.native.Connection:
        """A new pg8000 connection with these settings."""
        options: dict[str, Any] = {
            "user": self.username,
            "database": self.dbname,
            "password": self.password or None,
        }
        if self.is_socket:
            options["unix_sock"] = self.socket_path
        else:
            options.update(host=self.host, port=self.port)
        return pg8000.native.Connection(**options)

    def as_secret(self) -> dict[str, Any]:
        """The RDS-shaped secret the handlers read: host (or socket dir), port, user, db."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "dbname": self.dbname,
        }

    def describe(self) -> str:
        """Where the database is, without the password (safe to print)."""
        return f"postgresql://{self.username}@{self.host}:{self.port}/{self.dbname}"

    def as_user(self, username: str, password: str = "") -> ConnectionSettings:
        return ConnectionSettings(self.host, self.port, username, password, self.dbname)


def client_tools_dir() -> str | None:
    """Where pgserver's PostgreSQL 16 binaries are (pg_dump, pg_restore), if it is installed."""
    try:
        from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415 - embedded only
    except ImportError:
        return None
    return str(POSTGRES_BIN_PATH)


def parse_database_url(url: str) -> ConnectionSettings:
    """Settings from `postgresql://user:password@host:port/dbname` (`?host=/dir` for a socket)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise DatabaseError(
            f"{DATABASE_URL_ENV} must start with postgresql:// (got {parts.scheme}://)"
        )
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    dbname = unquote(parts.path.lstrip("/")) or "postgres"
    return ConnectionSettings(
        host=host,
        port=parts.port or DEFAULT_PORT,
        username=unquote(parts.username or SUPERUSER),
        password=unquote(parts.password or ""),
        dbname=dbname,
    )


class LocalDatabase(Protocol):
    """A PostgreSQL the local runtime can start, administer and hand to the handlers."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def admin_settings(self) -> ConnectionSettings:
        """Connection settings with full rights (to create the schema and seed it)."""
        ...

    @property
    def reader_settings(self) -> ConnectionSettings:
        """What the handlers connect as (the database secret)."""
        ...

    def connect(self) -> pg8000.native.Connection:
        """A new connection with `admin_settings`."""
        ...

    @property
    def socket_dir(self) -> Path | None:
        """The unix socket directory, None for a TCP server."""
        ...


class EmbeddedPostgres:
    """PostgreSQL 16 from the pgserver package, in `data_dir`, on a unix socket."""

    def __init__(self, data_dir: Path | None = None, *, dbname: str = "postgres") -> None:
        self.data_dir = (data_dir or DEFAULT_DATA_DIR).resolve()
        self.dbname = dbname
        self._server: Any = None
        self._settings: ConnectionSettings | None = None

    def start(self) -> None:
        """Start the server (or attach to the one already running on this data directory)."""
        if self._server is not None:
            return
        if len(str(self.data_dir)) > MAX_SOCKET_DIR_LENGTH:
            raise DatabaseError(
                f"The data directory {self.data_dir} is too long for a unix socket path; "
                "choose a shorter one"
            )
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from pgserver.postgres_server import get_server  # noqa: PLC0415 - embedded only

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:
            raise DatabaseError(
                f"Cannot start the embedded PostgreSQL in {self.data_dir}: {exc}"
            ) from exc
        # The URI is postgresql://postgres:@/postgres?host=<socket dir>.
        uri = parse_database_url(self._server.get_uri(self.dbname))
        info = self._server.get_postmaster_info()
        self._settings = ConnectionSettings(
            host=uri.host,
            port=int(getattr(info, "port", None) or DEFAULT_PORT),
            username=SUPERUSER,
            password="",
            dbname=self.dbname,
        )

    def stop(self) -> None:
        """Release this process's handle; the server stops when no process uses it any more."""
        server, self._server, self._settings = self._server, None, None
        if server is not None:
            server.cleanup()

    @property
    def socket_dir(self) -> Path:
        return Path(self.admin_settings.host)

    @property
    def admin_settings(self) -> ConnectionSettings:
        if self._settings is None:
            raise DatabaseError("The embedded PostgreSQL is not started")
        return self._settings

    @property
    def reader_settings(self) -> ConnectionSettings:
        # Trust authentication: the read-only role logs in without a password.
        return self.admin_settings.as_user(READER_ROLE)

    def connect(self) -> pg8000.native.Connection:
        return self.admin_settings.connect()


class ExternalPostgres:
    """A PostgreSQL you run, named by a URL (DATABASE_URL); start/stop only check it."""

    def __init__(self, url: str) -> None:
        self._settings = parse_database_url(url)

    def start(self) -> None:
        try:
            self.connect().close()
        except Exception as exc:
            raise DatabaseError(f"Cannot connect to {self._settings.describe()}: {exc}") from exc

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""

    @property
    def admin_settings(self) -> ConnectionSettings:
        return self._settings

    @property
    def reader_settings(self) -> ConnectionSettings:
        return self._settings

    def connect(self) -> pg8000.native.Connection:
        return self._settings.connect()

    @property
    def socket_dir(self) -> Path | None:
        return Path(self._settings.host) if self._settings.is_socket else None


def database_from_environment(
    environ: Mapping[str, str] | None = None, data_dir: Path | None = None
) -> LocalDatabase:
    """DATABASE_URL's server when it is set, else the embedded one in `data_dir`."""
    url = (environ if environ is not None else os.environ).get(DATABASE_URL_ENV)
    if url:
        return ExternalPostgres(url)
    return EmbeddedPostgres(data_dir)


def seed_demo_data(database: LocalDatabase, rows: int, *, seed: int = 42) -> int:
    """Create the demo schema and the read-only role, replace the usage logs with `rows`
    generated rows (plus the hand-written tricky ones) and the other demo datasets with their
    fixed-size generated rows; returns how many usage logs were inserted."""
    # Only seeding needs them.
    from dataexport_local import demo_data, demo_datasets  # noqa: PLC0415

    now = datetime.now(UTC)
    connection = database.connect()
    try:
        demo_data.apply_schema(connection)
        inserted = demo_data.seed_usage_logs(connection, rows, seed=seed, replace=True, now=now)
        demo_datasets.seed_demo_datasets(connection, now)
        return inserted
    finally:
        connection.close()


def has_demo_data(database: LocalDatabase) -> bool:
    """True when the demo schema exists (it has been seeded at least once)."""
    connection = database.connect()
    try:
        rows = connection.run("SELECT to_regclass('demo.usage_logs') IS NOT NULL")
        return bool(rows[0][0])
    finally:
        connection.close()
