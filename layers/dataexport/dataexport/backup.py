"""A database backup: one `pg_dump -Fc` of the application's database, stored under `backups/`.

Operators start one over the API, or the nightly rule does. One runs at a time, under a lock
with a lease, so a backup whose task crashed cannot keep every later one out for ever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from ulid import ULID

from dataexport.export_job import utc_text

BACKUP_ID_PREFIX = "bak_"
BACKUP_ID_PATTERN = r"^bak_[0-9A-HJKMNP-TV-Z]{26}$"
BACKUP_PREFIX = "backups/"
# Names given to pg_dump's -n/-N/-t/-T/--exclude-table-data: an identifier, optionally
# schema-qualified, with pg_dump's `*` wildcard. No quotes, spaces or other pattern syntax.
NAME_PATTERN = re.compile(r"^[A-Za-z_*][A-Za-z0-9_$*]{0,62}(\.[A-Za-z_*][A-Za-z0-9_$*]{0,62})?$")
MAX_NAMES = 100
# What the API shows of the task's report (null until there is one).
REPORT_FIELDS_SHOWN = (
    "size_bytes",
    "sha256",
    "toc_entries",
    "table_data_entries",
    "server_version",
    "pg_dump_version",
)


class BackupStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class BackupTrigger(StrEnum):
    SCHEDULE = "schedule"  # the nightly rule
    MANUAL = "manual"  # POST /v1/backups


def _names(description: str) -> Any:
    return Field(default_factory=list, max_length=MAX_NAMES, description=description)


DumpName = Annotated[str, Field(min_length=1, max_length=127)]


@dataclass(frozen=True)
class NamedObject:
    """A schema or table pattern a backup names, and the field that named it (`tables[0]`)."""

    field: str
    kind: Literal["schema", "table"]
    pattern: str

    def like_patterns(self) -> tuple[str | None, str]:
        """The pattern as SQL LIKE patterns (schema or None, name), read as pg_dump reads it:
        unquoted names fold to lower case and `*` matches anything."""

        def like(part: str) -> str:
            escaped = part.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return escaped.replace("*", "%")

        schema, _, name = self.pattern.rpartition(".")
        if self.kind == "schema":
            return None, like(self.pattern)
        return (like(schema) if schema else None), like(name)


class BackupOptions(BaseModel):
    """What to dump. Empty lists mean pg_dump's defaults: every schema, every table, all data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schemas: list[DumpName] = _names("Only these schemas (pg_dump -n).")
    exclude_schemas: list[DumpName] = _names("Not these schemas (pg_dump -N).")
    tables: list[DumpName] = _names("Only these tables (pg_dump -t).")
    exclude_tables: list[DumpName] = _names("Not these tables (pg_dump -T).")
    exclude_table_data: list[DumpName] = _names(
        "Structure only for these tables, such as logs (pg_dump --exclude-table-data)."
    )

    @field_validator("schemas", "exclude_schemas", "tables", "exclude_tables", "exclude_table_data")
    @classmethod
    def _plain_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not NAME_PATTERN.match(name):
                raise ValueError(
                    f"{name!r} is not a table or schema name: letters, digits, _ and $, "
                    "optionally schema.table, with * as a wildcard"
                )
        return names

    def named_objects(self) -> list[NamedObject]:
        """Every schema and table pattern the options name, each with where it was given."""
        named: list[NamedObject] = []
        selections: tuple[tuple[str, Literal["schema", "table"]], ...] = (
            ("schemas", "schema"),
            ("exclude_schemas", "schema"),
            ("tables", "table"),
            ("exclude_tables", "table"),
            ("exclude_table_data", "table"),
        )
        for field, kind in selections:
            named += [
                NamedObject(f"{field}[{index}]", kind, name)
                for index, name in enumerate(getattr(self, field))
            ]
        return named

    def pg_dump_arguments(self) -> list[str]:
        """pg_dump's selection options, one argument each (never through a shell)."""
        arguments: list[str] = []
        for flag, names in (
            ("--schema", self.schemas),
            ("--exclude-schema", self.exclude_schemas),
            ("--table", self.tables),
            ("--exclude-table", self.exclude_tables),
            ("--exclude-table-data", self.exclude_table_data),
        ):
            arguments += [f"{flag}={name}" for name in names]
        return arguments


class BackupError(BaseModel):
    """Why a backup failed, written for an operator: no SQL, credentials or host names."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class DumpReport(BaseModel):
    """What the backup task measured and verified, written to the backup's record."""

    model_config = ConfigDict(frozen=True)

    key: str
    size_bytes: int
    sha256: str
    toc_entries: int = Field(description="Entries pg_restore --list found in the archive.")
    table_data_entries: int = Field(description="Tables whose rows the archive holds.")
    verified: bool
    server_version: str
    pg_dump_version: str
    dump_seconds: float


class Backup(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    status: BackupStatus
    trigger: BackupTrigger
    requested_by: str | None = None
    options: BackupOptions = Field(default_factory=BackupOptions)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    report: DumpReport | None = None
    error: BackupError | None = None
    execution_arn: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - (self.started_at or self.created_at)).total_seconds(), 3)

    def view(self) -> dict[str, Any]:
        """The backup as the API shows it."""
        return {
            "id": self.id,
            "status": self.status.value,
            "trigger": self.trigger.value,
            "requested_by": self.requested_by,
            "options": self.options.model_dump(),
            "created_at": utc_text(self.created_at),
            "finished_at": utc_text(self.finished_at),
            "expires_at": utc_text(self.expires_at),
            "duration_seconds": self.duration_seconds,
            **{name: getattr(self.report, name, None) for name in REPORT_FIELDS_SHOWN},
            "verified": self.report is not None and self.report.verified,
            "error": self.error.model_dump() if self.error else None,
        }


def new_backup_id() -> str:
    return f"{BACKUP_ID_PREFIX}{ULID()}"


def backup_key(backup_id: str) -> str:
    return f"{BACKUP_PREFIX}{backup_id}.dump"


def backup_file_name(backup: Backup) -> str:
    return f"backup_{backup.created_at.strftime('%Y-%m-%dT%H-%M-%SZ')}_{backup.id}.dump"


def backup_expiry(finished_at: datetime, retention_days: int) -> datetime:
    return finished_at + timedelta(days=retention_days)
