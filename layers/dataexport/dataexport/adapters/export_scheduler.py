"""EventBridge Scheduler: one schedule per export schedule, in the template's schedule group.

Each schedule invokes the RunSchedule function with the schedule's id and the run's scheduled
time (Scheduler's `<aws.scheduler.scheduled-time>` context attribute), through a role that may
invoke only that function.
"""

from __future__ import annotations

import json
from typing import Any

from dataexport.adapters.aws_clients import scheduler_client
from dataexport.export_schedule import ExportSchedule, ScheduleState

# Scheduler retries a run whose invocation failed (throttling, an error the function raised)
# for up to an hour; RunSchedule records each scheduled time once, so a retry never doubles it.
RETRY_POLICY = {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 3600}
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


class ExportScheduler:
    def __init__(self, group_name: str, target_arn: str, role_arn: str, region: str) -> None:
        self._group = group_name
        self._target_arn = target_arn
        self._role_arn = role_arn
        self._client = scheduler_client(region)

    def create(self, schedule: ExportSchedule) -> None:
        # A one-time at() schedule stays after its run: the export schedule keeps its history.
        self._client.create_schedule(**self._arguments(schedule), ActionAfterCompletion="NONE")

    def sync(self, schedule: ExportSchedule) -> None:
        """Bring the Scheduler schedule in line with `schedule`, recreating it if it is gone."""
        client = self._client
        try:
            client.update_schedule(**self._arguments(schedule))
        except client.exceptions.ResourceNotFoundException:
            self.create(schedule)

    def _arguments(self, schedule: ExportSchedule) -> dict[str, Any]:
        return {
            "Name": schedule.id,
            "GroupName": self._group,
            "Description": f"dataexport schedule {schedule.id} of {schedule.org_id}",
            "ScheduleExpression": schedule.schedule_expression,
            "ScheduleExpressionTimezone": schedule.timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED" if schedule.state is ScheduleState.ENABLED else "DISABLED",
            "Target": {
                "Arn": self._target_arn,
                "RoleArn": self._role_arn,
                "Input": json.dumps({"schedule_id": schedule.id, "scheduled_time": SCHEDULED_TIME}),
                "RetryPolicy": RETRY_POLICY,
            },
        }

    def delete(self, schedule_id: str) -> None:
        """Delete the schedule; one already gone is not an error."""
        client = self._client
        try:
            client.delete_schedule(Name=schedule_id, GroupName=self._group)
        except client.exceptions.ResourceNotFoundException:
            return
