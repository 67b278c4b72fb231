"""Database backups: who may start and download them, the lock, and each step of the backup
state machine (Begin, Record, Fail), plus the task that runs pg_dump.

One backup runs at a time. Starting one takes the lock (a lease in DynamoDB) before anything
else, so a second request is refused with the running backup's id. The task renews the lease
while it dumps; a task or workflow that dies stops renewing, and the next backup to start after
the lease ran out takes over, marking the lost one failed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.backup_store import BackupPage, BackupStore
from dataexport.adapters.object_store import ObjectStore, content_disposition
from dataexport.adapters.pg_dump import DumpFailed, PostgresTools, dump_database
from dataexport.adapters.postgres import DatabaseSecret
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.audit import AuditEventType
from dataexport.backup import (
    Backup,
    BackupError,
    BackupOptions,
    BackupStatus,
    BackupTrigger,
    DumpReport,
    NamedObject,
    backup_expiry,
    backup_file_name,
    backup_key,
    new_backup_id,
)
from dataexport.errors import (
    BackupExpired,
    BackupLockLost,
    BackupNotReady,
    BackupRunning,
    BackupsNotConfigured,
    BackupTaskFailed,
    InvalidRequest,
    PermissionDenied,
)
from dataexport.export_job import utc_now
from dataexport.identity import PLATFORM_ORG_ID, Caller, RequestOrigin, Role

logger = Logger(child=True)

SYSTEM_ACTOR = "dataexport-backup"
# A lock that changes hands between our failed write and our read is tried again this often.
ACQUIRE_ATTEMPTS = 3

BACKUP_CONTENT_TYPE = "application/octet-stream"

LOCK_LOST = BackupError(
    code="LOCK_LOST", message="Another backup took the lock while this one was running."
)
START_FAILED = BackupError(code="START_FAILED", message="The backup could not be started.")
LOCK_EXPIRED = BackupError(
    code="LOCK_EXPIRED",
    message=(
        "The backup stopped renewing its lock (its task or workflow was lost); "
        "a later backup took over."
    ),
)


@dataclass(frozen=True, kw_only=True)
class BackupServices:
    store: BackupStore
    objects: ObjectStore
    lock_lease: timedelta
    retention_days: int
    # The task writes only its own record; every audited step has the trail.
    audit: AuditTrail | None = None
    # Only the API starts executions; the state machine's steps run inside one.
    workflow: ExportWorkflow | None = None
    download_url_ttl_seconds: int = 300
    clock: Callable[[], datetime] = utc_now
    # The API's check of the names a backup gives against the database's catalog.
    unmatched_objects: Callable[[BackupOptions], list[NamedObject]] | None = None


# --------------------------------------------------------------------------- operators (API)
def require_operator(caller: Caller) -> None:
    if caller.role is not Role.OPERATOR:
        raise PermissionDenied("Database backups are for operators.", {"role": Role.OPERATOR})


def request_backup(
    caller: Caller, options: BackupOptions, services: BackupServices, origin: RequestOrigin
) -> Backup:
    """Start a backup for an operator: take the lock, record it, start its execution."""
    require_operator(caller)
    if services.workflow is None:
        raise BackupsNotConfigured(
            "This deployment has no backup task (its BackupImageUri parameter is empty)."
        )
    _check_named_objects(options, services)
    backup = start_backup(services, options, BackupTrigger.MANUAL, caller, origin)
    try:
        services.workflow.start(backup.id)
    except Exception:
        logger.exception("Could not start the backup's execution", extra={"backup_id": backup.id})
        _mark_failed(services, backup.id, START_FAILED)
        raise
    logger.info("Backup requested", extra={"backup_id": backup.id})
    return backup


def _check_named_objects(options: BackupOptions, services: BackupServices) -> None:
    """Refuse, naming them, the schemas and tables that match nothing in the database: pg_dump
    would stop on them (or, excluded, protect nothing) after the backup had started."""
    if services.unmatched_objects is None:
        return
    missing = services.unmatched_objects(options)
    if not missing:
        return
    described = "; ".join(f"no {item.kind} matches {item.pattern!r}" for item in missing)
    raise InvalidRequest(
        missing[0].field,
        f"The database has {described}.",
        {"missing": [{"field": item.field, "name": item.pattern} for item in missing]},
    )


def list_backups(
    caller: Caller, services: BackupServices, limit: int, cursor: str | None
) -> BackupPage:
    require_operator(caller)
    return services.store.page(limit, cursor)


def get_backup(caller: Caller, backup_id: str, services: BackupServices) -> Backup:
    require_operator(caller)
    return services.store.get(backup_id)


def download_url(
    caller: Caller, backup_id: str, services: BackupServices, origin: RequestOrigin
) -> str:
    """A short-lived presigned URL of a completed backup's archive, audited."""
    backup = get_backup(caller, backup_id, services)
    now = services.clock()
    if backup.status is BackupStatus.COMPLETED and backup.expires_at and backup.expires_at <= now:
        raise BackupExpired(
            f"Backup {backup_id} has expired; its archive is deleted.", {"id": backup_id}
        )
    if backup.status is not BackupStatus.COMPLETED or backup.report is None:
        raise BackupNotReady(
            f"Backup {backup_id} is {backup.status.value}; only a completed backup downloads.",
            {"id": backup_id, "status": backup.status.value},
        )
    _audit(
        services,
        AuditEventType.BACKUP_DOWNLOADED,
        backup,
        {"sha256": backup.report.sha256, "size_bytes": backup.report.size_bytes},
        caller=caller,
        origin=origin,
    )
    logger.info("Backup download link issued", extra={"backup_id": backup.id})
    return services.objects.presigned_download_url(
        backup.report.key, backup_file_name(backup), services.download_url_ttl_seconds
    )


# --------------------------------------------------------------------------- starting
def start_backup(
    services: BackupServices,
    options: BackupOptions,
    trigger: BackupTrigger,
    caller: Caller | None = None,
    origin: RequestOrigin | None = None,
) -> Backup:
    """Take the lock for a new backup and record it as running; BackupRunning if another one
    holds the lock. A lost backup whose lease ran out is marked failed as its lock is taken."""
    now = services.clock()
    backup_id = new_backup_id()
    for _ in range(ACQUIRE_ATTEMPTS):
        taken = services.store.acquire_lock(backup_id, now, services.lock_lease)
        if taken is not None:
            break
        holder = services.store.lock_holder(now)
        if holder is not None:
            raise BackupRunning(holder)
    else:
        raise BackupRunning(services.store.lock_holder(now) or "unknown")
    if taken.previous_holder is not None:
        _abandon(services, taken.previous_holder)
    backup = Backup(
        id=backup_id,
        status=BackupStatus.RUNNING,
        trigger=trigger,
        requested_by=caller.user_id if caller else None,
        options=options,
        created_at=now,
    )
    try:
        services.store.create(backup)
        _audit(
            services,
            AuditEventType.BACKUP_STARTED,
            backup,
            {"trigger": trigger.value, **{k: v for k, v in options.model_dump().items() if v}},
            caller=caller,
            origin=origin,
        )
    except Exception:
        # A backup that is not recorded and audited does not run, nor keep the lock.
        services.store.fail(backup_id, START_FAILED, now)
        services.store.release_lock(backup_id)
        raise
    return backup


def _abandon(services: BackupServices, backup_id: str) -> None:
    """Mark a backup whose lease ran out failed (if it still shows as running)."""
    failed = services.store.fail(backup_id, LOCK_EXPIRED, services.clock())
    if failed is None:
        return
    logger.warning("Backup lost its lock", extra={"backup_id": backup_id})
    services.objects.delete(backup_key(backup_id))
    _audit(services, AuditEventType.BACKUP_FAILED, failed, LOCK_EXPIRED.model_dump())


# --------------------------------------------------------------------------- state machine steps
@dataclass(frozen=True)
class BeginOutcome:
    backup_id: str | None
    started: bool
    running_backup_id: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "started": self.started,
            "running_backup_id": self.running_backup_id,
        }


def begin(
    services: BackupServices,
    backup_id: str | None,
    execution_arn: str,
    nightly_options: BackupOptions,
) -> BeginOutcome:
    """The first step. Started by the API, the backup already holds the lock: renew it and
    note the execution. Started by the nightly rule (no id), start one here, or skip the night
    if another backup is running."""
    if backup_id is None:
        try:
            backup = start_backup(services, nightly_options, BackupTrigger.SCHEDULE)
        except BackupRunning as exc:
            running = str(exc.detail["running_backup_id"])
            logger.info("Nightly backup skipped", extra={"running_backup_id": running})
            return BeginOutcome(None, started=False, running_backup_id=running)
        backup_id = backup.id
    else:
        backup = services.store.get(backup_id)
        if backup.status is not BackupStatus.RUNNING:
            raise BackupLockLost(f"Backup {backup_id} is already {backup.status.value}.")
        if services.store.acquire_lock(backup_id, services.clock(), services.lock_lease) is None:
            raise BackupLockLost(f"Backup {backup_id} no longer holds the backup lock.")
    services.store.mark_started(backup_id, execution_arn, services.clock())
    return BeginOutcome(backup_id, started=True)


def record(services: BackupServices, backup_id: str, task: Mapping[str, Any]) -> Backup:
    """After the task stopped: a backup whose task exited 0 having reported a verified dump,
    whose archive is stored at the reported size, is completed; anything else is a
    BackupTaskFailed for the Fail step. Releases the lock once completed."""
    backup = services.store.get(backup_id)
    if backup.status is BackupStatus.COMPLETED:
        services.store.release_lock(backup_id)
        return backup
    exit_code = task_exit_code(task)
    report = backup.report
    if exit_code != 0 or report is None:
        raise BackupTaskFailed(_task_stopped_message(exit_code))
    if not report.verified or services.objects.size_of(report.key) != report.size_bytes:
        raise BackupTaskFailed("The stored archive does not match what the task reported.")
    # Audited before it is marked completed: a retry after a failed write may record it twice,
    # but a completed backup is never left unaudited.
    _audit(
        services,
        AuditEventType.BACKUP_COMPLETED,
        backup,
        {
            "size_bytes": report.size_bytes,
            "sha256": report.sha256,
            "dump_ms": round(report.dump_seconds * 1000),
            "verified": report.verified,
            "table_data_entries": report.table_data_entries,
        },
    )
    now = services.clock()
    completed = services.store.complete(backup_id, now, backup_expiry(now, services.retention_days))
    if completed is None:
        raise BackupTaskFailed(f"Backup {backup_id} is no longer running.")
    services.store.release_lock(backup_id)
    logger.info("Backup completed", extra={"backup_id": backup_id, "bytes": report.size_bytes})
    return completed


def fail(services: BackupServices, backup_id: str, error_name: str, cause: str | None) -> Backup:
    """The Catch path: mark the backup failed with a safe message (the task's own, when it
    reported one), delete any archive it left, and release the lock. Safe to run twice."""
    backup = services.store.get(backup_id)
    if backup.status is not BackupStatus.RUNNING:
        services.store.release_lock(backup_id)
        return backup
    error = backup.error or failure_error(error_name, cause)
    # None: it finished meanwhile (another attempt of this step); read how.
    return _mark_failed(services, backup_id, error) or services.store.get(backup_id)


def _mark_failed(services: BackupServices, backup_id: str, error: BackupError) -> Backup | None:
    """The backup failed (None if it had already finished), its archive gone, its lock free."""
    failed = services.store.fail(backup_id, error, services.clock())
    # Nothing half-written stays: an archive only exists for a completed backup.
    services.objects.delete(backup_key(backup_id))
    if failed is not None:
        _audit(services, AuditEventType.BACKUP_FAILED, failed, error.model_dump())
        logger.warning("Backup failed", extra={"backup_id": backup_id, "code": error.code})
    services.store.release_lock(backup_id)
    return failed


def task_exit_code(task: Mapping[str, Any]) -> int | None:
    """The backup container's exit code from RunTask's description (None if it never ran)."""
    containers = task.get("containers") or task.get("Containers") or []
    for container in containers:
        if isinstance(container, Mapping):
            code = container.get("ExitCode", container.get("exitCode"))
            if isinstance(code, int):
                return code
    return None


def _task_stopped_message(exit_code: int | None) -> str:
    if exit_code is None:
        return "The backup task stopped before its container ran."
    if exit_code == 0:
        return "The backup task ended without reporting a verified dump."
    if exit_code in (137, 143):
        return f"The backup task was stopped or killed (exit code {exit_code})."
    return f"The backup task failed (exit code {exit_code})."


def failure_error(error_name: str, cause: str | None) -> BackupError:
    """A safe error from a Catch's {Error, Cause}: our own step errors keep their message;
    anything else (ECS, Step Functions) is described by kind, never quoted."""
    own_codes = {
        BackupTaskFailed.__name__: BackupTaskFailed.error_code,
        BackupLockLost.__name__: LOCK_LOST.code,
    }
    if error_name in own_codes:
        message = _own_message(cause) or "The backup failed."
        return BackupError(code=own_codes[error_name], message=message)
    if error_name == "States.Timeout":
        return BackupError(code="TIMED_OUT", message="The backup ran past its time limit.")
    if error_name == "States.TaskFailed":
        return BackupError(
            code="TASK_FAILED",
            message=_task_stopped_message(task_exit_code(_json_object(cause) or {})),
        )
    return BackupError(code="BACKUP_FAILED", message=f"The backup failed ({error_name}).")


def _json_object(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _own_message(cause: str | None) -> str | None:
    """The message of one of our errors, from the Lambda error payload Step Functions keeps."""
    payload = _json_object(cause)
    message = payload.get("errorMessage") if payload else None
    return str(message)[:500] if message else None


def _audit(
    services: BackupServices,
    type: AuditEventType,
    backup: Backup,
    detail: Mapping[str, Any],
    *,
    caller: Caller | None = None,
    origin: RequestOrigin | None = None,
) -> None:
    assert services.audit is not None, "audited steps are given the audit trail"
    services.audit.record(
        type,
        org_id=PLATFORM_ORG_ID,
        actor_id=caller.user_id if caller else SYSTEM_ACTOR,
        actor_role=caller.role if caller else "system",
        target_type="backup",
        target_id=backup.id,
        source_ip=origin.source_ip if origin else None,
        request_id=origin.request_id if origin else None,
        detail=detail,
    )


# --------------------------------------------------------------------------- the task
class LeaseKeeper:
    """Renews the backup's lease from a thread of its own while the dump runs; `lost` tells
    the dump to stop if another backup took the lock."""

    def __init__(self, services: BackupServices, backup_id: str) -> None:
        self._services = services
        self._backup_id = backup_id
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._services.lock_lease.total_seconds() / 3
        # First at once: the task's start (Fargate provisioning, the image pull) used up part
        # of the lease Begin renewed.
        while True:
            try:
                held = self._services.store.renew_lock(
                    self._backup_id, self._services.clock(), self._services.lock_lease
                )
            except Exception:
                # One failed renewal is not a lost lease; the next attempt may succeed.
                logger.exception("Could not renew the backup lock")
                held = True
            if not held:
                logger.warning("Backup lock taken by another backup")
                self._lost.set()
                return
            if self._stop.wait(interval):
                return


def run_backup_task(
    services: BackupServices, backup_id: str, secret: DatabaseSecret, tools: PostgresTools
) -> int:
    """The container's work: dump the database straight into a multipart upload under
    `backups/`, verified on the way, then report it on the backup's record. Returns the exit
    code: 0 only with a verified archive stored and reported. A failure aborts the upload, so
    no object appears, and leaves its safe message for the Fail step."""
    backup = services.store.get(backup_id)
    if backup.status is not BackupStatus.RUNNING:
        logger.warning("Backup is not running", extra={"backup_id": backup_id})
        return 1
    key = backup_key(backup_id)
    lease = LeaseKeeper(services, backup_id)
    try:
        with (
            lease,
            services.objects.open_sink(
                key,
                BACKUP_CONTENT_TYPE,
                content_disposition=content_disposition(backup_file_name(backup)),
            ) as sink,
        ):
            outcome = dump_database(
                secret, backup.options, sink.write, tools=tools, should_stop=lambda: lease.lost
            )
            if lease.lost:
                raise BackupLockLost(f"Backup {backup_id} lost its lock while dumping.")
            stored = sink.complete()
    except DumpFailed as exc:
        # Stopped because another backup took the lock: say that, not "stopped".
        return _task_failed(services, backup_id, LOCK_LOST if lease.lost else exc.backup_error())
    except BackupLockLost:
        return _task_failed(services, backup_id, LOCK_LOST)
    report = DumpReport(
        key=stored.key,
        size_bytes=stored.bytes,
        sha256=stored.sha256,
        toc_entries=outcome.toc_entries,
        table_data_entries=outcome.table_data_entries,
        verified=True,
        server_version=outcome.server_version,
        pg_dump_version=outcome.pg_dump_version,
        dump_seconds=round(outcome.dump_seconds, 3),
    )
    if services.store.save_report(backup_id, report) is None:
        # Marked failed meanwhile (its lock was taken over): its archive must not stay.
        services.objects.delete(key)
        logger.warning("Backup finished after it was marked failed", extra={"backup_id": backup_id})
        return 1
    logger.info(
        "Backup dumped",
        extra={"backup_id": backup_id, "bytes": stored.bytes, "entries": outcome.toc_entries},
    )
    return 0


def _task_failed(services: BackupServices, backup_id: str, error: BackupError) -> int:
    logger.warning("Backup task failed", extra={"backup_id": backup_id, "code": error.code})
    services.store.save_task_error(backup_id, error)
    return 1
