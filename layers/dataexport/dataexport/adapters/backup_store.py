"""Database backups and the one lock they share, in DynamoDB (BackupsTable), through pynamodb.

Each backup is an item keyed by its id, listed newest first through the kind-created-index.
The lock is one more item ("lock#database", outside the index) holding the running backup's id
and a lease: taking it is a conditional write that succeeds when it is free, when its lease ran
out, or when the caller already holds it. Its TTL only tidies the table: the lease decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.attributes import JSONAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model, parse_sortable_utc, sortable_utc
from dataexport.adapters.page_cursor import decode_cursor, encode_cursor
from dataexport.backup import (
    Backup,
    BackupError,
    BackupOptions,
    BackupStatus,
    BackupTrigger,
    DumpReport,
)
from dataexport.errors import BackupNotFound
from dataexport.store_keys import BACKUP_LOCK_KEY

BACKUP_KIND = "backup"
# Records outlive their files by this much, so the history shows what expired.
RECORD_TTL_AFTER_EXPIRY = timedelta(days=90)
# A failed or unfinished backup has no expiry of its own: its record goes after this long.
RECORD_TTL_WITHOUT_FILE = timedelta(days=120)


class _KindCreatedIndex(GlobalSecondaryIndex["BackupItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "kind-created-index"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class BackupItem(Model):
    """Storage shape of a Backup; never leaves this module."""

    class Meta:
        table_name = "BackupsTable"  # replaced per deployment by bound_model

    pk = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    trigger = UnicodeAttribute()
    requested_by = UnicodeAttribute(null=True)
    options = JSONAttribute()
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    expires_at = UnicodeAttribute(null=True)
    report = JSONAttribute(null=True)
    error = JSONAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    ttl = TTLAttribute(null=True)

    kind_created_index = _KindCreatedIndex()


class LockItem(Model):
    class Meta:
        table_name = "BackupsTable"

    pk = UnicodeAttribute(hash_key=True)
    holder = UnicodeAttribute()
    lease_until = UnicodeAttribute()
    acquired_at = UnicodeAttribute()
    ttl = TTLAttribute(null=True)


@dataclass(frozen=True)
class BackupPage:
    backups: list[Backup]
    next_cursor: str | None


@dataclass(frozen=True)
class LockTaken:
    """What acquiring the lock found: the holder it took over from (its lease had run out)."""

    previous_holder: str | None


def _condition_failed(exc: PutError | UpdateError | DeleteError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


class BackupStore:
    """Reads and writes backups and the backup lock; the only code that knows the table."""

    def __init__(self, table_name: str, region: str) -> None:
        self._backups = bound_model(BackupItem, table_name, region)
        self._locks = bound_model(LockItem, table_name, region)

    # ----------------------------------------------------------------- backups
    def create(self, backup: Backup) -> None:
        item = self._backups(
            backup.id,
            kind=BACKUP_KIND,
            status=backup.status.value,
            trigger=backup.trigger.value,
            requested_by=backup.requested_by,
            options=backup.options.model_dump(),
            created_at=sortable_utc(backup.created_at),
            execution_arn=backup.execution_arn,
            ttl=backup.created_at + RECORD_TTL_WITHOUT_FILE,
        )
        item.save(condition=self._backups.pk.does_not_exist())

    def get(self, backup_id: str) -> Backup:
        try:
            item = self._backups.get(backup_id, consistent_read=True)
        except DoesNotExist:
            raise BackupNotFound(backup_id) from None
        if item.kind != BACKUP_KIND:
            raise BackupNotFound(backup_id)
        return self._to_backup(item)

    def page(self, limit: int, cursor: str | None) -> BackupPage:
        """Backups newest first, a page at a time."""
        results = self._backups.kind_created_index.query(
            BACKUP_KIND,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor, {"kind": BACKUP_KIND}),
        )
        backups = [self._to_backup(item) for item in results]
        return BackupPage(backups, encode_cursor(results.last_evaluated_key, len(backups), limit))

    def mark_started(self, backup_id: str, execution_arn: str | None, now: datetime) -> Backup:
        """Note the execution that runs a backup; BackupNotFound unless it is still running."""
        actions: list[Action] = [self._backups.started_at.set(sortable_utc(now))]
        if execution_arn is not None:
            actions.append(self._backups.execution_arn.set(execution_arn))
        updated = self._update_running(backup_id, actions)
        if updated is None:
            raise BackupNotFound(backup_id)
        return updated

    def save_report(self, backup_id: str, report: DumpReport) -> Backup | None:
        """The task's measurements of its verified dump (None if the backup is no longer
        running: it was marked failed meanwhile)."""
        return self._update_running(
            backup_id, [self._backups.report.set(report.model_dump(mode="json"))]
        )

    def save_task_error(self, backup_id: str, error: BackupError) -> Backup | None:
        """Why the task failed, in its own words, for the step that marks the backup failed."""
        return self._update_running(backup_id, [self._backups.error.set(error.model_dump())])

    def complete(self, backup_id: str, now: datetime, expires_at: datetime) -> Backup | None:
        """Mark a running backup with a report completed (None if it is not one)."""
        return self._update_running(
            backup_id,
            [
                self._backups.status.set(BackupStatus.COMPLETED.value),
                self._backups.finished_at.set(sortable_utc(now)),
                self._backups.expires_at.set(sortable_utc(expires_at)),
                self._backups.error.remove(),
                self._backups.ttl.set(expires_at + RECORD_TTL_AFTER_EXPIRY),
            ],
            self._backups.report.exists(),
        )

    def fail(self, backup_id: str, error: BackupError, now: datetime) -> Backup | None:
        """Mark a running backup failed (None if it had already finished)."""
        return self._update_running(
            backup_id,
            [
                self._backups.status.set(BackupStatus.FAILED.value),
                self._backups.finished_at.set(sortable_utc(now)),
                self._backups.error.set(error.model_dump()),
                self._backups.report.remove(),
            ],
        )

    # ----------------------------------------------------------------- the lock
    def acquire_lock(self, holder: str, now: datetime, lease: timedelta) -> LockTaken | None:
        """Take the lock for `holder` until `now + lease`; None while another backup holds it.

        Also succeeds when `holder` already holds it (a retried step, or a renewal).
        """
        previous = self.lock_holder(now, include_expired=True)
        item = self._locks(
            BACKUP_LOCK_KEY,
            holder=holder,
            lease_until=sortable_utc(now + lease),
            acquired_at=sortable_utc(now),
            ttl=now + lease + timedelta(days=1),
        )
        free = (
            self._locks.pk.does_not_exist()
            | (self._locks.lease_until < sortable_utc(now))
            | (self._locks.holder == holder)
        )
        try:
            item.save(condition=free)
        except PutError as exc:
            if _condition_failed(exc):
                return None
            raise
        return LockTaken(previous if previous != holder else None)

    def renew_lock(self, holder: str, now: datetime, lease: timedelta) -> bool:
        """Extend `holder`'s lease; False if another backup took the lock (a lease that ran
        out with nobody taking over is simply extended)."""
        item = self._locks(BACKUP_LOCK_KEY)
        held = self._locks.holder == holder
        try:
            item.update(
                actions=[
                    self._locks.lease_until.set(sortable_utc(now + lease)),
                    self._locks.ttl.set(now + lease + timedelta(days=1)),
                ],
                condition=held,
            )
        except UpdateError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def release_lock(self, holder: str) -> bool:
        """Free the lock if `holder` has it (False, changing nothing, if it does not)."""
        try:
            self._locks(BACKUP_LOCK_KEY).delete(condition=self._locks.holder == holder)
        except DeleteError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def lock_holder(self, now: datetime, *, include_expired: bool = False) -> str | None:
        """The backup holding the lock at `now` (with `include_expired`, also one whose lease
        has run out)."""
        try:
            item = self._locks.get(BACKUP_LOCK_KEY, consistent_read=True)
        except DoesNotExist:
            return None
        if not include_expired and item.lease_until < sortable_utc(now):
            return None
        return str(item.holder)

    # ----------------------------------------------------------------- mapping
    def _update_running(
        self, backup_id: str, actions: list[Action], extra: Condition | None = None
    ) -> Backup | None:
        condition = (self._backups.kind == BACKUP_KIND) & (
            self._backups.status == BackupStatus.RUNNING.value
        )
        if extra is not None:
            condition = condition & extra
        item = self._backups(backup_id)
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if _condition_failed(exc):
                return None
            raise
        return self._to_backup(item)

    def _to_backup(self, item: BackupItem) -> Backup:
        return Backup(
            id=item.pk,
            status=BackupStatus(item.status),
            trigger=BackupTrigger(item.trigger),
            requested_by=item.requested_by,
            options=BackupOptions.model_validate(item.options or {}),
            created_at=datetime.fromisoformat(item.created_at),
            started_at=parse_sortable_utc(item.started_at),
            finished_at=parse_sortable_utc(item.finished_at),
            expires_at=parse_sortable_utc(item.expires_at),
            report=DumpReport.model_validate(item.report) if item.report else None,
            error=BackupError.model_validate(item.error) if item.error else None,
            execution_arn=item.execution_arn,
        )
