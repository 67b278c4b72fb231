"""A PostgreSQL connection URL, `postgresql://user:password@host:port/dbname`, as a secret.

`?host=/socket/dir` names a unix socket directory instead of a TCP host, and `?sslmode=` how a
TCP connection is encrypted (libpq's names). The same reading as the local runtime's
DATABASE_URL, here in the layer so that operator tools built on the package can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from dataexport.adapters.postgres import DatabaseSecret, TlsMode
from dataexport.errors import DataExportError

DEFAULT_PORT: Final = 5432
DEFAULT_USER: Final = "postgres"
_TLS_MODES: Final = {
    "disable": TlsMode.DISABLE,
    "require": TlsMode.REQUIRE,
    "verify-ca": TlsMode.VERIFY,
    "verify-full": TlsMode.VERIFY,
}


class InvalidDatabaseUrl(DataExportError):
    """The URL is not a postgresql:// URL this package can connect with."""

    error_code = "INVALID_DATABASE_URL"


@dataclass(frozen=True)
class DatabaseTarget:
    """Where to connect (`secret`) and how a TCP connection is encrypted (`tls`)."""

    secret: DatabaseSecret
    tls: TlsMode

    def describe(self) -> str:
        """Where the database is, without the password (safe to print)."""
        secret = self.secret
        return f"postgresql://{secret.username}@{secret.host}:{secret.port}/{secret.dbname}"


def parse_database_url(url: str, *, password: str | None = None) -> DatabaseTarget:
    """The target `url` names; `password` is used when the URL has none (e.g. PGPASSWORD)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise InvalidDatabaseUrl("The database URL must start with postgresql://.")
    query = parse_qs(parts.query)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidDatabaseUrl("The database URL's port is not a number.") from None
    mode = query.get("sslmode", ["verify-full"])[0]
    if mode not in _TLS_MODES:
        raise InvalidDatabaseUrl(
            f"sslmode={mode} is not supported: use one of {', '.join(_TLS_MODES)}."
        )
    secret = DatabaseSecret(
        host=query.get("host", [parts.hostname or "localhost"])[0],
        port=port,
        username=unquote(parts.username or DEFAULT_USER),
        password=unquote(parts.password) if parts.password else (password or ""),
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
    )
    return DatabaseTarget(secret, _TLS_MODES[mode])
