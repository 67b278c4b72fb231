"""Coordination items in the ControlTable: rate-limit slots, running slots, live requests.

Every decision is one conditional write on one small item, so concurrent requests cannot both
win: a user's N rate slots admit at most N creations per window, a tenant's N running slots
let at most N exports run, and one live-request item folds identical requests into one job.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aws_lambda_powertools import Logger
from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model
from dataexport.rate_limit import RATE_WINDOW, RateDecision
from dataexport.store_keys import live_request_key, rate_bucket_key, running_slots_key, slot_key

logger = Logger(child=True)


class ControlItem(Model):
    """Storage shape of one coordination item; never leaves this module."""

    class Meta:
        table_name = "ControlTable"  # replaced per deployment by bound_model

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    used_at = NumberAttribute(null=True)
    job_id = UnicodeAttribute(null=True)
    ttl = TTLAttribute(null=True)


def _lost_race(exc: UpdateError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


class ControlStore:
    def __init__(self, table_name: str, region: str) -> None:
        self._model = bound_model(ControlItem, table_name, region)

    def _items(self, pk: str) -> dict[str, ControlItem]:
        return {item.sk: item for item in self._model.query(pk, consistent_read=True)}

    # ------------------------------------------------------------------ rate limit
    def admit(self, org_id: str, user_id: str, limit: int, now: datetime) -> RateDecision:
        """Take one of the user's `limit` slots whose last use left the rolling window."""
        pk = rate_bucket_key(org_id, user_id)
        cutoff = (now - RATE_WINDOW).timestamp()
        used = self._uses_in_window(pk, limit, cutoff)
        free = [index for index in range(limit) if index not in used]
        for index in free:
            item = self._model(pk, slot_key(index))
            try:
                item.update(
                    actions=[
                        self._model.used_at.set(now.timestamp()),
                        self._model.ttl.set(now + 2 * RATE_WINDOW),
                    ],
                    condition=self._model.used_at.does_not_exist()
                    | (self._model.used_at <= cutoff),
                )
            except UpdateError as exc:
                if not _lost_race(exc):
                    raise
                continue  # another request took this slot first: try the next one
            used[index] = now.timestamp()
            return self._decision(True, limit, used, now)
        # Every slot is in use: re-read so Retry-After names the real oldest use.
        return self._decision(False, limit, self._uses_in_window(pk, limit, cutoff), now)

    def _uses_in_window(self, pk: str, limit: int, cutoff: float) -> dict[int, float]:
        items = self._items(pk)
        uses: dict[int, float] = {}
        for index in range(limit):
            item = items.get(slot_key(index))
            if item is not None and item.used_at is not None and item.used_at > cutoff:
                uses[index] = float(item.used_at)
        return uses

    def rate_state(self, org_id: str, user_id: str, limit: int, now: datetime) -> RateDecision:
        """The caller's window as it stands, without using a slot."""
        cutoff = (now - RATE_WINDOW).timestamp()
        uses = self._uses_in_window(rate_bucket_key(org_id, user_id), limit, cutoff)
        return self._decision(len(uses) < limit, limit, uses, now)

    @staticmethod
    def _decision(allowed: bool, limit: int, used: dict[int, float], now: datetime) -> RateDecision:
        times = sorted(used.values())
        resets_at = datetime.fromtimestamp(times[0], tz=now.tzinfo) + RATE_WINDOW if times else None
        return RateDecision(allowed, limit, max(0, limit - len(times)), resets_at, now)

    # ------------------------------------------------------------------ running slots
    def claim_running_slot(
        self, org_id: str, job_id: str, capacity: int, is_live: Callable[[str], bool]
    ) -> bool:
        """Give `job_id` one of the tenant's running slots; False when all are taken.

        A slot still held by a job that has ended (its release was lost in a crash) is taken
        over, so a tenant can never be blocked for good.
        """
        pk = running_slots_key(org_id)
        items = self._items(pk)
        slots = [items.get(slot_key(index)) for index in range(capacity)]
        if any(item is not None and item.job_id == job_id for item in slots):
            return True
        for index, item in enumerate(slots):
            holder = item.job_id if item is not None else None
            if holder is not None and is_live(holder):
                continue
            condition = (
                self._model.job_id.does_not_exist()
                if holder is None
                else self._model.job_id == holder
            )
            try:
                self._model(pk, slot_key(index)).update(
                    actions=[self._model.job_id.set(job_id)], condition=condition
                )
            except UpdateError as exc:
                if not _lost_race(exc):
                    raise
                continue
            return True
        return False

    def release_running_slot(self, org_id: str, job_id: str) -> None:
        """Free every slot `job_id` holds (idempotent)."""
        pk = running_slots_key(org_id)
        for item in self._items(pk).values():
            if item.job_id != job_id:
                continue
            try:
                item.update(
                    actions=[self._model.job_id.remove()], condition=self._model.job_id == job_id
                )
            except UpdateError as exc:
                if not _lost_race(exc):
                    raise

    # ------------------------------------------------------------------ live requests
    def live_job_for(self, org_id: str, user_id: str, request_hash: str) -> str | None:
        """The job that the caller's identical request was last folded into, if any."""
        try:
            item = self._model.get(
                live_request_key(org_id, user_id), request_hash, consistent_read=True
            )
        except self._model.DoesNotExist:
            return None
        return item.job_id

    def claim_live_request(
        self,
        org_id: str,
        user_id: str,
        request_hash: str,
        *,
        job_id: str,
        replacing: str | None,
        expires_at: datetime,
    ) -> bool:
        """Point the request at `job_id`, if it still points at `replacing` (None: nothing)."""
        condition = (
            self._model.job_id.does_not_exist()
            if replacing is None
            else self._model.job_id == replacing
        )
        try:
            self._model(live_request_key(org_id, user_id), request_hash).update(
                actions=[self._model.job_id.set(job_id), self._model.ttl.set(expires_at)],
                condition=condition,
            )
        except UpdateError as exc:
            if not _lost_race(exc):
                raise
            return False
        return True
