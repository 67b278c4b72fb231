"""The audit trail: one append-only, hash-chained sequence of events per tenant.

Each event carries `prev_hash`, the hash of the event before it in its tenant's chain (64 zeros
for the first), and `hash`, the SHA-256 of the canonical JSON of every other field. Changing,
removing or reordering a stored event therefore breaks the chain at that event, and
`verify_chain` names the first place where it breaks.

The chain proves the order and content of what it holds; it cannot prove that nothing was cut
from its end. `ChainReport.head_seq` and `head_hash` are there to be noted somewhere else (a
ticket, a log, a later report) so that a later verification can show the head has not gone back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from ulid import ULID

from dataexport.errors import DataExportError
from dataexport.identity import Role

GENESIS_HASH: Final = "0" * 64
EVENT_ID_PREFIX: Final = "aud_"
SYSTEM_ROLE: Final = "system"

MAX_DETAIL_KEYS: Final = 16
MAX_DETAIL_TEXT: Final = 256
MAX_DETAIL_LIST: Final = 32
MAX_DETAIL_BYTES: Final = 2048
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Detail is metadata about an action. These never belong in it, whatever the caller thinks.
_FORBIDDEN_KEY_PARTS: Final = ("token", "secret", "password", "authorization", "cookie", "url")
_FORBIDDEN_VALUE = re.compile(r"^(https?://|eyJ[\w-]*\.[\w-]+\.)", re.IGNORECASE)
_HASH = re.compile(r"^[0-9a-f]{64}$")


class AuditTrailBusy(DataExportError):
    """Concurrent appends to one tenant's chain kept taking the next seq; retrying may help."""

    error_code = "AUDIT_UNAVAILABLE"
    http_status = 503


class AuditEventType(StrEnum):
    DATA_EXPORT = "DATA_EXPORT"
    DATA_EXPORTED = "DATA_EXPORTED"
    DATA_DELETED = "DATA_DELETED"
    EXPORT_CANCELLED = "EXPORT_CANCELLED"
    EXPORT_FAILED = "EXPORT_FAILED"
    LEGAL_HOLD_SET = "LEGAL_HOLD_SET"
    LEGAL_HOLD_CLEARED = "LEGAL_HOLD_CLEARED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    SCHEDULE_CREATED = "SCHEDULE_CREATED"
    SCHEDULE_UPDATED = "SCHEDULE_UPDATED"
    SCHEDULE_DELETED = "SCHEDULE_DELETED"
    SCHEDULE_RUN = "SCHEDULE_RUN"
    RETENTION_PURGED = "RETENTION_PURGED"
    RETENTION_POLICY_UPDATED = "RETENTION_POLICY_UPDATED"
    BACKUP_STARTED = "BACKUP_STARTED"
    BACKUP_COMPLETED = "BACKUP_COMPLETED"
    BACKUP_FAILED = "BACKUP_FAILED"
    BACKUP_DOWNLOADED = "BACKUP_DOWNLOADED"


ActorRole = Literal["member", "admin", "operator", "system"]
DetailValue = str | int | bool | None | list[str]


def _check_hash(value: str) -> str:
    if not _HASH.fullmatch(value):
        raise ValueError("must be 64 lowercase hexadecimal digits")
    return value


def _check_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone")
    return value.astimezone(UTC)


HashText = Annotated[str, AfterValidator(_check_hash)]
UtcDatetime = Annotated[datetime, AfterValidator(_check_utc)]


def audit_timestamp(value: datetime) -> str:
    """The one text form of an event's time: fixed width, UTC, microseconds (sorts as text)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_event_id() -> str:
    return EVENT_ID_PREFIX + str(ULID())


class AuditEvent(BaseModel):
    """One recorded action of one tenant, sealed into its tenant's chain.

    A stored event is loaded as it is, even with a hash that no longer matches: deciding
    whether it does is `verify_chain`'s job.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str = Field(min_length=1, max_length=256)
    seq: int = Field(ge=1)
    event_id: str = Field(min_length=1, max_length=64)
    type: AuditEventType
    at: UtcDatetime
    actor_id: str = Field(min_length=1, max_length=256)
    actor_role: ActorRole
    target_type: str | None = Field(default=None, max_length=64)
    target_id: str | None = Field(default=None, max_length=256)
    source_ip: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=128)
    detail: dict[str, DetailValue] = Field(default_factory=dict)
    prev_hash: HashText
    hash: HashText

    def hashed_fields(self) -> dict[str, Any]:
        """Every field but `hash`, in the form the hash is computed over."""
        return {
            "org_id": self.org_id,
            "seq": self.seq,
            "event_id": self.event_id,
            "type": self.type.value,
            "at": audit_timestamp(self.at),
            "actor_id": self.actor_id,
            "actor_role": self.actor_role,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "source_ip": self.source_ip,
            "request_id": self.request_id,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        }

    def computed_hash(self, *, seq: int | None = None) -> str:
        """The hash these fields should carry (at position `seq` instead of its own, if given)."""
        fields = self.hashed_fields()
        if seq is not None:
            fields["seq"] = seq
        return event_hash(fields)


def canonical_json(fields: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes for the same fields, everywhere."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def event_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of an event's fields other than `hash`."""
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def check_detail(detail: Mapping[str, Any]) -> dict[str, DetailValue]:
    """A small detail map fit to be recorded, or ValueError saying what is wrong with it.

    Detail says what happened (a dataset, a format, a count, an error code); never row data,
    tokens, secrets or presigned URLs.
    """
    if len(detail) > MAX_DETAIL_KEYS:
        raise ValueError(f"detail has more than {MAX_DETAIL_KEYS} keys")
    checked: dict[str, DetailValue] = {}
    for key, value in detail.items():
        if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
            raise ValueError(f"detail key {key!r} is not a short lowercase name")
        if any(part in key for part in _FORBIDDEN_KEY_PARTS):
            raise ValueError(f"detail key {key!r} names something that is never recorded")
        checked[key] = _check_detail_value(key, value)
    if len(canonical_json(checked)) > MAX_DETAIL_BYTES:
        raise ValueError(f"detail is larger than {MAX_DETAIL_BYTES} bytes")
    return checked


def _check_detail_value(key: str, value: Any) -> DetailValue:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _check_detail_text(key, value)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        if len(value) > MAX_DETAIL_LIST:
            raise ValueError(f"detail {key!r} lists more than {MAX_DETAIL_LIST} items")
        return [_check_detail_text(key, item) for item in value]
    raise ValueError(f"detail {key!r} must be text, an integer, a boolean or a list of text")


def _check_detail_text(key: str, value: str) -> str:
    if len(value) > MAX_DETAIL_TEXT:
        raise ValueError(f"detail {key!r} is longer than {MAX_DETAIL_TEXT} characters")
    if _FORBIDDEN_VALUE.match(value):
        raise ValueError(f"detail {key!r} holds a URL or a token")
    return value


def seal_event(
    previous: AuditEvent | None,
    type: AuditEventType,
    *,
    org_id: str,
    actor_id: str,
    actor_role: ActorRole | Role,
    at: datetime,
    event_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    source_ip: str | None = None,
    request_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """The event that follows `previous` (None: the tenant's first) in `org_id`'s chain."""
    if previous is not None and previous.org_id != org_id:
        raise ValueError("an event follows only an event of its own tenant")
    fields: dict[str, Any] = {
        "org_id": org_id,
        "seq": 1 if previous is None else previous.seq + 1,
        "event_id": event_id or new_event_id(),
        "type": type,
        "at": at,
        "actor_id": actor_id,
        "actor_role": actor_role.value if isinstance(actor_role, Role) else actor_role,
        "target_type": target_type,
        "target_id": target_id,
        "source_ip": source_ip,
        "request_id": request_id,
        "detail": check_detail(detail or {}),
        "prev_hash": GENESIS_HASH if previous is None else previous.hash,
    }
    unsealed = AuditEvent.model_validate({**fields, "hash": GENESIS_HASH})
    return unsealed.model_copy(update={"hash": unsealed.computed_hash()})


# ---------------------------------------------------------------------------- verification


class ProblemKind(StrEnum):
    CHANGED = "changed"  # an event's fields no longer match its hash
    REMOVED = "removed"  # a seq is missing, or an event does not follow the one before it
    REORDERED = "reordered"  # a genuine event sits at another event's place


class ChainProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int = Field(description="The first seq at which the chain is not intact")
    kind: ProblemKind
    message: str


class ChainReport(BaseModel):
    """What `verify_chain` found: ok, how many events, the head, and the first problem."""

    model_config = ConfigDict(frozen=True)

    org_id: str | None = None
    ok: bool
    count: int
    head_seq: int | None = None
    head_hash: str | None = None
    problem: ChainProblem | None = None


class ChainVerifier:
    """Checks a tenant's events one at a time, in seq order, keeping only what it must.

    After the first problem it keeps reading, only to count the events and to tell a reordered
    event (a genuine event at another's place) from a changed one.
    """

    def __init__(self) -> None:
        self._count = 0
        self._expected_seq = 1
        self._last_hash = GENESIS_HASH
        self._head_seq: int | None = None
        self._head_hash: str | None = None
        self._max_seq = 0
        self._problem: ChainProblem | None = None
        self._mismatched: AuditEvent | None = None  # the event whose hash did not match
        self._missing_seq: int | None = None  # the first seq of a gap, if that was the problem

    def add(self, event: AuditEvent) -> None:
        """The next stored event, in the order the store holds them."""
        self._seen(event.seq, event.hash)
        if self._problem is None:
            self._problem = self._check(event)
        self._expected_seq = event.seq + 1
        self._last_hash = event.hash

    def add_unreadable(self, seq: int) -> None:
        """A stored item at `seq` that is not an event any more (a field changed beyond parsing)."""
        self._seen(seq, None)
        if self._problem is None:
            if seq != self._expected_seq:
                self._problem = self._gap_or_reorder(seq, self._expected_seq)
            else:
                self._problem = ChainProblem(
                    seq=seq, kind=ProblemKind.CHANGED, message=f"Event {seq} cannot be read."
                )
        self._expected_seq = seq + 1
        self._last_hash = ""

    def report(self) -> ChainReport:
        problem = self._problem
        if problem is not None and self._mismatched is not None:
            problem = self._classify_mismatch(problem, self._mismatched)
        return ChainReport(
            ok=problem is None,
            count=self._count,
            head_seq=self._head_seq,
            head_hash=self._head_hash,
            problem=problem,
        )

    def _seen(self, seq: int, stored_hash: str | None) -> None:
        self._count += 1
        self._head_seq, self._head_hash = seq, stored_hash
        self._max_seq = max(self._max_seq, seq)
        if self._missing_seq is not None and seq == self._missing_seq:
            # The seq reported missing turns up later: it was moved, not removed.
            self._problem = self._reordered(seq, f"event {seq} comes after a later event")
            self._missing_seq = None

    # ------------------------------------------------------------------ checks

    def _check(self, event: AuditEvent) -> ChainProblem | None:
        expected = self._expected_seq
        if event.seq != expected:
            return self._gap_or_reorder(event.seq, expected)
        if event.computed_hash() != event.hash:
            self._mismatched = event
            return ChainProblem(
                seq=event.seq,
                kind=ProblemKind.CHANGED,
                message=f"Event {event.seq} does not match its hash: it was changed.",
            )
        if event.prev_hash != self._last_hash:
            return ChainProblem(
                seq=event.seq,
                kind=ProblemKind.REMOVED,
                message=(
                    f"Event {event.seq} does not follow the event before it: "
                    "an event before it was removed or replaced."
                ),
            )
        return None

    def _gap_or_reorder(self, seq: int, expected: int) -> ChainProblem:
        if seq < expected:
            return self._reordered(expected, f"event {seq} comes after event {expected - 1}")
        self._missing_seq = expected
        missing = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
        return ChainProblem(
            seq=expected, kind=ProblemKind.REMOVED, message=f"Event(s) {missing} are missing."
        )

    @staticmethod
    def _reordered(seq: int, how: str) -> ChainProblem:
        return ChainProblem(
            seq=seq,
            kind=ProblemKind.REORDERED,
            message=f"The chain is out of order at {seq}: {how}.",
        )

    def _classify_mismatch(self, problem: ChainProblem, event: AuditEvent) -> ChainProblem:
        """A hash that matches at another position is a genuine event moved: reordered."""
        # One hash per candidate seq, only for the one event at fault: cheap even for long chains.
        for seq in range(1, self._max_seq + 2):
            if seq != event.seq and event.computed_hash(seq=seq) == event.hash:
                return ChainProblem(
                    seq=event.seq,
                    kind=ProblemKind.REORDERED,
                    message=f"Event {seq} was moved to the place of event {event.seq}.",
                )
        return problem


def verify_chain(events: Iterable[AuditEvent]) -> ChainReport:
    """Check one tenant's events, given in seq order, and report the first problem.

    changed: an event's fields do not match its hash. removed: a seq is missing, or an event's
    prev_hash is not the hash of the event before it (or 64 zeros for the first). reordered: the
    events are out of seq order, or an event that is genuine at another seq sits at this one.
    """
    verifier = ChainVerifier()
    for event in events:
        verifier.add(event)
    return verifier.report()
