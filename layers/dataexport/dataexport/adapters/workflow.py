"""Starting and stopping executions in Step Functions: one per export job, or per backup."""

from __future__ import annotations

import json

from dataexport.adapters.aws_clients import sfn_client


class ExportWorkflow:
    """A state machine with one execution per item (an export job, a backup), named after
    the item's id and given it as `{id_field: id}`."""

    def __init__(self, state_machine_arn: str, region: str, id_field: str = "job_id") -> None:
        self._arn = state_machine_arn
        self._client = sfn_client(region)
        self._id_field = id_field

    def start(self, job_id: str) -> str:
        """Start the item's execution; starting it twice returns the same execution."""
        client = self._client
        try:
            started = client.start_execution(
                stateMachineArn=self._arn,
                name=job_id,
                input=json.dumps({self._id_field: job_id}),
            )
        except client.exceptions.ExecutionAlreadyExists:
            return self.execution_arn(job_id)
        return started["executionArn"]

    def stop(self, execution_arn: str) -> None:
        """Stop the execution if it still runs. One that never started (a queued job) or that
        already ended is not an error: either way it no longer runs."""
        client = self._client
        try:
            # Stopping an execution that already ended leaves its status as it was.
            client.stop_execution(executionArn=execution_arn)
        except client.exceptions.ExecutionDoesNotExist:
            return

    def execution_arn(self, job_id: str) -> str:
        # arn:aws:states:region:account:stateMachine:name -> ...:execution:name:job_id
        prefix, _, name = self._arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{name}:{job_id}"
