"""Retention's pure rules: which retention applies, the effective expiry, what a change records,
and what a policy update may hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from dataexport.audit import check_detail
from dataexport.retention import (
    MAX_POLICIES,
    RetentionPoliciesInput,
    TenantRetention,
    effective_expiry,
    policy_changes,
)

COMPLETED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_a_dataset_without_a_policy_keeps_the_default() -> None:
    tenant = TenantRetention(WEEK, {"audit_events": 30})
    assert tenant.retention_for("audit_events") == timedelta(days=30)
    assert tenant.retention_for("usage_logs") == WEEK


def test_a_longer_policy_moves_the_expiry_later() -> None:
    stored = COMPLETED + WEEK
    assert effective_expiry(stored, COMPLETED, timedelta(days=30)) == COMPLETED + timedelta(days=30)


def test_a_shorter_policy_never_shortens_an_export_s_life() -> None:
    stored = COMPLETED + WEEK
    assert effective_expiry(stored, COMPLETED, timedelta(days=1)) == stored


def test_an_export_without_a_completion_time_keeps_its_expiry() -> None:
    stored = COMPLETED + WEEK
    assert effective_expiry(stored, None, timedelta(days=30)) == stored


def test_a_change_records_only_the_datasets_it_changed() -> None:
    before = {"audit_events": 30, "invoices": 90, "fees": 10}
    after = {"audit_events": 30, "invoices": 365, "usage_logs": 3}
    assert policy_changes(before, after) == {
        "before": ["fees=10", "invoices=90"],
        "after": ["invoices=365", "usage_logs=3"],
    }
    # and fits the audit trail's detail rules
    assert check_detail(policy_changes(before, after))


def test_nothing_changed_records_empty_lists() -> None:
    assert policy_changes({"fees": 2}, {"fees": 2}) == {"before": [], "after": []}


@pytest.mark.parametrize(
    ("policies", "field"),
    [
        ([{"dataset": "fees", "retention_days": 0}], ("policies", 0, "retention_days")),
        ([{"dataset": "fees", "retention_days": 3651}], ("policies", 0, "retention_days")),
        (
            [{"dataset": "fees", "retention_days": 1}, {"dataset": "", "retention_days": 1}],
            ("policies", 1, "dataset"),
        ),
        ([{"dataset": "fees", "retention_days": 5, "org": "x"}], ("policies", 0, "org")),
        ([{"dataset": f"d{n}", "retention_days": 1} for n in range(33)], ("policies",)),
    ],
)
def test_a_policy_update_out_of_bounds_is_refused_naming_the_field(
    policies: list[dict[str, object]], field: tuple[object, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        RetentionPoliciesInput.model_validate({"policies": policies})
    assert raised.value.errors()[0]["loc"] == field


def test_a_policy_update_holds_between_1_and_3650_days_for_up_to_32_datasets() -> None:
    body = RetentionPoliciesInput.model_validate(
        {
            "policies": [
                {"dataset": f"d{n}", "retention_days": 1 if n % 2 else 3650}
                for n in range(MAX_POLICIES)
            ]
        }
    )
    assert len(body.policies) == MAX_POLICIES
