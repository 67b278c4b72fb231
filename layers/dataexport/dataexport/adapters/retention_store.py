"""Tenants' retention policies in the ControlTable, through pynamodb.

One item per tenant (`retention#<org>`, `policies`) holds the whole set, so replacing it is one
write: nothing is ever half-written. Each write is conditional on the version it replaces, so of
two concurrent updates one wins and the other re-reads and tells its own before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model
from dataexport.store_keys import retention_key

POLICIES_SORT_KEY = "policies"


class RetentionPolicyItem(Model):
    """Storage shape of a tenant's policies; never leaves this module."""

    class Meta:
        table_name = "ControlTable"  # replaced per deployment by bound_model

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    # Days by dataset name.
    policies = JSONAttribute(null=True)
    version = NumberAttribute(null=True)


@dataclass(frozen=True)
class StoredPolicies:
    """A tenant's policies as stored, and the version a replacement must be conditional on
    (0: the tenant never set any)."""

    days_by_dataset: Mapping[str, int] = field(default_factory=dict)
    version: int = 0


class RetentionPolicyStore:
    def __init__(self, table_name: str, region: str) -> None:
        self._model = bound_model(RetentionPolicyItem, table_name, region)

    def read(self, org_id: str) -> StoredPolicies:
        try:
            item = self._model.get(retention_key(org_id), POLICIES_SORT_KEY, consistent_read=True)
        except self._model.DoesNotExist:
            return StoredPolicies()
        days = {str(name): int(value) for name, value in (item.policies or {}).items()}
        return StoredPolicies(days, int(item.version or 0))

    def replace(self, org_id: str, days_by_dataset: Mapping[str, int], version: int) -> bool:
        """Store the tenant's new set if the stored one is still `version`; False, writing
        nothing, if another update came first."""
        condition = (
            self._model.version.does_not_exist() if version == 0 else self._model.version == version
        )
        try:
            self._model(retention_key(org_id), POLICIES_SORT_KEY).update(
                actions=[
                    self._model.policies.set(dict(days_by_dataset)),
                    self._model.version.set(version + 1),
                ],
                condition=condition,
            )
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True
