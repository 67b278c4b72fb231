"""Scheduled exports and their runs in DynamoDB (SchedulesTable), through pynamodb.

A schedule is the item (id, "schedule"); each run is an item (id, "run#<scheduled time>#<trigger>")
beside it, so one query reads a schedule's history newest first. Only schedule items carry
`org_id`, so the sparse org-created-index lists a tenant's schedules and never their runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pynamodb.attributes import JSONAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model, sortable_utc
from dataexport.errors import ScheduleNotFound
from dataexport.export_job import JobError
from dataexport.export_schedule import ExportSchedule, RunTrigger, ScheduleRun, ScheduleState
from dataexport.store_keys import RUN_KEY_PREFIX, run_key

SCHEDULE_SK = "schedule"
# Runs are history: kept this long after they happened, then removed by DynamoDB's TTL.
RUN_RECORD_TTL = timedelta(days=90)


class _OrgCreatedIndex(GlobalSecondaryIndex["ScheduleItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "org-created-index"
        projection = AllProjection()

    org_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ScheduleItem(Model):
    """Storage shape of an ExportSchedule; never leaves this module."""

    class Meta:
        table_name = "SchedulesTable"  # replaced per deployment by bound_model

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    org_id = UnicodeAttribute()
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    schedule_expression = UnicodeAttribute()
    timezone = UnicodeAttribute()
    export = JSONAttribute()
    state = UnicodeAttribute()
    suspension = JSONAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()

    org_created_index = _OrgCreatedIndex()


class RunItem(Model):
    """Storage shape of a ScheduleRun; never leaves this module."""

    class Meta:
        table_name = "SchedulesTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    scheduled_for = UnicodeAttribute()
    trigger = UnicodeAttribute()
    outcome = UnicodeAttribute(null=True)
    job_id = UnicodeAttribute(null=True)
    error = JSONAttribute(null=True)
    recorded_at = UnicodeAttribute()
    ttl = TTLAttribute(null=True)


def _run_key(scheduled_for: datetime, trigger: RunTrigger) -> str:
    return run_key(sortable_utc(scheduled_for), trigger.value)


def _condition_failed(exc: PutError | UpdateError | DeleteError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


class ScheduleStore:
    """Reads and writes schedules and runs; the only code that knows the table's shape."""

    def __init__(self, table_name: str, region: str) -> None:
        self._schedules = bound_model(ScheduleItem, table_name, region)
        self._runs = bound_model(RunItem, table_name, region)

    # ----------------------------------------------------------------- schedules
    def get(self, schedule_id: str) -> ExportSchedule:
        try:
            item = self._schedules.get(schedule_id, SCHEDULE_SK, consistent_read=True)
        except DoesNotExist:
            raise ScheduleNotFound(schedule_id) from None
        return self._to_schedule(item)

    def list_for_org(self, org_id: str, limit: int) -> list[ExportSchedule]:
        """A tenant's schedules, newest first (at most `limit`)."""
        results = self._schedules.org_created_index.query(
            org_id, scan_index_forward=False, limit=limit
        )
        return [self._to_schedule(item) for item in results]

    def count_for_org(self, org_id: str) -> int:
        return int(self._schedules.org_created_index.count(org_id))

    def create(self, schedule: ExportSchedule) -> None:
        self._to_item(schedule).save(condition=self._schedules.pk.does_not_exist())

    def replace(self, schedule: ExportSchedule) -> ExportSchedule:
        """Write the schedule over its stored self; ScheduleNotFound if it was deleted."""
        try:
            self._to_item(schedule).save(condition=self._schedules.pk.exists())
        except PutError as exc:
            if _condition_failed(exc):
                raise ScheduleNotFound(schedule.id) from None
            raise
        return schedule

    def set_state(
        self,
        schedule_id: str,
        state: ScheduleState,
        now: datetime,
        suspension: JobError | None = None,
    ) -> ExportSchedule:
        item = self._schedules(schedule_id, SCHEDULE_SK)
        actions: list[Action] = [
            self._schedules.state.set(state.value),
            self._schedules.updated_at.set(sortable_utc(now)),
            self._schedules.suspension.set(suspension.model_dump())
            if suspension is not None
            else self._schedules.suspension.remove(),
        ]
        try:
            item.update(actions=actions, condition=self._schedules.pk.exists())
        except UpdateError as exc:
            if _condition_failed(exc):
                raise ScheduleNotFound(schedule_id) from None
            raise
        return self._to_schedule(item)

    def delete(self, schedule_id: str) -> None:
        self._schedules(schedule_id, SCHEDULE_SK).delete()

    # ----------------------------------------------------------------- runs
    def claim_run(self, schedule_id: str, scheduled_for: datetime, trigger: RunTrigger) -> bool:
        """Record that this run is happening; False if it already was (Scheduler delivers at
        least once, so the same scheduled time may arrive twice)."""
        now = datetime.now(UTC)
        item = self._runs(
            schedule_id,
            _run_key(scheduled_for, trigger),
            scheduled_for=sortable_utc(scheduled_for),
            trigger=trigger.value,
            recorded_at=sortable_utc(now),
            ttl=now + RUN_RECORD_TTL,
        )
        try:
            item.save(condition=self._runs.sk.does_not_exist())
        except PutError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def release_run(self, schedule_id: str, scheduled_for: datetime, trigger: RunTrigger) -> None:
        """Forget a claimed run that decided nothing, so a retry may run it."""
        self._runs(schedule_id, _run_key(scheduled_for, trigger)).delete(
            condition=self._runs.outcome.does_not_exist()
        )

    def finish_run(self, run: ScheduleRun) -> None:
        actions: list[Action] = [
            self._runs.outcome.set(run.outcome),
            self._runs.recorded_at.set(sortable_utc(run.recorded_at)),
        ]
        if run.job_id is not None:
            actions.append(self._runs.job_id.set(run.job_id))
        if run.error is not None:
            actions.append(self._runs.error.set(run.error.model_dump()))
        self._runs(run.schedule_id, _run_key(run.scheduled_for, run.trigger)).update(
            actions=actions
        )

    def get_run(
        self, schedule_id: str, scheduled_for: datetime, trigger: RunTrigger
    ) -> ScheduleRun | None:
        try:
            item = self._runs.get(
                schedule_id, _run_key(scheduled_for, trigger), consistent_read=True
            )
        except DoesNotExist:
            return None
        return self._to_run(item, schedule_id)

    def recent_runs(self, schedule_id: str, limit: int) -> list[ScheduleRun]:
        """The schedule's decided runs, newest first."""
        results = self._runs.query(
            schedule_id,
            range_key_condition=self._runs.sk.startswith(RUN_KEY_PREFIX),
            scan_index_forward=False,
            consistent_read=True,
            limit=limit,
        )
        runs = (self._to_run(item, schedule_id) for item in results)
        return [run for run in runs if run is not None]

    # ----------------------------------------------------------------- mapping
    def _to_item(self, schedule: ExportSchedule) -> ScheduleItem:
        return self._schedules(
            schedule.id,
            SCHEDULE_SK,
            org_id=schedule.org_id,
            owner_id=schedule.owner_id,
            name=schedule.name,
            description=schedule.description,
            schedule_expression=schedule.schedule_expression,
            timezone=schedule.timezone,
            export=schedule.export,
            state=schedule.state.value,
            suspension=schedule.suspension.model_dump() if schedule.suspension else None,
            created_at=sortable_utc(schedule.created_at),
            updated_at=sortable_utc(schedule.updated_at),
        )

    @staticmethod
    def _to_schedule(item: ScheduleItem) -> ExportSchedule:
        return ExportSchedule(
            id=item.pk,
            org_id=item.org_id,
            owner_id=item.owner_id,
            name=item.name,
            description=item.description,
            schedule_expression=item.schedule_expression,
            timezone=item.timezone,
            export=item.export,
            state=ScheduleState(item.state),
            suspension=JobError.model_validate(item.suspension) if item.suspension else None,
            created_at=datetime.fromisoformat(item.created_at),
            updated_at=datetime.fromisoformat(item.updated_at),
        )

    @staticmethod
    def _to_run(item: RunItem, schedule_id: str) -> ScheduleRun | None:
        if item.outcome is None:
            return None  # claimed, not decided yet
        return ScheduleRun(
            schedule_id=schedule_id,
            scheduled_for=datetime.fromisoformat(item.scheduled_for),
            trigger=RunTrigger(item.trigger),
            outcome="started" if item.outcome == "started" else "refused",
            job_id=item.job_id,
            error=JobError.model_validate(item.error) if item.error else None,
            recorded_at=datetime.fromisoformat(item.recorded_at),
        )
