"""How far each partition of a running export has come: its finished segments, in order.

A segment is finished when its staging object is complete; the Format step records it here
right after, so an invocation that was stopped or killed resumes at the first unfinished one.
Items live in the ControlTable and expire by TTL a week after their last write.
"""

from __future__ import annotations

from datetime import timedelta

from pynamodb.attributes import JSONAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from dataexport.adapters.dynamodb_models import bound_model
from dataexport.export_job import SegmentSummary, utc_now
from dataexport.store_keys import checkpoint_keys

CHECKPOINT_TTL = timedelta(days=7)


class CheckpointItem(Model):
    """Storage shape of one partition's progress; never leaves this module."""

    class Meta:
        table_name = "ControlTable"  # replaced per deployment by bound_model

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    segments = JSONAttribute(null=True)
    ttl = TTLAttribute(null=True)


class CheckpointStore:
    def __init__(self, table_name: str, region: str) -> None:
        self._model = bound_model(CheckpointItem, table_name, region)

    def finished_segments(self, job_id: str, index: int) -> list[SegmentSummary]:
        """The partition's finished segments, in order (none before its first one)."""
        try:
            item = self._model.get(*checkpoint_keys(job_id, index), consistent_read=True)
        except DoesNotExist:
            return []
        return [SegmentSummary.model_validate(segment) for segment in item.segments or []]

    def record(self, job_id: str, index: int, segments: list[SegmentSummary]) -> None:
        """Replace the partition's record with `segments` (all finished, in order)."""
        item = self._model(
            *checkpoint_keys(job_id, index),
            segments=[segment.model_dump() for segment in segments],
            ttl=utc_now() + CHECKPOINT_TTL,
        )
        item.save()
