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

    def put(self, schedule: ExportSchedule, *, exists: bool) -> None:
        """Create the schedule, or (exists=True) bring it in line with `schedule`."""
        arguments: dict[str, Any] = {
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
        if exists:
            self._client.update_schedule(**arguments)
        else:
            # A one-time at() schedule stays after its run: the export schedule keeps its history.
            self._client.create_schedule(**arguments, ActionAfterCompletion="NONE")

    def delete(self, schedule_id: str) -> None:
        """Delete the schedule; one already gone is not an error."""
        client = self._client
        try:
            client.delete_schedule(Name=schedule_id, GroupName=self._group)
        except client.exceptions.ResourceNotFoundException:
            return

    def exists(self, schedule_id: str) -> bool:
        client = self._client
        try:
            client.get_schedule(Name=schedule_id, GroupName=self._group)
        except client.exceptions.ResourceNotFoundException:
            return False
        return True
