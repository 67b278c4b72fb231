"""Reading the application's PostgreSQL: connections from Secrets Manager, streamed results.

Rows are read through a server-side cursor (DECLARE ... FETCH) in a read-only, repeatable-read
transaction, so memory stays bounded and every batch sees the same snapshot.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pg8000.native
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from pg8000.exceptions import DatabaseError, InterfaceError

from dataexport.errors import QueryFailed, SourceUnavailable
from dataexport.query_builder import BoundQuery

logger = Logger(child=True)

FETCH_BATCH_ROWS = 5_000
SECRET_CACHE_SECONDS = 300
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
    def from_secret_string(cls, raw: str) -> DatabaseSecret:
        data = json.loads(raw)
        return cls(
            host=str(data["host"]),
            port=int(data.get("port", 5432)),
            username=str(data["username"]),
            password=str(data.get("password", "")),
            dbname=str(data.get("dbname", "postgres")),
        )


def read_database_secret(secret_arn: str) -> DatabaseSecret:
    raw = parameters.get_secret(secret_arn, max_age=SECRET_CACHE_SECONDS)
    return DatabaseSecret.from_secret_string(str(raw))


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


class PostgresReader:
    """A read-only session on the application's database."""

    def __init__(self, secret: DatabaseSecret, statement_timeout_seconds: int) -> None:
        self._secret = secret
        self._timeout_ms = statement_timeout_seconds * 1000

    @contextmanager
    def _connection(self) -> Iterator[pg8000.native.Connection]:
        secret = self._secret
        try:
            if secret.host.startswith("/"):
                connection = pg8000.native.Connection(
                    secret.username,
                    password=secret.password or None,
                    database=secret.dbname,
                    unix_sock=f"{secret.host}/.s.PGSQL.{secret.port}",
                    application_name="dataexport",
                    timeout=30,
                )
            else:
                connection = pg8000.native.Connection(
                    secret.username,
                    password=secret.password or None,
                    database=secret.dbname,
                    host=secret.host,
                    port=secret.port,
                    ssl_context=ssl.create_default_context(),
                    application_name="dataexport",
                    timeout=30,
                )
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
        with self._connection() as connection:
            rows = connection.run(query.sql, **query.params)
            return int(rows[0][0])

    def stream(
        self, query: BoundQuery, batch_rows: int = FETCH_BATCH_ROWS
    ) -> Iterator[list[list[Any]]]:
        """Yield the query's rows in batches from a server-side cursor."""
        with self._connection() as connection:
            connection.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            connection.run(
                f"DECLARE export_cursor NO SCROLL CURSOR FOR {query.sql}", **query.params
            )
            while True:
                batch = connection.run(f"FETCH FORWARD {int(batch_rows)} FROM export_cursor")
                if not batch:
                    break
                yield batch
            connection.run("COMMIT")
