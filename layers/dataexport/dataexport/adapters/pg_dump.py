"""Runs PostgreSQL's own client tools: `pg_dump` for a backup, `pg_restore --list` to check it.

The tools run as child processes, never through a shell. Credentials reach them only in the
child's environment (PGHOST, PGUSER, PGPASSWORD, ...), never on a command line or in a log.
Failures are classified by a pg8000 connection made first (SQLSTATE, socket errors), not by
reading the tools' messages: those go to the log, truncated, and never to a caller.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import IO, Final

import pg8000.native
from aws_lambda_powertools import Logger
from pg8000.exceptions import DatabaseError, InterfaceError

from dataexport.adapters.postgres import (
    DatabaseSecret,
    PostgresReader,
    TlsMode,
    connection_options,
)
from dataexport.backup import BackupError, BackupOptions, NamedObject
from dataexport.errors import ConfigurationError, DataExportError
from dataexport.query_builder import BoundQuery

logger = Logger(child=True)

CHUNK_BYTES: Final = 1024 * 1024
APPLICATION_NAME: Final = "dataexport-backup"
# A tool's message lines are logged cut to this length, and only this many of them.
LOGGED_LINE_CHARACTERS: Final = 300
LOGGED_LINES: Final = 50
# pg_restore --list has the whole table of contents once pg_dump's output ends.
LISTING_WAIT_SECONDS: Final = 60.0
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")
# One entry of `pg_restore --list`: "dumpId; tableoid oid DESCRIPTION namespace tag owner".
_TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<rest>.*)$")
_SQLSTATE_DATABASE_NOT_FOUND = "3D000"
_SQLSTATE_CLASS_AUTHENTICATION = "28"


class DumpFailureCode(StrEnum):
    CONNECTION_FAILED = "CONNECTION_FAILED"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    DATABASE_NOT_FOUND = "DATABASE_NOT_FOUND"
    VERSION_MISMATCH = "VERSION_MISMATCH"
    DUMP_FAILED = "DUMP_FAILED"
    DUMP_KILLED = "DUMP_KILLED"
    VERIFICATION_FAILED = "VERIFICATION_FAILED"
    STOPPED = "STOPPED"


_MESSAGES: Final = {
    DumpFailureCode.CONNECTION_FAILED: "The database could not be reached.",
    DumpFailureCode.AUTHENTICATION_FAILED: "The database refused the credentials.",
    DumpFailureCode.DATABASE_NOT_FOUND: "The database named in the credentials does not exist.",
    DumpFailureCode.VERSION_MISMATCH: "pg_dump is older than the database server.",
    DumpFailureCode.DUMP_FAILED: "pg_dump stopped with an error before the dump was complete.",
    DumpFailureCode.DUMP_KILLED: "pg_dump was killed before the dump was complete.",
    DumpFailureCode.VERIFICATION_FAILED: "pg_restore could not read the archive's contents.",
    DumpFailureCode.STOPPED: "The backup was stopped before it was complete.",
}


class DumpFailed(DataExportError):
    """A backup that did not produce a complete, readable archive; `code` says why."""

    error_code = "DUMP_FAILED"

    def __init__(self, code: DumpFailureCode, message: str | None = None) -> None:
        super().__init__(message or _MESSAGES[code], {"code": code.value})
        self.code = code

    def backup_error(self) -> BackupError:
        """The failure as the backup's record keeps it (safe to show an operator)."""
        return BackupError(code=self.code.value, message=self.message)


@dataclass(frozen=True)
class PostgresTools:
    """Where pg_dump and pg_restore are: `bin_dir`, or the PATH when it is None."""

    bin_dir: str | None = None

    def _path(self, program: str) -> str:
        found = shutil.which(program, path=self.bin_dir)
        if found is None:
            place = "the PostgreSQL tools directory" if self.bin_dir else "the PATH"
            raise ConfigurationError(f"{program} was not found in {place}.")
        return found

    @cached_property
    def pg_dump(self) -> str:
        return self._path("pg_dump")

    @cached_property
    def pg_restore(self) -> str:
        return self._path("pg_restore")

    @cached_property
    def pg_dump_version(self) -> str:
        """pg_dump's version, e.g. "16.2"."""
        return _tool_version(self.pg_dump)

    @cached_property
    def pg_restore_version(self) -> str:
        return _tool_version(self.pg_restore)


def _tool_version(path: str) -> str:
    # "pg_dump (PostgreSQL) 16.2" -> "16.2"
    answer = subprocess.run(  # noqa: S603 - a fixed program path, no shell
        [path, "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    return answer.stdout.strip().rsplit(" ", 1)[-1]


def major_version(version: str) -> int:
    """The major version of "16.2", "16.2 (Debian 16.2-1)" or "9.6.24" (9)."""
    matched = _VERSION.match(version.strip())
    if matched is None:
        raise ValueError(f"{version!r} is not a PostgreSQL version")
    return int(matched.group(1))


@dataclass(frozen=True)
class TocSummary:
    """What `pg_restore --list` found in an archive."""

    entries: int
    table_data_entries: int


def parse_toc_listing(lines: Iterable[str]) -> TocSummary:
    """Count the entries of a `pg_restore --list` listing and those holding a table's rows."""
    entries = table_data = 0
    for line in lines:
        matched = _TOC_ENTRY.match(line.rstrip("\r\n"))
        if matched is None:
            continue  # comments (";") and blank lines
        entries += 1
        if matched.group("rest").startswith("TABLE DATA "):
            table_data += 1
    return TocSummary(entries, table_data)


@dataclass(frozen=True)
class DumpOutcome:
    """A complete dump: what it holds and how long it took."""

    toc_entries: int
    table_data_entries: int
    server_version: str
    pg_dump_version: str
    dump_seconds: float


def client_environment(
    secret: DatabaseSecret, *, application_name: str, tls: TlsMode = TlsMode.VERIFY
) -> dict[str, str]:
    """The environment for a libpq tool connecting with `secret`: this process's, without any
    PG* variable of its own, plus the connection's."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    environment.update(
        PGHOST=secret.host,
        PGPORT=str(secret.port),
        PGUSER=secret.username,
        PGDATABASE=secret.dbname,
        PGAPPNAME=application_name,
        PGCONNECT_TIMEOUT="30",
    )
    if secret.password:
        environment["PGPASSWORD"] = secret.password
    if not secret.host.startswith("/"):
        environment["PGSSLMODE"] = tls.value
        if tls is TlsMode.VERIFY:
            # The system's certificate authorities, as the pg8000 connections use (libpq 16+).
            environment["PGSSLROOTCERT"] = "system"
    return environment


def check_database(secret: DatabaseSecret, *, tls: TlsMode = TlsMode.VERIFY) -> str:
    """Connect once with `secret` and answer the server's version; a refusal raises DumpFailed
    with CONNECTION_FAILED, AUTHENTICATION_FAILED or DATABASE_NOT_FOUND."""
    failure: DumpFailed | None = None
    try:
        connection = pg8000.native.Connection(
            **connection_options(secret, application_name=f"{APPLICATION_NAME}-check", tls=tls)
        )
    except (DatabaseError, InterfaceError, OSError) as exc:
        failure = _connection_failure(exc)
    if failure is not None:
        # Raised outside the except block so that it keeps no context: pg8000's half-open
        # connection, and its socket, stay alive as long as anything holds its exception.
        raise failure
    try:
        return str(connection.run("SHOW server_version")[0][0])
    except (DatabaseError, InterfaceError, OSError) as exc:
        logger.warning("PostgreSQL failed the check", extra={"error_type": type(exc).__name__})
        raise DumpFailed(DumpFailureCode.CONNECTION_FAILED) from None
    finally:
        with suppress(InterfaceError, OSError):  # a connection already gone needs no goodbye
            connection.close()


def _server_refusal(exc: BaseException) -> DatabaseError | None:
    """The server's error behind `exc`. On a refused login pg8000 closes the connection, and
    the goodbye it writes to the socket the server already closed raises a "network error"
    that hides the server's answer: that answer is still in the exception's context."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DatabaseError):
            return seen
        seen = seen.__context__
    return None


def _connection_failure(exc: BaseException) -> DumpFailed:
    refusal = _server_refusal(exc)
    if refusal is not None:
        return _refusal(refusal)
    logger.warning("PostgreSQL is unreachable", extra={"error_type": type(exc).__name__})
    return DumpFailed(DumpFailureCode.CONNECTION_FAILED)


def _refusal(exc: DatabaseError) -> DumpFailed:
    detail = exc.args[0] if exc.args else {}
    state = str(detail.get("C", "")) if isinstance(detail, dict) else ""
    logger.warning("PostgreSQL refused the connection", extra={"sqlstate": state})
    if state.startswith(_SQLSTATE_CLASS_AUTHENTICATION):
        return DumpFailed(DumpFailureCode.AUTHENTICATION_FAILED)
    if state == _SQLSTATE_DATABASE_NOT_FOUND:
        return DumpFailed(DumpFailureCode.DATABASE_NOT_FOUND)
    return DumpFailed(DumpFailureCode.CONNECTION_FAILED)


# The patterns (by position) that match nothing in the database's catalog, as pg_dump
# matches them: -n against schemas; -t against tables, views, sequences, materialized views,
# foreign and partitioned tables, in the given schema or else among those on the search path.
_UNMATCHED_SQL: Final = """
SELECT wanted.position
FROM unnest(CAST(:kinds AS text[]), CAST(:schemas AS text[]), CAST(:names AS text[]))
    WITH ORDINALITY AS wanted(kind, schema_like, name_like, position)
WHERE NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_namespace n
    WHERE wanted.kind = 'schema' AND n.nspname LIKE wanted.name_like
) AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE wanted.kind = 'table'
      AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND c.relname LIKE wanted.name_like
      AND CASE WHEN wanted.schema_like IS NULL THEN pg_catalog.pg_table_is_visible(c.oid)
               ELSE n.nspname LIKE wanted.schema_like END
)
ORDER BY wanted.position
"""


def unmatched_objects(reader: PostgresReader, options: BackupOptions) -> list[NamedObject]:
    """The schemas and tables `options` name that match nothing in the database (read from
    its catalog, which every role may read), in the order they were given."""
    named = options.named_objects()
    if not named:
        return []
    patterns = [item.like_patterns() for item in named]
    query = BoundQuery(
        _UNMATCHED_SQL,
        {
            "kinds": [item.kind for item in named],
            "schemas": [schema for schema, _ in patterns],
            "names": [name for _, name in patterns],
        },
    )
    return [named[int(position) - 1] for (position,) in reader.fetch(query)]


# pg_dump's own reason: its "error:" and "hint:" lines ("detail:" lines quote its SQL).
_DUMP_REASON = re.compile(r"^pg_dump: (?:error|hint): (?P<reason>.+)$")
# Whatever may locate or open the database: URIs, key=value connection settings, and
# libpq's "connection to server at "host" (address), port N failed:" preamble.
_CONNECTION_URI = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_CONNECTION_SETTING = re.compile(
    r"\b(password|passfile|user|host|hostaddr|port|dbname|sslkey|sslcert)\s*=\s*('[^']*'|\S+)",
    re.IGNORECASE,
)
_SERVER_AT = re.compile(
    r'connection to server (at|on socket) "[^"]*"( \([^)]*\))?(, port \d+)?', re.IGNORECASE
)
REASON_CHARACTERS: Final = 500


def dump_failure_message(stderr_lines: Iterable[str], secret: DatabaseSecret) -> str:
    """DUMP_FAILED's message with pg_dump's own reason, sanitised: no password, user, host or
    connection string (the secret's values are removed wherever they appear)."""
    reasons = [
        match["reason"] for line in stderr_lines if (match := _DUMP_REASON.match(line.strip()))
    ]
    if not reasons:
        return _MESSAGES[DumpFailureCode.DUMP_FAILED]
    reason = " ".join(reasons)
    reason = _SERVER_AT.sub("connection to the database server", reason)
    reason = _CONNECTION_URI.sub("[connection string]", reason)
    reason = _CONNECTION_SETTING.sub(lambda match: f"{match[1]}=[hidden]", reason)
    for value in (secret.password, secret.host, secret.username):
        if value and len(value) > 2:
            reason = reason.replace(value, "[hidden]")
    if len(reason) > REASON_CHARACTERS:
        reason = reason[: REASON_CHARACTERS - 1] + "…"
    return f"pg_dump stopped with an error before the dump was complete: {reason}"


def _never() -> bool:
    return False


def dump_database(
    secret: DatabaseSecret,
    options: BackupOptions,
    write: Callable[[bytes], None],
    *,
    tools: PostgresTools,
    should_stop: Callable[[], bool] = _never,
    poll_seconds: float = 1.0,
    tls: TlsMode = TlsMode.VERIFY,
) -> DumpOutcome:
    """Dump the database (`pg_dump --format=custom`) into `write`, about a MiB at a time, while
    `pg_restore --list` reads the same bytes to check the archive and count its entries.

    `should_stop` is asked every `poll_seconds`, even while pg_dump sends nothing; when it
    answers true pg_dump is killed and DumpFailed(STOPPED) raised. An exception from `write`
    kills both tools and propagates. Both child processes are reaped whatever happens.
    """
    server_version = check_database(secret, tls=tls)
    pg_dump_version = tools.pg_dump_version
    if major_version(pg_dump_version) < major_version(server_version):
        raise DumpFailed(
            DumpFailureCode.VERSION_MISMATCH,
            f"pg_dump {pg_dump_version} is older than the database server "
            f"({server_version}); a pg_dump of the same or a newer major version is needed.",
        )
    started = time.monotonic()
    environment = client_environment(secret, application_name=APPLICATION_NAME, tls=tls)
    with _Children() as children:
        dump = children.start(
            [tools.pg_dump, "--format=custom", "--no-password", *options.pg_dump_arguments()],
            environment,
            stdin=subprocess.DEVNULL,
        )
        # pg_restore --list reads no database: it gets no credentials.
        listing_environment = {k: v for k, v in environment.items() if not k.startswith("PG")}
        listing = children.start(
            [tools.pg_restore, "--list"], listing_environment, stdin=subprocess.PIPE
        )
        summary = _ListingReader(listing, children)
        dump_said = children.log_stderr(dump, "pg_dump")
        children.log_stderr(listing, "pg_restore")
        assert dump.stdout is not None and listing.stdin is not None
        tee = _Tee(listing.stdin)

        def emit(chunk: bytes) -> None:
            tee.write(chunk)
            write(chunk)

        _pump(dump, emit, should_stop, poll_seconds)
        code = dump.wait()
        if code != 0:
            logger.warning("pg_dump failed", extra={"exit_code": code})
            if code < 0:
                raise DumpFailed(DumpFailureCode.DUMP_KILLED)
            children.join_readers()
            raise DumpFailed(DumpFailureCode.DUMP_FAILED, dump_failure_message(dump_said, secret))
        tee.close()
        toc = summary.finish(LISTING_WAIT_SECONDS)
        if listing.returncode != 0 or toc.entries == 0:
            logger.warning(
                "pg_restore could not list the archive",
                extra={"exit_code": listing.returncode, "entries": toc.entries},
            )
            raise DumpFailed(DumpFailureCode.VERIFICATION_FAILED)
    return DumpOutcome(
        toc_entries=toc.entries,
        table_data_entries=toc.table_data_entries,
        server_version=server_version,
        pg_dump_version=pg_dump_version,
        dump_seconds=round(time.monotonic() - started, 3),
    )


def _pump(
    dump: subprocess.Popen[bytes],
    emit: Callable[[bytes], None],
    should_stop: Callable[[], bool],
    poll_seconds: float,
) -> None:
    """Read pg_dump's output until it ends, emitting about CHUNK_BYTES at a time, and ask
    `should_stop` every `poll_seconds` whether data flows or not."""
    assert dump.stdout is not None
    output = dump.stdout.fileno()
    pending = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(output, selectors.EVENT_READ)
        next_poll = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_poll:
                if should_stop():
                    raise DumpFailed(DumpFailureCode.STOPPED)
                next_poll = now + poll_seconds
            if not selector.select(timeout=max(0.0, next_poll - now)):
                continue
            block = os.read(output, CHUNK_BYTES - len(pending))
            if not block:
                break
            pending += block
            if len(pending) >= CHUNK_BYTES:
                emit(bytes(pending))
                pending.clear()
    if pending:
        emit(bytes(pending))


class _Tee:
    """Copies the dump into pg_restore's input until pg_restore stops reading (it may, once
    it has the table of contents): then the dump goes on, the copy does not."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target: IO[bytes] | None = target

    def write(self, chunk: bytes) -> None:
        if self._target is None:
            return
        try:
            self._target.write(chunk)
            self._target.flush()
        except BrokenPipeError:
            self.close()

    def close(self) -> None:
        target, self._target = self._target, None
        if target is not None:
            with suppress(BrokenPipeError):  # pg_restore already left: nothing to flush to
                target.close()


class _ListingReader:
    """Reads `pg_restore --list`'s output in a thread (so it never fills its pipe and blocks
    the tee), counting entries as they come."""

    def __init__(self, listing: subprocess.Popen[bytes], children: _Children) -> None:
        self._listing = listing
        self._summary = TocSummary(0, 0)
        self._thread = children.thread(self._read, "pg_restore-list")

    def _read(self) -> None:
        assert self._listing.stdout is not None
        lines = (line.decode("utf-8", "replace") for line in self._listing.stdout)
        self._summary = parse_toc_listing(lines)

    def finish(self, timeout_seconds: float) -> TocSummary:
        """The summary once pg_restore has ended; DumpFailed(VERIFICATION_FAILED) if it does
        not end within `timeout_seconds`."""
        try:
            self._listing.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            raise DumpFailed(DumpFailureCode.VERIFICATION_FAILED) from None
        self._thread.join(timeout_seconds)
        return self._summary


class _Children:
    """Child processes that are killed if still running, reaped, and their pipes and reader
    threads closed when the block ends, however it ends."""

    def __init__(self) -> None:
        self._processes: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> _Children:
        return self

    def __exit__(self, *_: object) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            if process.stdin is not None:
                with suppress(BrokenPipeError):  # the child is gone: unflushed bytes are moot
                    process.stdin.close()
            process.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        for process in self._processes:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    def start(
        self, arguments: list[str], environment: Mapping[str, str], *, stdin: int
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # noqa: S603 - fixed program paths, no shell
            arguments,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(environment),
        )
        self._processes.append(process)
        return process

    def log_stderr(self, process: subprocess.Popen[bytes], program: str) -> list[str]:
        """Log the first lines a tool writes to stderr, truncated (they may name the host or
        user: only sanitised ones reach an operator); read all of it so the tool never
        blocks. The lines logged are also collected in the list returned."""
        said: list[str] = []

        def read() -> None:
            assert process.stderr is not None
            for number, raw in enumerate(process.stderr):
                if number < LOGGED_LINES:
                    line = raw.decode("utf-8", "replace").rstrip()[:LOGGED_LINE_CHARACTERS]
                    said.append(line)
                    logger.warning(f"{program} said", extra={"line": line})

        self.thread(read, f"{program}-stderr")
        return said

    def join_readers(self) -> None:
        """Wait for the reader threads of exited children to have read everything."""
        for thread in self._threads:
            thread.join(timeout=5)

    def thread(self, work: Callable[[], None], name: str) -> threading.Thread:
        """Run `work` (reading a child's pipe) in a thread joined when the block ends."""
        thread = threading.Thread(target=work, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread
