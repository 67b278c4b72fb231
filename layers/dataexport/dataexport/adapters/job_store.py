"""Export jobs in DynamoDB (ExportsTable), through pynamodb.

Status changes are conditional updates: the write succeeds only if the stored status is one the
target may be reached from, so concurrent or retried steps cannot move a job backwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel
from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model, parse_sortable_utc, sortable_utc
from dataexport.adapters.page_cursor import decode_cursor, encode_cursor
from dataexport.delivery import DeliveryRecord, DeliveryStatus, LinkDelivery, parse_target
from dataexport.errors import ExportNotFound, IllegalTransition
from dataexport.export_job import (
    UNDELETED_JOBS,
    ExportFile,
    ExportJob,
    ExportStatus,
    HistoryFilter,
    JobError,
    PartSummary,
    sources_of,
)
from dataexport.store_keys import job_owner_key

logger = Logger(child=True)

# Job records outlive their files so history stays readable; DynamoDB TTL removes them later.
RECORD_TTL_AFTER_EXPIRY = timedelta(days=90)


class _OwnerCreatedIndex(GlobalSecondaryIndex["ExportJobItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "owner-created-index"
        projection = AllProjection()

    owner_key = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class _OrgCreatedIndex(GlobalSecondaryIndex["ExportJobItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "org-created-index"
        projection = AllProjection()

    org_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class _QueuedIndex(GlobalSecondaryIndex["ExportJobItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "queued-index"
        projection = KeysOnlyProjection()

    queued_org_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class _ExpiryIndex(GlobalSecondaryIndex["ExportJobItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "expiry-index"
        projection = KeysOnlyProjection()

    expiring = UnicodeAttribute(hash_key=True)
    expires_at = UnicodeAttribute(range_key=True)


# The one value of `expiring`: completed jobs, in order of expiry.
EXPIRING_COMPLETED = "completed"


class ExportJobItem(Model):
    """Storage shape of an ExportJob; never leaves this module."""

    class Meta:
        table_name = "ExportsTable"  # replaced per deployment by bound_model

    id = UnicodeAttribute(hash_key=True)
    org_id = UnicodeAttribute()
    owner_id = UnicodeAttribute()
    owner_key = UnicodeAttribute()
    # Set only while queued: the sparse queued-index then lists a tenant's queue in order.
    queued_org_id = UnicodeAttribute(null=True)
    # Set only while completed: the sparse expiry-index then lists what retention must expire.
    expiring = UnicodeAttribute(null=True)
    # The retention run (or Expire step) purging the job, and until when its claim holds.
    purge_claim = UnicodeAttribute(null=True)
    purge_claim_until = UnicodeAttribute(null=True)
    request_hash = UnicodeAttribute(null=True)
    dataset = UnicodeAttribute()
    format = UnicodeAttribute()
    compression = UnicodeAttribute()
    fields = JSONAttribute()
    filters = JSONAttribute()
    time_range = JSONAttribute(null=True)
    options = JSONAttribute()
    aggregate = JSONAttribute(null=True)
    summary = UnicodeAttribute(null=True)
    privacy = JSONAttribute(null=True)
    max_file_size_mb = NumberAttribute(null=True)
    owner_scoped = BooleanAttribute(default=True)
    status = UnicodeAttribute()
    progress = NumberAttribute()
    rows_exported = NumberAttribute(null=True)
    rows_total = NumberAttribute(null=True)
    bytes = NumberAttribute(null=True)
    sha256 = UnicodeAttribute(null=True)
    parts = JSONAttribute(null=True)
    s3_key = UnicodeAttribute(null=True)
    files = JSONAttribute(null=True)
    file_count = NumberAttribute(null=True)
    manifest = JSONAttribute(null=True)
    file_name = UnicodeAttribute()
    execution_arn = UnicodeAttribute(null=True)
    error = JSONAttribute(null=True)
    legal_hold = BooleanAttribute(default=False)
    schedule_id = UnicodeAttribute(null=True)
    delivery = JSONAttribute(null=True)
    delivery_record = JSONAttribute(null=True)
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    expires_at = UnicodeAttribute(null=True)
    ttl = TTLAttribute(null=True)

    owner_created_index = _OwnerCreatedIndex()
    org_created_index = _OrgCreatedIndex()
    queued_index = _QueuedIndex()
    expiry_index = _ExpiryIndex()


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else sortable_utc(value)


@dataclass(frozen=True)
class JobPage:
    jobs: list[ExportJob]
    next_cursor: str | None


class JobStore:
    """Reads and writes ExportJobs; the only code that knows the table's shape."""

    def __init__(self, table_name: str, region: str) -> None:
        self._model = bound_model(ExportJobItem, table_name, region)

    # ----------------------------------------------------------------- reads
    def get(self, job_id: str) -> ExportJob:
        try:
            return self._to_job(self._model.get(job_id, consistent_read=True))
        except DoesNotExist:
            raise ExportNotFound(job_id) from None

    def list_for_owner(
        self,
        org_id: str,
        owner_id: str,
        limit: int,
        cursor: str | None,
        history: HistoryFilter = UNDELETED_JOBS,
    ) -> JobPage:
        """One user's jobs that `history` keeps, newest first."""
        return self._page(
            self._model.owner_created_index,
            "owner_key",
            job_owner_key(org_id, owner_id),
            limit,
            cursor,
            history=history,
        )

    def list_for_org(
        self, org_id: str, limit: int, cursor: str | None, history: HistoryFilter = UNDELETED_JOBS
    ) -> JobPage:
        """A whole tenant's jobs that `history` keeps, newest first."""
        return self._page(
            self._model.org_created_index, "org_id", org_id, limit, cursor, history=history
        )

    def created_between(
        self, org_id: str, owner_id: str | None, start: datetime, end: datetime, limit: int
    ) -> list[ExportJob]:
        """A tenant's jobs (one owner's, when given) created in [start, end), newest first,
        at most `limit` of them."""
        index: GlobalSecondaryIndex[ExportJobItem] = self._model.org_created_index
        key = org_id
        if owner_id is not None:
            index, key = self._model.owner_created_index, job_owner_key(org_id, owner_id)
        results = index.query(
            key,
            range_key_condition=self._model.created_at.between(
                sortable_utc(start), sortable_utc(end)
            ),
            scan_index_forward=False,
        )
        jobs: list[ExportJob] = []
        for item in results:
            job = self._to_job(item)
            if job.created_at < end:
                jobs.append(job)
            if len(jobs) >= limit:
                break
        return jobs

    def queued_job_ids(self, org_id: str, limit: int) -> list[str]:
        """The tenant's queued jobs, oldest first (the order they are started in)."""
        results = self._model.queued_index.query(org_id, scan_index_forward=True, limit=limit)
        return [item.id for item in results]

    def due_for_expiry(self, now: datetime, page_size: int) -> Iterator[str]:
        """Ids of completed jobs whose expiry is at or before `now`, soonest first, read from
        the sparse expiry-index a page at a time (held ones included: the caller decides)."""
        results = self._model.expiry_index.query(
            EXPIRING_COMPLETED,
            range_key_condition=self._model.expires_at <= sortable_utc(now),
            scan_index_forward=True,
            page_size=page_size,
        )
        for item in results:
            yield item.id

    def _page(
        self,
        index: GlobalSecondaryIndex[ExportJobItem],
        hash_name: str,
        hash_value: str,
        limit: int,
        cursor: str | None,
        *,
        history: HistoryFilter,
    ) -> JobPage:
        """A page of up to `limit` jobs that `history` keeps. DynamoDB filters each page it
        reads, so the query reads on until the page is full; the cursor then points at the
        last job returned, not at the last one read."""
        start_key = decode_cursor(cursor, {hash_name: hash_value})
        created = self._model.created_at
        start, end = history.created_from, history.created_to
        created_range: Condition | None = None
        kept: Condition = (
            self._model.status == history.status.value
            if history.status is not None
            else self._model.status != ExportStatus.DELETED.value
        )
        if history.dataset is not None:
            kept &= self._model.dataset == history.dataset
        if start is not None and end is not None:
            # between is inclusive at both ends; the end is exclusive.
            created_range = created.between(sortable_utc(start), sortable_utc(end))
            kept &= created < sortable_utc(end)
        elif start is not None:
            created_range = created >= sortable_utc(start)
        elif end is not None:
            created_range = created < sortable_utc(end)
        results = index.query(
            hash_value,
            range_key_condition=created_range,
            filter_condition=kept,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start_key,
        )
        jobs = [self._to_job(item) for item in results]
        return JobPage(jobs, encode_cursor(results.last_evaluated_key, len(jobs), limit))

    # ----------------------------------------------------------------- writes
    def create(self, job: ExportJob) -> None:
        item = self._to_item(job)
        try:
            item.save(condition=self._model.id.does_not_exist())
        except PutError as exc:
            raise IllegalTransition(f"Export {job.id} already exists.") from exc

    def transition(self, job_id: str, target: ExportStatus, **changes: Any) -> ExportJob:
        """Move a job to `target` if its stored status allows it, applying `changes` with it."""
        allowed_from = sorted(status.value for status in sources_of(target))
        actions: list[Action] = [self._model.status.set(target.value)]
        if target is not ExportStatus.QUEUED:
            actions.append(self._model.queued_org_id.remove())
        if target is ExportStatus.COMPLETED:
            actions.append(self._model.expiring.set(EXPIRING_COMPLETED))
        else:
            actions.append(self._model.expiring.remove())
        actions += [self._action(name, value) for name, value in changes.items()]
        item = self._model(job_id)
        try:
            item.update(
                actions=actions,
                condition=self._model.id.exists() & self._model.status.is_in(*allowed_from),
            )
        except UpdateError as exc:
            if _is_condition_failure(exc):
                current = self.get(job_id)
                logger.warning(
                    "Refused illegal status change",
                    extra={"job_id": job_id, "from": current.status, "to": target.value},
                )
                raise IllegalTransition(
                    f"Export {job_id} cannot become {target.value} from {current.status.value}."
                ) from exc
            raise
        return self._to_job(item)

    def update_fields(self, job_id: str, **changes: Any) -> None:
        """Record progress or metadata without changing the status."""
        actions: list[Action] = [self._action(name, value) for name, value in changes.items()]
        self._model(job_id).update(actions=actions, condition=self._model.id.exists())

    def set_legal_hold(
        self, job_id: str, hold: bool, while_in: frozenset[ExportStatus]
    ) -> ExportJob | None:
        """Set or clear the job's legal hold if its status is one of `while_in` (None, writing
        nothing, if it is not): a job that expired or was deleted meanwhile stays as it is.
        A hold is not placed on a job that retention has begun to purge (its files may be gone)."""
        condition = self._model.id.exists() & self._model.status.is_in(
            *sorted(status.value for status in while_in)
        )
        if hold:
            condition &= self._model.purge_claim.does_not_exist()
        return self._updated_if(job_id, [self._model.legal_hold.set(hold)], condition)

    def extend_expiry(self, job_id: str, expires_at: datetime) -> ExportJob | None:
        """Move a completed job's expiry (and its record's TTL) later, to `expires_at`; None,
        writing nothing, if it is no longer completed or already expires that late."""
        return self._updated_if(
            job_id,
            [
                self._model.expires_at.set(sortable_utc(expires_at)),
                self._model.ttl.set(expires_at + RECORD_TTL_AFTER_EXPIRY),
            ],
            (self._model.status == ExportStatus.COMPLETED.value)
            & (self._model.expires_at < sortable_utc(expires_at)),
        )

    def claim_purge(
        self, job_id: str, claimant: str, now: datetime, lease: timedelta
    ) -> ExportJob | None:
        """Claim a due, completed, unheld job for `claimant` to purge, until `now + lease`.

        One conditional write: of concurrent claimants exactly one wins, and a claim whose lease
        ran out (its run crashed) can be taken over. None, writing nothing, when the job is not
        due, not completed, held, or claimed by someone else.
        """
        at = sortable_utc(now)
        not_held = self._model.legal_hold.does_not_exist() | (
            self._model.legal_hold == False  # noqa: E712 - a DynamoDB condition, not a test
        )
        free = (
            self._model.purge_claim.does_not_exist()
            | (self._model.purge_claim == claimant)
            | (self._model.purge_claim_until <= at)
        )
        return self._updated_if(
            job_id,
            [
                self._model.purge_claim.set(claimant),
                self._model.purge_claim_until.set(sortable_utc(now + lease)),
            ],
            (self._model.status == ExportStatus.COMPLETED.value)
            & not_held
            & (self._model.expires_at <= at)
            & free,
        )

    def expire_claimed(self, job_id: str, claimant: str) -> ExportJob | None:
        """Mark a purged job expired if `claimant` still holds its claim (None, writing
        nothing, if it does not: another run took it over, or it was deleted meanwhile)."""
        return self._updated_if(
            job_id,
            [
                self._model.status.set(ExportStatus.EXPIRED.value),
                self._model.expiring.remove(),
                self._model.purge_claim.remove(),
                self._model.purge_claim_until.remove(),
            ],
            (self._model.status == ExportStatus.COMPLETED.value)
            & (self._model.purge_claim == claimant),
        )

    def add_rows_exported_while_running(self, job_id: str, rows: int) -> bool:
        """Add `rows` to the job's running row count (partitions report independently), only
        while it is running; False, writing nothing, once it is not."""
        try:
            self._model(job_id).update(
                actions=[self._model.rows_exported.add(rows)],
                condition=self._model.id.exists()
                & (self._model.status == ExportStatus.RUNNING.value),
            )
        except UpdateError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _updated_if(
        self, job_id: str, actions: list[Action], condition: Condition
    ) -> ExportJob | None:
        """The job after `actions`, applied only if `condition` holds (None, writing nothing,
        if it does not)."""
        item = self._model(job_id)
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return self._to_job(item)

    # ----------------------------------------------------------------- mapping
    def _action(self, name: str, value: Any) -> Action:
        attribute: Attribute[Any] = getattr(self._model, name)
        if name == "ttl" and isinstance(value, datetime):
            return attribute.set(value)
        if isinstance(value, datetime):
            value = sortable_utc(value)
        elif isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif isinstance(value, ExportStatus):
            value = value.value
        elif isinstance(value, Sequence) and value and isinstance(value[0], BaseModel):
            value = [element.model_dump() for element in value]
        if value is None:
            return attribute.remove()
        return attribute.set(value)

    def _to_item(self, job: ExportJob) -> ExportJobItem:
        return self._model(
            job.id,
            org_id=job.org_id,
            owner_id=job.owner_id,
            owner_key=job_owner_key(job.org_id, job.owner_id),
            queued_org_id=job.org_id if job.status is ExportStatus.QUEUED else None,
            expiring=EXPIRING_COMPLETED if job.status is ExportStatus.COMPLETED else None,
            request_hash=job.request_hash,
            dataset=job.dataset,
            format=job.format,
            compression=job.compression,
            fields=job.fields,
            filters=job.filters,
            time_range=job.time_range,
            options=job.options,
            aggregate=job.aggregate,
            summary=job.summary,
            privacy=job.privacy or None,
            max_file_size_mb=job.max_file_size_mb,
            owner_scoped=job.owner_scoped,
            status=job.status.value,
            progress=job.progress,
            rows_exported=job.rows_exported,
            rows_total=job.rows_total,
            bytes=job.bytes,
            sha256=job.sha256,
            parts=[part.model_dump() for part in job.parts],
            s3_key=job.s3_key,
            files=[file.model_dump() for file in job.files],
            file_count=job.file_count or None,
            manifest=job.manifest,
            file_name=job.file_name,
            execution_arn=job.execution_arn,
            error=job.error.model_dump() if job.error else None,
            legal_hold=job.legal_hold,
            schedule_id=job.schedule_id,
            delivery=job.delivery.model_dump(mode="json"),
            delivery_record=job.delivery_record.model_dump(mode="json"),
            created_at=sortable_utc(job.created_at),
            started_at=_timestamp(job.started_at),
            completed_at=_timestamp(job.completed_at),
            expires_at=_timestamp(job.expires_at),
        )

    @staticmethod
    def _to_job(item: ExportJobItem) -> ExportJob:
        return ExportJob(
            id=item.id,
            org_id=item.org_id,
            owner_id=item.owner_id,
            dataset=item.dataset,
            format=item.format,
            compression=item.compression,
            fields=item.fields,
            filters=item.filters,
            time_range=item.time_range,
            options=item.options,
            aggregate=item.aggregate,
            summary=item.summary,
            privacy=item.privacy or [],
            max_file_size_mb=(
                None if item.max_file_size_mb is None else int(item.max_file_size_mb)
            ),
            owner_scoped=bool(item.owner_scoped),
            request_hash=item.request_hash,
            status=ExportStatus(item.status),
            progress=int(item.progress),
            rows_exported=None if item.rows_exported is None else int(item.rows_exported),
            rows_total=None if item.rows_total is None else int(item.rows_total),
            bytes=None if item.bytes is None else int(item.bytes),
            sha256=item.sha256,
            parts=[PartSummary.model_validate(part) for part in item.parts or []],
            s3_key=item.s3_key,
            files=[ExportFile.model_validate(file) for file in item.files or []],
            file_count=int(item.file_count or 0),
            manifest=item.manifest,
            file_name=item.file_name,
            execution_arn=item.execution_arn,
            error=JobError.model_validate(item.error) if item.error else None,
            legal_hold=bool(item.legal_hold),
            schedule_id=item.schedule_id,
            # Jobs stored before deliveries existed were links.
            delivery=parse_target(item.delivery) if item.delivery else LinkDelivery(),
            delivery_record=(
                DeliveryRecord.model_validate(item.delivery_record)
                if item.delivery_record
                else DeliveryRecord(status=DeliveryStatus.NOT_REQUIRED)
            ),
            created_at=datetime.fromisoformat(item.created_at),
            started_at=parse_sortable_utc(item.started_at),
            completed_at=parse_sortable_utc(item.completed_at),
            expires_at=parse_sortable_utc(item.expires_at),
        )


def _is_condition_failure(exc: UpdateError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"
