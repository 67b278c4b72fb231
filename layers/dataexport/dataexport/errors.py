"""Domain errors. Each maps to one HTTP answer (API) or one state machine error name (steps).

Step functions raise these by name: the state machine's Retry and Catch match the class name,
never the message. Messages are written for the person who made the request: they never hold
SQL, stack traces, tokens or row data.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DataExportError(Exception):
    """Base of every error dataexport raises on purpose."""

    error_code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail or {}
        # Extra HTTP headers of the answer (e.g. Retry-After).
        self.headers: dict[str, str] = {}


class InvalidRequest(DataExportError):
    """The request names an unknown field, a bad value or an operator the catalog forbids."""

    error_code = "VALIDATION_ERROR"
    http_status = 400

    def __init__(self, field: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, {"field": field, **(detail or {})})
        self.field = field


class InvalidDateRange(InvalidRequest):
    """The time range is empty, reversed, or longer than the dataset allows."""

    error_code = "INVALID_DATE_RANGE"


class IdempotencyKeyReused(InvalidRequest):
    """An Idempotency-Key sent again with a different request body: the one 422."""

    error_code = "IDEMPOTENCY_KEY_REUSED"
    http_status = 422

    def __init__(self) -> None:
        super().__init__(
            "Idempotency-Key",
            "This Idempotency-Key was already used with a different request body.",
        )


class RequestTooLarge(DataExportError):
    """A request body over the size every route accepts; refused before it is read."""

    error_code = "REQUEST_TOO_LARGE"
    http_status = 413

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(
            f"The request body is {size} bytes; at most {max_bytes} are accepted.",
            {"field": "body", "max_bytes": max_bytes},
        )


class UnsupportedMediaType(DataExportError):
    """A request body that is not JSON (by its Content-Type)."""

    error_code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415

    def __init__(self, content_type: str | None) -> None:
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        super().__init__(
            f"A request body must be JSON with Content-Type application/json; this one has {sent}.",
            {"field": "Content-Type"},
        )


class Unauthenticated(DataExportError):
    error_code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(DataExportError):
    error_code = "PERMISSION_DENIED"
    http_status = 403


class ExportNotFound(DataExportError):
    """Also raised for another user's or tenant's export: its existence is never revealed."""

    error_code = "EXPORT_NOT_FOUND"
    http_status = 404

    def __init__(self, export_id: str) -> None:
        super().__init__(f"Export {export_id} was not found.", {"id": export_id})


class ScheduleNotFound(DataExportError):
    """Also raised for another user's or tenant's schedule: its existence is never revealed."""

    error_code = "SCHEDULE_NOT_FOUND"
    http_status = 404

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"Schedule {schedule_id} was not found.", {"id": schedule_id})


class DatasetNotFound(DataExportError):
    """Also raised for a dataset the caller's role may not use: its existence is never revealed.
    `field` names where a request referred to it (a body field or query parameter)."""

    error_code = "DATASET_NOT_FOUND"
    http_status = 404

    def __init__(self, name: str, field: str | None = None) -> None:
        detail = {"dataset": name} if field is None else {"dataset": name, "field": field}
        super().__init__(f"Dataset {name!r} does not exist.", detail)


class DatasetHidden(DatasetNotFound):
    """A dataset the caller's role may not use: answered exactly as a missing one (same code,
    status and message), but audited as a refused permission."""


class ExportExpired(DataExportError):
    error_code = "EXPORT_EXPIRED"
    http_status = 410


class ExportNotReady(DataExportError):
    error_code = "EXPORT_NOT_READY"
    http_status = 409


class ExportNotDownloadable(DataExportError):
    """A cancelled or failed export: it has no file and never will."""

    error_code = "EXPORT_NOT_DOWNLOADABLE"
    http_status = 409


class Conflict(DataExportError):
    error_code = "CONFLICT"
    http_status = 409


class IllegalTransition(Conflict):
    """A status change that the job's life cycle does not allow (e.g. completed -> running)."""


class RateLimitExceeded(DataExportError):
    """The caller created as many exports as the rolling window allows."""

    error_code = "RATE_LIMIT_EXCEEDED"
    http_status = 429

    def __init__(self, message: str, retry_after_seconds: int, headers: dict[str, str]) -> None:
        super().__init__(message, {"retry_after_seconds": retry_after_seconds})
        self.headers = dict(headers)


class CatalogError(DataExportError):
    """A dataset declaration is invalid; raised when the catalog loads, never at export time."""


class ConfigurationError(DataExportError):
    """A required environment variable is missing or malformed."""


# ----- errors raised by the export steps; the state machine matches these names


class SourceUnavailable(DataExportError):
    """The database could not be reached or timed out; the state machine retries it."""

    error_code = "SOURCE_UNAVAILABLE"
    http_status = 503


class QueryFailed(DataExportError):
    """The database refused the export query; retrying would not help."""

    error_code = "QUERY_FAILED"


class ExportCancelled(DataExportError):
    """The job stopped running (it was cancelled) while a step still worked on it; the step
    stops and removes what it wrote. Not retried by the state machine."""

    error_code = "EXPORT_CANCELLED"
    http_status = 409


class DeliveryFailed(DataExportError):
    """A delivery attempt may succeed later (a 5xx or 429, a timeout, a broken connection):
    the state machine retries the Deliver step with backoff, then gives up on the delivery
    (never on the export)."""

    error_code = "DELIVERY_FAILED"
    http_status = 502


class BackupNotFound(DataExportError):
    error_code = "BACKUP_NOT_FOUND"
    http_status = 404

    def __init__(self, backup_id: str) -> None:
        super().__init__(f"Backup {backup_id} was not found.", {"id": backup_id})


class BackupRunning(Conflict):
    """One backup runs at a time: another one holds the lock."""

    def __init__(self, running_backup_id: str) -> None:
        super().__init__(
            f"Backup {running_backup_id} is running; start another once it has finished.",
            {"running_backup_id": running_backup_id},
        )


class BackupsNotConfigured(DataExportError):
    error_code = "BACKUPS_NOT_CONFIGURED"
    http_status = 503


class BackupExpired(DataExportError):
    error_code = "BACKUP_EXPIRED"
    http_status = 410


class BackupNotReady(DataExportError):
    error_code = "BACKUP_NOT_READY"
    http_status = 409


class BackupLockLost(DataExportError):
    """The backup no longer holds the lock (its lease ran out and another backup took it): it
    must stop, and is not retried."""

    error_code = "BACKUP_LOCK_LOST"
    http_status = 409


class BackupTaskFailed(DataExportError):
    """The backup task stopped without a verified dump; the state machine marks it failed."""

    error_code = "BACKUP_FAILED"
    http_status = 500
