"""Retention: tenants' policies, the one expiry decision, and the daily purge.

The state machine's Expire step and the daily Retention run both call `expire_if_due`. It
re-reads the job and the tenant's current policy, so a legal hold or a longer retention set
after completion wins, and it purges through a claim on the job (one conditional write with a
lease): however many runs meet the same export at once, exactly one deletes its files, marks it
expired and records RETENTION_PURGED.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from aws_lambda_powertools import Logger

from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.job_store import JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.retention_store import RetentionPolicyStore
from dataexport.audit import AuditEventType, check_detail
from dataexport.catalog.loader import Catalog
from dataexport.errors import Conflict, InvalidRequest, PermissionDenied
from dataexport.export_job import ExportJob, ExportStatus
from dataexport.identity import Caller, RequestOrigin
from dataexport.retention import (
    RetentionPoliciesInput,
    TenantRetention,
    effective_expiry,
    policy_changes,
)
from dataexport.services.export_files import remove_files

logger = Logger(child=True)

# A claim outlives any invocation that holds it (Lambda stops every function within 900 s), so
# only a run that died can lose its claim to another.
PURGE_LEASE: Final = timedelta(minutes=15)
# Who RETENTION_PURGED events name as their actor.
RETENTION_ACTOR: Final = "retention"
DUE_PAGE_SIZE: Final = 100
MAX_UPDATE_ATTEMPTS: Final = 5


@dataclass(frozen=True)
class RetentionPolicies:
    """Tenants' policies over the deployment's default (ExportRetentionSeconds)."""

    store: RetentionPolicyStore
    default: timedelta

    def of_tenant(self, org_id: str) -> TenantRetention:
        return TenantRetention(self.default, self.store.read(org_id).days_by_dataset)

    def retention_for(self, org_id: str, dataset: str) -> timedelta:
        return self.of_tenant(org_id).retention_for(dataset)


# --------------------------------------------------------------------------- policies (API)
@dataclass(frozen=True)
class PolicyServices:
    """What the policy routes need."""

    retention: RetentionPolicies
    catalog: Catalog
    audit: AuditTrail


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise PermissionDenied(
            "Only admins may read or change retention policies.", {"role": caller.role.value}
        )


def get_retention_policies(caller: Caller, services: PolicyServices) -> TenantRetention:
    """The caller's tenant's policies and the default for every other dataset (admins)."""
    _require_admin(caller)
    return services.retention.of_tenant(caller.org_id)


def put_retention_policies(
    caller: Caller,
    body: RetentionPoliciesInput,
    services: PolicyServices,
    origin: RequestOrigin,
) -> TenantRetention:
    """Replace the tenant's policies with `body` (admins): every dataset must exist and appear
    once, or nothing is written. A change is audited with what it changed, before and after;
    existing exports keep at least the expiry they had (see effective_expiry)."""
    _require_admin(caller)
    wanted = _checked_policies(body, services.catalog)
    store = services.retention.store
    for _ in range(MAX_UPDATE_ATTEMPTS):
        stored = store.read(caller.org_id)
        before = dict(stored.days_by_dataset)
        if before == wanted:
            break  # nothing changes: nothing to write or record
        detail = _change_detail(before, wanted, services.retention.default)
        if not store.replace(caller.org_id, wanted, stored.version):
            continue  # a concurrent update came first: its result is our "before"
        services.audit.record(
            AuditEventType.RETENTION_POLICY_UPDATED,
            org_id=caller.org_id,
            actor_id=caller.user_id,
            actor_role=caller.role,
            target_type="retention_policies",
            target_id=caller.org_id,
            source_ip=origin.source_ip,
            request_id=origin.request_id,
            detail=detail,
        )
        logger.info("Retention policies changed", extra={"policies": len(wanted)})
        break
    else:
        raise Conflict("The retention policies are being changed by someone else; retry.")
    return TenantRetention(services.retention.default, wanted)


def _checked_policies(body: RetentionPoliciesInput, catalog: Catalog) -> dict[str, int]:
    days: dict[str, int] = {}
    for index, policy in enumerate(body.policies):
        field = f"policies[{index}].dataset"
        if policy.dataset not in catalog:
            raise InvalidRequest(field, f"{field}: there is no dataset {policy.dataset!r}.")
        if policy.dataset in days:
            raise InvalidRequest(field, f"{field}: {policy.dataset!r} is named more than once.")
        days[policy.dataset] = policy.retention_days
    return days


def _change_detail(
    before: dict[str, int], after: dict[str, int], default: timedelta
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        **policy_changes(before, after),
        "default_retention_seconds": int(default.total_seconds()),
    }
    try:
        return check_detail(detail)
    except ValueError:
        # Checked before anything is written, so the update is refused whole.
        raise InvalidRequest(
            "policies", "Too many datasets change at once to be audited; change fewer per request."
        ) from None


# --------------------------------------------------------------------------- the expiry decision
class ExpiryResult(StrEnum):
    EXPIRED = "expired"  # this call purged it
    NOT_DUE = "not_due"  # it expires later (perhaps moved later by a longer policy)
    HELD = "held"  # under legal hold: kept until the hold is lifted
    CLAIMED = "claimed"  # another run is purging it
    GONE = "gone"  # no longer completed (expired, deleted) or never was: nothing to do


@dataclass(frozen=True)
class ExpiryDecision:
    result: ExpiryResult
    expires_at: datetime | None = None


def expire_if_due(
    job_id: str,
    *,
    jobs: JobStore,
    objects: ObjectStore,
    audit: AuditTrail,
    retention: RetentionPolicies,
    claimant: str,
    now: datetime,
) -> ExpiryDecision:
    """Purge a completed export whose retention is over: claim it for `claimant`, delete every
    object of it, mark it expired and record RETENTION_PURGED. Otherwise say why not, with the
    effective expiry of one that is not due yet (written to the job when a policy moved it)."""
    job = jobs.get(job_id)
    decision = _before_claim(job, jobs, retention, now)
    if decision is not None:
        return decision
    claimed = jobs.claim_purge(job.id, claimant, now, PURGE_LEASE)
    if claimed is None:
        return _not_claimed(jobs.get(job.id), now)
    remove_files(claimed, objects)
    expired = jobs.expire_claimed(job.id, claimant)
    if expired is None:
        # Deleted by its owner meanwhile, or taken over by a later run: theirs to record.
        return _not_claimed(jobs.get(job.id), now)
    _record_purge(expired, audit)
    logger.info("Export expired", extra={"job_id": job.id, "claimant": claimant})
    return ExpiryDecision(ExpiryResult.EXPIRED)


def _before_claim(
    job: ExportJob, jobs: JobStore, retention: RetentionPolicies, now: datetime
) -> ExpiryDecision | None:
    """Why the job is not to be purged now, or None when it is due."""
    if job.status is not ExportStatus.COMPLETED or job.expires_at is None:
        return ExpiryDecision(ExpiryResult.GONE)
    if job.legal_hold:
        return ExpiryDecision(ExpiryResult.HELD)
    expires_at = effective_expiry(
        job.expires_at, job.completed_at, retention.retention_for(job.org_id, job.dataset)
    )
    if expires_at > job.expires_at and jobs.extend_expiry(job.id, expires_at) is not None:
        logger.info(
            "Export kept longer by its retention policy",
            extra={"job_id": job.id, "expires_at": expires_at.isoformat()},
        )
    if expires_at > now:
        return ExpiryDecision(ExpiryResult.NOT_DUE, expires_at)
    return None


def _not_claimed(job: ExportJob, now: datetime) -> ExpiryDecision:
    """Why a claim or the final write was refused, from the job as it is now."""
    if job.status is not ExportStatus.COMPLETED:
        return ExpiryDecision(ExpiryResult.GONE)
    if job.legal_hold:
        return ExpiryDecision(ExpiryResult.HELD)
    if job.expires_at is not None and job.expires_at > now:
        return ExpiryDecision(ExpiryResult.NOT_DUE, job.expires_at)
    return ExpiryDecision(ExpiryResult.CLAIMED)


def _record_purge(job: ExportJob, audit: AuditTrail) -> None:
    try:
        audit.record(
            AuditEventType.RETENTION_PURGED,
            org_id=job.org_id,
            actor_id=RETENTION_ACTOR,
            actor_role="system",
            target_type="export",
            target_id=job.id,
            detail={
                "dataset": job.dataset,
                "format": job.format,
                "files": max(job.file_count, 1),
                "expires_at": job.expires_at.isoformat() if job.expires_at else None,
            },
        )
    except Exception:
        # The job is already expired, so no later run would record it: say so loudly.
        logger.exception(
            "Export purged but RETENTION_PURGED not recorded", extra={"job_id": job.id}
        )
        raise


# --------------------------------------------------------------------------- the daily run
@dataclass
class RetentionRunSummary:
    """What one retention run did."""

    expired: int = 0
    held: int = 0
    failed: int = 0
    # Due after all (a longer policy), or purged by another run meanwhile.
    skipped: int = 0
    # False when the time budget ran out before every due export was seen.
    finished: bool = True

    def count(self, decision: ExpiryDecision) -> None:
        if decision.result is ExpiryResult.EXPIRED:
            self.expired += 1
        elif decision.result is ExpiryResult.HELD:
            self.held += 1
        else:
            self.skipped += 1

    def to_payload(self) -> dict[str, Any]:
        return {
            "expired": self.expired,
            "held": self.held,
            "failed": self.failed,
            "skipped": self.skipped,
            "finished": self.finished,
        }


def purge_due_exports(
    *,
    jobs: JobStore,
    objects: ObjectStore,
    audit: AuditTrail,
    retention: RetentionPolicies,
    run_id: str,
    now: datetime,
    stop_starting_at: float = math.inf,
    page_size: int = DUE_PAGE_SIZE,
) -> RetentionRunSummary:
    """Expire every export due at `now`, soonest first, from the expiry index (never a scan):
    held ones are kept, each other one goes through `expire_if_due` under this run's claim.

    Starts no new export once `time.monotonic()` passes `stop_starting_at`; what is left stays
    due for the next run. One export that fails is logged and counted, and the run goes on.
    """
    summary = RetentionRunSummary()
    for job_id in jobs.due_for_expiry(now, page_size):
        if time.monotonic() >= stop_starting_at:
            summary.finished = False
            logger.warning("Retention run stopped at its time budget", extra=summary.to_payload())
            break
        try:
            decision = expire_if_due(
                job_id,
                jobs=jobs,
                objects=objects,
                audit=audit,
                retention=retention,
                claimant=run_id,
                now=now,
            )
        except Exception:
            logger.exception("Could not expire an export", extra={"job_id": job_id})
            summary.failed += 1
            continue
        summary.count(decision)
    logger.info("Retention run finished", extra={"run_id": run_id, **summary.to_payload()})
    return summary
