"""The backup lock and records, against moto's DynamoDB built from template.yaml."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from dataexport.adapters.backup_store import BackupStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.backup import Backup, BackupError, BackupStatus, BackupTrigger, new_backup_id
from dataexport.errors import BackupNotFound, InvalidRequest
from dataexport.export_job import utc_now
from dataexport.services.backups import BackupServices, LeaseKeeper
from dataexport_local.aws import LocalAws
from dataexport_local.template import REGION

LEASE = timedelta(seconds=30)


@pytest.fixture
def store() -> Iterator[BackupStore]:
    with LocalAws(parameter_secrets={"DatabaseSecretArn": "{}"}) as aws:
        name = next(t.name for t in aws.template.tables if t.logical_id == "BackupsTable")
        yield BackupStore(name, REGION)


def running_backup(store: BackupStore, offset: timedelta = timedelta()) -> Backup:
    backup = Backup(
        id=new_backup_id(),
        status=BackupStatus.RUNNING,
        trigger=BackupTrigger.MANUAL,
        created_at=utc_now() + offset,
    )
    store.create(backup)
    return backup


def test_one_of_many_concurrent_acquirers_holds_the_lock(store: BackupStore) -> None:
    # Given twenty backups trying to take the free lock at once
    now = utc_now()
    holders = [new_backup_id() for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        taken = list(pool.map(lambda holder: store.acquire_lock(holder, now, LEASE), holders))
    # Then exactly one holds it, and the lock names it
    winners = [holder for holder, lock in zip(holders, taken, strict=True) if lock is not None]
    assert len(winners) == 1
    assert store.lock_holder(now) == winners[0]
    # and taking it again as its holder succeeds (a retried step), as another still fails
    assert store.acquire_lock(winners[0], now, LEASE) is not None
    assert store.acquire_lock(new_backup_id(), now, LEASE) is None


def test_a_lock_whose_lease_ran_out_is_taken_over_naming_the_lost_holder(
    store: BackupStore,
) -> None:
    now = utc_now()
    lost = new_backup_id()
    assert store.acquire_lock(lost, now, LEASE) is not None
    # Before the lease ends nobody else gets it; after it, the next one does
    assert store.acquire_lock(new_backup_id(), now + LEASE - timedelta(seconds=1), LEASE) is None
    later = now + LEASE + timedelta(seconds=1)
    assert store.lock_holder(later) is None
    successor = new_backup_id()
    taken = store.acquire_lock(successor, later, LEASE)
    assert taken is not None and taken.previous_holder == lost
    # and the lost holder can neither renew nor release what it no longer holds
    assert store.renew_lock(lost, later, LEASE) is False
    assert store.release_lock(lost) is False
    assert store.lock_holder(later) == successor


def test_renewing_moves_the_lease_and_releasing_frees_the_lock(store: BackupStore) -> None:
    now = utc_now()
    holder = new_backup_id()
    assert store.acquire_lock(holder, now, LEASE) is not None
    assert store.renew_lock(holder, now + LEASE - timedelta(seconds=1), LEASE)
    # The renewed lease still holds past the first one's end
    assert store.acquire_lock(new_backup_id(), now + LEASE + timedelta(seconds=1), LEASE) is None
    assert store.release_lock(holder) is True
    assert store.lock_holder(now) is None
    assert store.acquire_lock(new_backup_id(), now, LEASE) is not None


def test_a_backup_fails_once_and_a_finished_one_cannot_change(store: BackupStore) -> None:
    backup = running_backup(store)
    error = BackupError(code="DUMP_FAILED", message="pg_dump stopped.")
    failed = store.fail(backup.id, error, utc_now())
    assert failed is not None and failed.status is BackupStatus.FAILED and failed.error == error
    # A failed backup is neither completed nor failed again, nor given a report
    assert store.fail(backup.id, error, utc_now()) is None
    assert store.complete(backup.id, utc_now(), utc_now() + timedelta(days=30)) is None
    assert store.get(backup.id).status is BackupStatus.FAILED


def test_completing_needs_the_tasks_report(store: BackupStore) -> None:
    backup = running_backup(store)
    assert store.complete(backup.id, utc_now(), utc_now() + timedelta(days=30)) is None
    assert store.get(backup.id).status is BackupStatus.RUNNING


def test_backups_list_newest_first_a_page_at_a_time(store: BackupStore) -> None:
    made = [running_backup(store, timedelta(seconds=n)) for n in range(5)]
    first = store.page(2, None)
    assert [b.id for b in first.backups] == [made[4].id, made[3].id]
    assert first.next_cursor is not None
    second = store.page(2, first.next_cursor)
    assert [b.id for b in second.backups] == [made[2].id, made[1].id]
    with pytest.raises(InvalidRequest):
        store.page(2, "not-a-cursor")
    # The lock item is not a backup
    store.acquire_lock(made[0].id, utc_now(), LEASE)
    with pytest.raises(BackupNotFound):
        store.get("lock#database")


def test_the_lease_keeper_renews_until_another_backup_takes_the_lock(store: BackupStore) -> None:
    lease = timedelta(seconds=1.5)
    services = BackupServices(
        store=store, objects=ObjectStore("unused", REGION), lock_lease=lease, retention_days=30
    )
    holder = new_backup_id()
    assert store.acquire_lock(holder, utc_now(), lease) is not None
    with LeaseKeeper(services, holder) as keeper:
        # While it runs, the lease keeps moving: past the first one's end, nobody gets the lock
        time.sleep(2.0)
        assert store.acquire_lock(new_backup_id(), utc_now(), lease) is None
        assert not keeper.lost
        # When another backup takes it (as after a lease that really ran out)
        store.release_lock(holder)
        assert store.acquire_lock(new_backup_id(), utc_now(), lease) is not None
        deadline = time.monotonic() + 5
        while not keeper.lost:
            assert time.monotonic() < deadline, "the keeper never noticed"
            time.sleep(0.05)
