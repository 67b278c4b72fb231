"""Coordination items under concurrency, against moto's DynamoDB built from template.yaml."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from dataexport.adapters.control_store import ControlStore
from dataexport.export_job import utc_now
from dataexport.rate_limit import RATE_WINDOW
from dataexport_local.aws import LocalAws
from dataexport_local.template import REGION

THREADS = 30


@pytest.fixture(scope="module")
def store() -> Iterator[ControlStore]:
    with LocalAws(parameter_secrets={"DatabaseSecretArn": "{}"}) as aws:
        name = next(t.name for t in aws.template.tables if t.logical_id == "ControlTable")
        yield ControlStore(name, REGION)


@pytest.fixture
def org_id() -> str:
    return f"org_{uuid.uuid4().hex[:10]}"


def test_concurrent_admissions_never_exceed_the_limit(store: ControlStore, org_id: str) -> None:
    now = utc_now()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        decisions = list(pool.map(lambda _: store.admit(org_id, "u1", 10, now), range(THREADS)))
    assert sum(decision.allowed for decision in decisions) == 10
    for refused in (decision for decision in decisions if not decision.allowed):
        assert refused.remaining == 0
        assert 0 < refused.retry_after_seconds <= RATE_WINDOW.total_seconds()


def test_slots_free_up_as_the_window_rolls(store: ControlStore, org_id: str) -> None:
    start = utc_now()
    assert all(store.admit(org_id, "u1", 2, start).allowed for _ in range(2))
    assert not store.admit(org_id, "u1", 2, start + timedelta(minutes=59)).allowed
    later = store.admit(org_id, "u1", 2, start + RATE_WINDOW + timedelta(seconds=1))
    assert later.allowed and later.remaining == 1


def test_a_tenant_runs_at_most_its_capacity(store: ControlStore, org_id: str) -> None:
    jobs = [f"exp_{index}" for index in range(THREADS)]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        claimed = list(
            pool.map(lambda job: store.claim_running_slot(org_id, job, 3, lambda _: True), jobs)
        )
    holders = [job for job, won in zip(jobs, claimed, strict=True) if won]
    assert len(holders) == 3
    # claiming again for a holder is idempotent; releasing frees exactly one slot
    assert store.claim_running_slot(org_id, holders[0], 3, lambda _: True)
    store.release_running_slot(org_id, holders[0])
    store.release_running_slot(org_id, holders[0])
    assert store.claim_running_slot(org_id, "exp_next", 3, lambda _: True)
    assert not store.claim_running_slot(org_id, "exp_late", 3, lambda _: True)


def test_a_slot_left_by_an_ended_job_is_taken_over(store: ControlStore, org_id: str) -> None:
    assert store.claim_running_slot(org_id, "exp_crashed", 1, lambda _: True)
    assert not store.claim_running_slot(org_id, "exp_b", 1, lambda job: job == "exp_crashed")
    assert store.claim_running_slot(org_id, "exp_b", 1, lambda job: False)


def test_one_identical_request_wins_the_live_slot(store: ControlStore, org_id: str) -> None:
    expires = utc_now() + timedelta(days=1)
    with ThreadPoolExecutor(max_workers=10) as pool:
        won = list(
            pool.map(
                lambda n: store.claim_live_request(
                    org_id, "u1", "digest", job_id=f"exp_{n}", replacing=None, expires_at=expires
                ),
                range(10),
            )
        )
    assert sum(won) == 1
    winner = store.live_job_for(org_id, "u1", "digest")
    assert winner == f"exp_{won.index(True)}"
