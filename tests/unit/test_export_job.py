"""The job's life cycle: which status changes are allowed."""

from datetime import UTC, datetime, timedelta

import pytest

from dataexport.export_job import (
    ALLOWED_TRANSITIONS,
    ExportJob,
    ExportStatus,
    export_key,
    new_job_id,
    sources_of,
    staging_key,
)
from dataexport.identity import Caller, Role
from dataexport.services.exports import visible_to


def make_job(**changes: object) -> ExportJob:
    base = ExportJob(
        id=new_job_id(),
        org_id="org_acme",
        owner_id="u1",
        dataset="usage_logs",
        format="csv",
        fields=["created_at"],
        file_name="usage_logs-start-now-x.csv",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return base.model_copy(update=changes)


def test_a_completed_job_can_never_run_again() -> None:
    assert ExportStatus.COMPLETED not in sources_of(ExportStatus.RUNNING)
    assert sources_of(ExportStatus.RUNNING) == {ExportStatus.QUEUED}


def test_only_completed_jobs_expire() -> None:
    assert sources_of(ExportStatus.EXPIRED) == {ExportStatus.COMPLETED}


def test_terminal_states_lead_at_most_to_deleted() -> None:
    for status in (ExportStatus.FAILED, ExportStatus.CANCELLED, ExportStatus.EXPIRED):
        assert ALLOWED_TRANSITIONS[status] == {ExportStatus.DELETED}
    assert ALLOWED_TRANSITIONS[ExportStatus.DELETED] == frozenset()


def test_job_ids_are_prefixed_sortable_and_unique() -> None:
    ids = [new_job_id() for _ in range(50)]
    assert all(job_id.startswith("exp_") and len(job_id) == 30 for job_id in ids)
    assert len(set(ids)) == 50


@pytest.mark.parametrize(
    ("status", "legal_hold", "expires_in", "due"),
    [
        (ExportStatus.COMPLETED, False, -1, True),
        (ExportStatus.COMPLETED, False, 60, False),
        (ExportStatus.COMPLETED, True, -1, False),
        (ExportStatus.RUNNING, False, -1, False),
    ],
)
def test_due_for_expiry(status: ExportStatus, legal_hold: bool, expires_in: int, due: bool) -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    job = make_job(
        status=status, legal_hold=legal_hold, expires_at=now + timedelta(seconds=expires_in)
    )
    assert job.is_due_for_expiry(now) is due


def test_keys_keep_tenants_and_jobs_apart() -> None:
    job = make_job()
    assert export_key(job) == f"exports/org_acme/{job.id}/{job.file_name}"
    assert staging_key(job.id, 3, 7) == f"staging/{job.id}/part-00003-00007"


def test_a_tenant_named_with_a_slash_never_shares_another_tenants_folder() -> None:
    # Org "org_acme/<job id>" would otherwise keep its exports inside org_acme's job folder.
    job = make_job()
    neighbour = make_job(org_id=f"org_acme/{job.id}")
    assert not export_key(neighbour).startswith(export_key(job).rsplit("/", 1)[0] + "/")
    assert export_key(make_job(org_id="..")).startswith("exports/%2E%2E/")


@pytest.mark.parametrize(
    ("org_id", "owner_id", "is_admin", "visible"),
    [
        ("org_acme", "u1", False, True),
        ("org_acme", "u1", True, True),
        ("org_acme", "u2", False, False),
        ("org_acme", "u2", True, True),
        ("org_acme#u1", "u1", True, False),
        ("org_globex", "u1", True, False),
    ],
)
def test_a_job_is_shown_to_its_owner_and_its_tenants_admins_only(
    org_id: str, owner_id: str, is_admin: bool, visible: bool
) -> None:
    caller = Caller(user_id=owner_id, org_id=org_id, role=Role.ADMIN if is_admin else Role.MEMBER)
    assert visible_to(caller, make_job()) is visible
