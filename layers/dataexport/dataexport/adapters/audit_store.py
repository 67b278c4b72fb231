"""The audit trail in DynamoDB (AuditTable), through pynamodb: one hash chain per tenant.

Items are keyed by (org_id, seq). An append reads the tenant's head (the highest seq, with a
consistent read), seals the next event onto it and writes it only if that seq is still free
(`attribute_not_exists(seq)`). Two concurrent appends cannot both take a seq: the loser re-reads
the head and tries again, after a short random pause. Nothing here updates or deletes an item,
and the functions' IAM policies allow only PutItem, GetItem and Query on the table.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools import Logger
from pydantic import ValidationError
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model
from dataexport.audit import (
    ActorRole,
    AuditEvent,
    AuditEventType,
    AuditTrailBusy,
    ChainReport,
    ChainVerifier,
    audit_timestamp,
    canonical_json,
    seal_event,
)
from dataexport.errors import InvalidRequest
from dataexport.identity import Role

logger = Logger(child=True)

MAX_APPEND_ATTEMPTS: Final = 60
BACKOFF_BASE_SECONDS: Final = 0.005
BACKOFF_CAP_SECONDS: Final = 0.2
MAX_PAGE_SIZE: Final = 200
# Filters are applied after DynamoDB reads; a page stops after this many reads with a cursor, so
# one request's work stays bounded however sparse the matches are.
MAX_READS_PER_PAGE: Final = 10
CHAIN_READ_SIZE: Final = 500
TENANT_MARKER: Final = "tenant"


class _TenantsIndex(GlobalSecondaryIndex["AuditEventItem"]):  # type: ignore[no-untyped-call]
    """Sparse: only a tenant's first event carries `chain_start`, so it lists each tenant once."""

    class Meta:
        index_name = "tenants-index"
        projection = KeysOnlyProjection()

    chain_start = UnicodeAttribute(hash_key=True)
    org_id = UnicodeAttribute(range_key=True)


class AuditEventItem(Model):
    """Storage shape of an AuditEvent; never leaves this module."""

    class Meta:
        table_name = "AuditTable"  # replaced per deployment by bound_model

    org_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    event_id = UnicodeAttribute()
    type = UnicodeAttribute()
    at = UnicodeAttribute()
    actor_id = UnicodeAttribute()
    actor_role = UnicodeAttribute()
    target_type = UnicodeAttribute(null=True)
    target_id = UnicodeAttribute(null=True)
    source_ip = UnicodeAttribute(null=True)
    request_id = UnicodeAttribute(null=True)
    # Canonical JSON text: read back exactly as it was hashed (no number conversions).
    detail = UnicodeAttribute()
    prev_hash = UnicodeAttribute()
    hash = UnicodeAttribute()
    chain_start = UnicodeAttribute(null=True)

    tenants_index = _TenantsIndex()


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


@dataclass(frozen=True)
class TenantPage:
    org_ids: list[str]
    next_cursor: str | None


@dataclass(frozen=True)
class _Unreadable:
    """A stored item that no longer parses as an event (a field was changed beyond that)."""

    seq: int


def _full_jitter(attempt: int) -> float:
    # Jitter spreads competing writers apart; it needs no cryptographic quality.
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311


class AuditTrail:
    """Appends events to tenants' chains and reads them back; the only code that knows the table."""

    def __init__(
        self,
        table_name: str,
        region: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._model = bound_model(AuditEventItem, table_name, region)
        self._clock = clock
        self._pause = pause

    # ----------------------------------------------------------------- writes
    def record(
        self,
        type: AuditEventType,
        *,
        org_id: str,
        actor_id: str,
        actor_role: ActorRole | Role,
        target_type: str | None = None,
        target_id: str | None = None,
        source_ip: str | None = None,
        request_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event to `org_id`'s chain and return it as stored.

        ValueError for a detail that may not be recorded (see audit.check_detail);
        AuditTrailBusy if concurrent appends kept taking the next seq MAX_APPEND_ATTEMPTS times.
        """
        for attempt in range(MAX_APPEND_ATTEMPTS):
            event = seal_event(
                self.head(org_id),
                type,
                org_id=org_id,
                actor_id=actor_id,
                actor_role=actor_role,
                at=self._clock(),
                target_type=target_type,
                target_id=target_id,
                source_ip=source_ip,
                request_id=request_id,
                detail=detail,
            )
            item = self._to_item(event)
            try:
                item.save(condition=self._model.seq.does_not_exist())
            except PutError as exc:
                if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                    raise
                self._pause(_full_jitter(attempt))
                continue
            return event
        logger.error("Audit append kept losing the race", extra={"org_id": org_id})
        raise AuditTrailBusy("The audit trail is busy; try again.")

    # ----------------------------------------------------------------- reads
    def head(self, org_id: str) -> AuditEvent | None:
        """The tenant's latest event (highest seq), read consistently; None before the first."""
        for item in self._model.query(
            org_id, scan_index_forward=False, limit=1, consistent_read=True
        ):
            return self._to_event(item)
        return None

    def events(
        self,
        org_id: str,
        *,
        types: Iterable[AuditEventType] = (),
        actor_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """One page of a tenant's events, newest first, filtered; `start` inclusive, `end` not.

        A page may hold fewer than `limit` events and still have a next_cursor when the filters
        match sparsely: keep following the cursor until it is None.
        """
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        condition = self._filter(set(types), actor_id, start, end)
        results = self._model.query(
            org_id,
            filter_condition=condition,
            scan_index_forward=False,
            consistent_read=True,
            page_size=limit + 1 if condition is None else MAX_PAGE_SIZE,
            last_evaluated_key=self._decode_cursor(cursor, org_id),
        )
        pages = results.page_iter
        events: list[AuditEvent] = []
        for _ in range(MAX_READS_PER_PAGE):
            try:
                page = next(pages)
            except StopIteration:
                return AuditPage(events, None)
            items = page.get("Items") or []
            for index, raw in enumerate(items):
                events.append(self._to_event(self._model.from_raw_data(raw)))
                if len(events) == limit:
                    more = index + 1 < len(items) or pages.last_evaluated_key is not None
                    return AuditPage(events, self._cursor(org_id, events[-1].seq) if more else None)
            if pages.last_evaluated_key is None:
                return AuditPage(events, None)
        return AuditPage(events, self._cursor_from_key(org_id, pages.last_evaluated_key))

    def chain(self, org_id: str) -> Iterator[AuditEvent]:
        """Every event of the tenant, oldest first (for verification and the audit export)."""
        for entry in self._chain_entries(org_id):
            if isinstance(entry, _Unreadable):
                raise ValueError(f"Audit event {entry.seq} of {org_id} cannot be read")
            yield entry

    def in_order(
        self, org_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[AuditEvent]:
        """The tenant's events oldest first, only those with start <= at < end when given."""
        results = self._model.query(
            org_id,
            filter_condition=self._filter(set(), None, start, end),
            scan_index_forward=True,
            consistent_read=True,
            page_size=CHAIN_READ_SIZE,
        )
        for item in results:
            yield self._to_event(item)

    def verify(self, org_id: str) -> ChainReport:
        """Walk the tenant's chain and report the first changed, removed or reordered event."""
        verifier = ChainVerifier()
        for entry in self._chain_entries(org_id):
            if isinstance(entry, _Unreadable):
                verifier.add_unreadable(entry.seq)
            else:
                verifier.add(entry)
        return verifier.report().model_copy(update={"org_id": org_id})

    def tenants(self, *, limit: int = 100, cursor: str | None = None) -> TenantPage:
        """Tenants that have an audit chain, by org id (for operators)."""
        start_key = None
        if cursor:
            org_id = self._decode_cursor_value(cursor).get("o")
            if not isinstance(org_id, str):
                raise InvalidRequest("cursor", "The cursor is not valid.")
            start_key = {
                "chain_start": {"S": TENANT_MARKER},
                "org_id": {"S": org_id},
                "seq": {"N": "1"},
            }
        results = self._model.tenants_index.query(
            TENANT_MARKER, limit=limit, last_evaluated_key=start_key
        )
        org_ids = [item.org_id for item in results]
        more = len(org_ids) == limit and results.last_evaluated_key is not None
        next_cursor = self._encode({"o": org_ids[-1]}) if more and org_ids else None
        return TenantPage(org_ids, next_cursor)

    def _chain_entries(self, org_id: str) -> Iterator[AuditEvent | _Unreadable]:
        results = self._model.query(
            org_id, scan_index_forward=True, consistent_read=True, page_size=CHAIN_READ_SIZE
        )
        for page in results.page_iter:
            for raw in page.get("Items") or []:
                try:
                    yield self._to_event(self._model.from_raw_data(raw))
                except (ValidationError, ValueError, TypeError, KeyError, AttributeError):
                    yield _Unreadable(_raw_seq(raw))

    def _filter(
        self,
        types: set[AuditEventType],
        actor_id: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> Condition | None:
        conditions: list[Condition] = []
        if types:
            conditions.append(self._model.type.is_in(*sorted(t.value for t in types)))
        if actor_id is not None:
            conditions.append(self._model.actor_id == actor_id)
        if start is not None:
            conditions.append(self._model.at >= audit_timestamp(start))
        if end is not None:
            conditions.append(self._model.at < audit_timestamp(end))
        combined: Condition | None = None
        for condition in conditions:
            combined = condition if combined is None else combined & condition
        return combined

    # ----------------------------------------------------------------- mapping
    def _to_item(self, event: AuditEvent) -> AuditEventItem:
        return self._model(
            event.org_id,
            event.seq,
            event_id=event.event_id,
            type=event.type.value,
            at=audit_timestamp(event.at),
            actor_id=event.actor_id,
            actor_role=event.actor_role,
            target_type=event.target_type,
            target_id=event.target_id,
            source_ip=event.source_ip,
            request_id=event.request_id,
            detail=canonical_json(event.detail).decode("utf-8"),
            prev_hash=event.prev_hash,
            hash=event.hash,
            chain_start=TENANT_MARKER if event.seq == 1 else None,
        )

    @staticmethod
    def _to_event(item: AuditEventItem) -> AuditEvent:
        return AuditEvent(
            org_id=item.org_id,
            seq=int(item.seq),
            event_id=item.event_id,
            type=AuditEventType(item.type),
            at=datetime.fromisoformat(item.at),
            actor_id=item.actor_id,
            actor_role=item.actor_role,  # type: ignore[arg-type]  # validated by the model
            target_type=item.target_type,
            target_id=item.target_id,
            source_ip=item.source_ip,
            request_id=item.request_id,
            detail=json.loads(item.detail),
            prev_hash=item.prev_hash,
            hash=item.hash,
        )

    # ----------------------------------------------------------------- paging
    @classmethod
    def _cursor(cls, org_id: str, seq: int) -> str:
        return cls._encode({"o": org_id, "s": seq})

    @classmethod
    def _cursor_from_key(cls, org_id: str, key: Mapping[str, Any] | None) -> str | None:
        if not key:
            return None
        return cls._cursor(org_id, int(key["seq"]["N"]))

    @staticmethod
    def _encode(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    @staticmethod
    def _decode_cursor_value(cursor: str) -> dict[str, Any]:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("cursor", "The cursor is not valid.") from exc
        if not isinstance(value, dict):
            raise InvalidRequest("cursor", "The cursor is not valid.")
        return value

    @classmethod
    def _decode_cursor(cls, cursor: str | None, org_id: str) -> dict[str, Any] | None:
        """The start key of a cursor; refused if it was made for another tenant's listing."""
        if not cursor:
            return None
        value = cls._decode_cursor_value(cursor)
        seq = value.get("s")
        if value.get("o") != org_id or not isinstance(seq, int) or isinstance(seq, bool):
            raise InvalidRequest("cursor", "The cursor is not valid.")
        return {"org_id": {"S": org_id}, "seq": {"N": str(seq)}}


def _raw_seq(raw: Mapping[str, Any]) -> int:
    try:
        return int(raw["seq"]["N"])
    except (KeyError, TypeError, ValueError):
        return 0
