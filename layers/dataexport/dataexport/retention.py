"""Retention: how long a completed export stays, per tenant and dataset, and when it is due.

A tenant's policies name datasets and a number of days; every other dataset keeps the
deployment's default (ExportRetentionSeconds). An export's expiry is fixed when it completes and
may only move later: a policy lengthened afterwards extends it, a shortened one never cuts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

MIN_RETENTION_DAYS: Final = 1
MAX_RETENTION_DAYS: Final = 3650
# Each policy is named in the audit event of a change (a detail lists at most 32 items).
MAX_POLICIES: Final = 32


class RetentionPolicyInput(BaseModel):
    """One dataset's retention as an admin sets it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, max_length=64)
    retention_days: int = Field(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)


class RetentionPoliciesInput(BaseModel):
    """The body of PUT /v1/retention-policies: the tenant's whole set, replacing the last one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: list[RetentionPolicyInput] = Field(max_length=MAX_POLICIES)


@dataclass(frozen=True)
class TenantRetention:
    """A tenant's policies (days by dataset) over the deployment's default."""

    default: timedelta
    days_by_dataset: Mapping[str, int] = field(default_factory=dict)

    def retention_for(self, dataset: str) -> timedelta:
        days = self.days_by_dataset.get(dataset)
        return self.default if days is None else timedelta(days=days)


def effective_expiry(
    stored: datetime, completed_at: datetime | None, retention: timedelta
) -> datetime:
    """When a completed export expires under the current policy: the later of its stored expiry
    and completion plus `retention`, so a longer policy extends it and a shorter one never
    shortens it."""
    if completed_at is None:
        return stored
    return max(stored, completed_at + retention)


def policy_changes(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, list[str]]:
    """What an update changed, for the audit trail: `dataset=days` of every dataset whose policy
    was added, removed or changed, as it was and as it is (a dataset missing from one side had
    no policy there)."""
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    return {
        "before": [f"{name}={before[name]}" for name in changed if name in before],
        "after": [f"{name}={after[name]}" for name in changed if name in after],
    }
