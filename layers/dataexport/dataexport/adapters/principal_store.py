"""The role and permissions each user's latest token carried, in the ControlTable.

Tokens are the only source of who may do what, and a schedule runs when its owner is not
calling. So the API remembers the claims of each user's latest verified token, and a
schedule's run acts with those: an owner whose new token lacks DATA_EXPORT stops their
schedules from running.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pynamodb.attributes import JSONAttribute, UnicodeAttribute
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model
from dataexport.identity import Caller, Role
from dataexport.store_keys import principal_key


class PrincipalItem(Model):
    """Storage shape of one user's latest claims; never leaves this module."""

    class Meta:
        table_name = "ControlTable"  # replaced per deployment by bound_model

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    role = UnicodeAttribute()
    permissions = JSONAttribute()
    seen_at = UnicodeAttribute()


# A process writes a user's unchanged claims again only this often (seconds): enough to keep
# the record fresh without a write per request.
REWRITE_UNCHANGED_AFTER = 600.0


class PrincipalStore:
    def __init__(self, table_name: str, region: str) -> None:
        self._model = bound_model(PrincipalItem, table_name, region)
        self._written: dict[tuple[str, str], tuple[Caller, float]] = {}

    def remember(self, caller: Caller) -> None:
        """Record the caller's claims as their latest (at once when they changed)."""
        key = (caller.org_id, caller.user_id)
        written = self._written.get(key)
        now = time.monotonic()
        if (
            written is not None
            and written[0] == caller
            and now - written[1] < REWRITE_UNCHANGED_AFTER
        ):
            return
        self._model(
            principal_key(caller.org_id),
            caller.user_id,
            role=caller.role.value,
            permissions=sorted(caller.permissions),
            seen_at=datetime.now(UTC).isoformat(),
        ).save()
        self._written[key] = (caller, now)

    def latest(self, org_id: str, user_id: str) -> Caller | None:
        """The user as their latest token described them; None if never seen."""
        try:
            item = self._model.get(principal_key(org_id), user_id, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return Caller(
            user_id=user_id,
            org_id=org_id,
            role=Role(item.role),
            permissions=frozenset(item.permissions or []),
        )
