"""Reading the application's PostgreSQL: connections from Secrets Manager, streamed results.

Rows are read through a server-side cursor (DECLARE ... FETCH) in a read-only, repeatable-read
transaction, so memory stays bounded and every batch sees the same snapshot.
"""

from __future__ import annotations

import json
import re
import ssl
import struct
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import pg8000.native
from aws_lambda_powertools import Logger
from pg8000.core import COPY_DATA, READY_FOR_QUERY
from pg8000.exceptions import DatabaseError, InterfaceError

from dataexport.adapters.aws_clients import secret_string
from dataexport.database_location import DatabaseLocation
from dataexport.errors import ConfigurationError, QueryFailed, SourceUnavailable
from dataexport.formats.writer import BinarySink
from dataexport.query_builder import BoundQuery
from dataexport.sql_rendering import SourceType, source_type

logger = Logger(child=True)

FETCH_BATCH_ROWS = 5_000
SECRET_CACHE_SECONDS = 300
_INVALID_PARAMETER_VALUE = "22023"
_PLACEHOLDER = re.compile(r":(p[0-9]+)\b")
# SQLSTATE classes worth retrying: connection problems, resources, operator intervention.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P")


@dataclass(frozen=True)
class DatabaseSecret:
    """Connection details in the shape of an RDS-managed secret."""

    host: str
    port: int
    username: str
    password: str
    dbname: str

    @classmethod
    def from_secret_string(
        cls, raw: str, location: DatabaseLocation | None = None
    ) -> DatabaseSecret:
        """The secret's connection details, with the deployment's `location` (host, port,
        database) over the secret's: an RDS-managed secret holds only username and password."""
        data = json.loads(raw)
        where = location or DatabaseLocation()
        host = where.host or data.get("host")
        if not host:
            raise ConfigurationError(
                "The database secret has no host: set the DatabaseHost parameter "
                "(an RDS-managed secret holds only the username and password)"
            )
        return cls(
            host=str(host),
            port=where.port or int(data.get("port", 5432)),
            username=str(data["username"]),
            password=str(data.get("password", "")),
            dbname=where.dbname or str(data.get("dbname", "postgres")),
        )


class TlsMode(StrEnum):
    """How a TCP connection is encrypted; the values are libpq's `sslmode` names. A unix socket
    never uses TLS."""

    VERIFY = "verify-full"  # the certificate and the host name are checked (the default)
    REQUIRE = "require"  # encrypted, the certificate not checked
    DISABLE = "disable"


def connection_options(
    secret: DatabaseSecret,
    *,
    application_name: str = "dataexport",
    tls: TlsMode = TlsMode.VERIFY,
) -> dict[str, Any]:
    """pg8000's connection arguments for `secret`: its unix socket when `host` is a directory,
    else TCP with `tls`."""
    options: dict[str, Any] = {
        "user": secret.username,
        "password": secret.password or None,
        "database": secret.dbname,
        "application_name": application_name,
        "timeout": 30,
    }
    if secret.host.startswith("/"):
        options["unix_sock"] = f"{secret.host}/.s.PGSQL.{secret.port}"
        return options
    options.update(host=secret.host, port=secret.port)
    if tls is TlsMode.VERIFY:
        options["ssl_context"] = ssl.create_default_context()
    elif tls is TlsMode.REQUIRE:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl_context"] = context
    return options


def read_database_secret(
    secret_arn: str, location: DatabaseLocation | None = None
) -> DatabaseSecret:
    raw = secret_string(secret_arn, max_age=SECRET_CACHE_SECONDS)
    return DatabaseSecret.from_secret_string(raw, location)


@dataclass(frozen=True)
class QueryDescription:
    column_types: list[SourceType]
    time_zone_known: bool


def _sqlstate(exc: DatabaseError) -> str:
    detail = exc.args[0] if exc.args else {}
    return str(detail.get("C", "")) if isinstance(detail, dict) else ""


def _translate(exc: Exception) -> Exception:
    """Map a driver error to a named domain error; the details go to the log, not the user."""
    if isinstance(exc, DatabaseError):
        state = _sqlstate(exc)
        logger.warning("PostgreSQL refused the export query", extra={"sqlstate": state})
        if state.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
            return SourceUnavailable("The database is temporarily unavailable.")
        if state == "57014":
            return QueryFailed("The export query took longer than the allowed time.")
        return QueryFailed("The database could not run the export query.")
    logger.warning("PostgreSQL is unreachable", extra={"error_type": type(exc).__name__})
    return SourceUnavailable("The database could not be reached.")


class LineTarget(BinarySink, Protocol):
    """A COPY target that also takes many lines at once (CopyTarget)."""

    def write_lines(self, lines: list[bytes]) -> None: ...


# Bytes read from the socket at once while COPY streams: a few hundred rows per read.
_COPY_READ_BYTES = 256 * 1024
_MESSAGE_HEADER = struct.Struct("!ci")


class _Connection(pg8000.native.Connection):  # type: ignore[misc]
    """pg8000's connection with a lean message loop for COPY's output.

    COPY sends one CopyData message per row, and pg8000's loop costs two buffered reads, two
    copies and a handler call per message: about as much time as PostgreSQL takes to produce
    the row. This loop reads the socket in large blocks, cuts every whole message out of each
    block and hands a block's CopyData lines to the target in one call; every other message
    goes to pg8000's own handler, as before.
    """

    def handle_messages(self, context: Any) -> None:
        target: LineTarget | None = getattr(context, "stream", None)
        if target is None or not hasattr(target, "write_lines"):
            super().handle_messages(context)
            return
        try:
            self._copy_messages(context, target)
        except OSError as exc:
            raise InterfaceError("network error") from exc
        if context.error is not None:
            raise context.error

    def _copy_messages(self, context: Any, target: LineTarget) -> None:
        read1, read = self._sock.read1, self._sock.read
        handlers = self.message_types
        header = _MESSAGE_HEADER.unpack_from
        data = b""
        while True:
            block = read1(_COPY_READ_BYTES)
            if not block:
                raise InterfaceError("network error")
            data = data + block if data else block
            lines: list[bytes] = []
            position, end = 0, len(data)
            while end - position >= 5:
                code, length = header(data, position)
                stop = position + 1 + length
                if stop > end:
                    if stop - end > _COPY_READ_BYTES:
                        # One message longer than a read (a huge row): fetch the rest at once.
                        data = data[position:] + read(stop - end)
                        position, end = 0, len(data)
                        stop = 1 + length
                        if stop > end:
                            raise InterfaceError("network error")
                    else:
                        break
                if code == COPY_DATA:
                    lines.append(data[position + 5 : stop])
                else:
                    if lines:
                        target.write_lines(lines)
                        lines = []
                    handlers[code](data[position + 5 : stop], context)
                    if code == READY_FOR_QUERY:
                        return
                position = stop
            if lines:
                target.write_lines(lines)
            data = data[position:]


class PostgresReader:
    """A read-only session on the application's database."""

    def __init__(self, secret: DatabaseSecret, statement_timeout_seconds: int) -> None:
        self._secret = secret
        self._timeout_ms = statement_timeout_seconds * 1000

    @contextmanager
    def _connection(self) -> Iterator[_Connection]:
        try:
            connection = _Connection(**connection_options(self._secret))
        except (TimeoutError, InterfaceError, DatabaseError, OSError) as exc:
            raise _translate(exc) from None
        try:
            # Belt and braces beside the read-only role: this session cannot write at all.
            connection.run("SET default_transaction_read_only = on")
            connection.run(f"SET statement_timeout = {int(self._timeout_ms)}")
            yield connection
        except (InterfaceError, DatabaseError, OSError) as exc:
            raise _translate(exc) from None
        finally:
            # A connection that is already gone has nothing left to release.
            with suppress(InterfaceError, OSError):
                connection.close()

    def count(self, query: BoundQuery) -> int:
        return int(self.fetch(query)[0][0])

    def planned_rows(self, query: BoundQuery) -> int:
        """PostgreSQL's own estimate of the rows `query` returns (EXPLAIN, not run)."""
        plan = self.fetch(BoundQuery(f"EXPLAIN (FORMAT JSON) {query.sql}", query.params))[0][0]
        document = json.loads(plan) if isinstance(plan, str) else plan
        return int(document[0]["Plan"]["Plan Rows"])

    def fetch(self, query: BoundQuery) -> list[list[Any]]:
        """All rows of a small query (counts, plans), read at once."""
        with self._connection() as connection:
            _apply_settings(connection, query)
            rows: list[list[Any]] = connection.run(query.sql, **query.params)
            return rows

    def stream(
        self,
        query: BoundQuery,
        batch_rows: int = FETCH_BATCH_ROWS,
        *,
        time_zone: str | None = None,
    ) -> Iterator[list[list[Any]]]:
        """Yield the query's rows in batches from a server-side cursor; `time_zone`, when the
        query renders time stamps as text itself, is the session's for this transaction."""
        with self._connection() as connection:
            _apply_settings(connection, query)
            connection.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if time_zone is not None:
                connection.run("SELECT set_config('TimeZone', :zone, true)", zone=time_zone)
            connection.run(
                f"DECLARE export_cursor NO SCROLL CURSOR FOR {query.sql}", **query.params
            )
            while True:
                batch = connection.run(f"FETCH FORWARD {int(batch_rows)} FROM export_cursor")
                if not batch:
                    break
                yield batch
            connection.run("COMMIT")

    def describe(self, query: BoundQuery, time_zone: str) -> QueryDescription:
        """The PostgreSQL type of each column `query` returns (planned, not run), and whether
        the server's time zone database has `time_zone` (it may lag Python's)."""
        with self._connection() as connection:
            _apply_settings(connection, query)
            connection.run(f"SELECT * FROM ({query.sql}) AS described LIMIT 0", **query.params)
            types = [source_type(int(column["type_oid"])) for column in connection.columns or []]
            connection.run("BEGIN READ ONLY")
            try:
                # Setting it is the cheap test: pg_timezone_names would read every zone file.
                connection.run("SELECT set_config('TimeZone', :zone, true)", zone=time_zone)
                known = True
            except DatabaseError as exc:
                if _sqlstate(exc) != _INVALID_PARAMETER_VALUE:
                    raise
                known = False
            connection.run("ROLLBACK")
            return QueryDescription(types, known)

    def copy(
        self, query: BoundQuery, copy_options: str, target: BinarySink, *, time_zone: str
    ) -> int:
        """Stream `COPY (query) TO STDOUT (copy_options)` into `target`; returns the rows.

        COPY takes no bind parameters, so each bound value is first handed to the server, which
        quotes it as a literal itself (quote_nullable): no value is ever spliced in by us.
        Time stamps render in `time_zone` (set for this transaction only).
        """
        with self._connection() as connection:
            _apply_settings(connection, query)
            connection.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            connection.run("SELECT set_config('TimeZone', :zone, true)", zone=time_zone)
            sql = _with_server_quoted_values(connection, query)
            connection.run(f"COPY ({sql}) TO STDOUT ({copy_options})", stream=target)
            rows = int(connection.row_count)
            connection.run("COMMIT")
            return rows


def _apply_settings(connection: _Connection, query: BoundQuery) -> None:
    """Set the query's session settings, values bound (the connection is this call's own)."""
    if query.settings is None:
        return
    for name, value in query.settings.values.items():
        connection.run("SELECT set_config(:name, :value, false)", name=name, value=value)


def _with_server_quoted_values(connection: _Connection, query: BoundQuery) -> str:
    if not query.params:
        return query.sql
    names = list(query.params)
    quoting = ", ".join(f"quote_nullable(CAST(:{name} AS text))" for name in names)
    literals = dict(zip(names, connection.run(f"SELECT {quoting}", **query.params)[0], strict=True))
    return _PLACEHOLDER.sub(lambda match: str(literals[match.group(1)]), query.sql)
