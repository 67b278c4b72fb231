"""A tenant's running exports are capped; the rest wait queued and start in order.

A job starts only once it holds one of the tenant's running slots. Whenever a job is created or
ends, the tenant's queue is drained: oldest queued job first, while slots are free.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger

from dataexport.adapters.control_store import ControlStore
from dataexport.adapters.job_store import JobStore
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.errors import ExportNotFound

logger = Logger(child=True)

QUEUE_READ_BATCH = 10


@dataclass(frozen=True)
class ExportQueue:
    jobs: JobStore
    control: ControlStore
    workflow: ExportWorkflow
    capacity: int

    def _is_live(self, job_id: str) -> bool:
        try:
            return self.jobs.get(job_id).is_live
        except ExportNotFound:
            return False

    def drain(self, org_id: str) -> list[str]:
        """Start the tenant's oldest queued jobs while running slots are free."""
        started: list[str] = []
        for job_id in self.jobs.queued_job_ids(org_id, QUEUE_READ_BATCH):
            if not self.control.claim_running_slot(org_id, job_id, self.capacity, self._is_live):
                break  # every slot is busy: the rest keep their place in the queue
            execution_arn = self.workflow.start(job_id)
            self.jobs.update_fields(job_id, execution_arn=execution_arn)
            started.append(job_id)
        if started:
            logger.info("Queued exports started", extra={"org_id": org_id, "jobs": started})
        return started

    def finished(self, org_id: str, job_id: str) -> list[str]:
        """The job no longer runs: free its slot and start whoever waits next."""
        self.control.release_running_slot(org_id, job_id)
        return self.drain(org_id)
