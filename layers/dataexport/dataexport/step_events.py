"""Typed inputs of the export state machine's steps (job ids, keys and counts only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataexport.backup import BACKUP_ID_PATTERN
from dataexport.export_job import PartSummary

JOB_ID_PATTERN = r"^exp_[0-9A-HJKMNP-TV-Z]{26}$"


class _StepInput(BaseModel):
    # States add their own keys (rows_total, partitions, ...): ignore what a step does not use.
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str = Field(pattern=JOB_ID_PATTERN)


class QueryStepInput(_StepInput):
    pass


def _whole_export() -> list[list[Any] | None]:
    return [None, None]


class FormatStepInput(_StepInput):
    """One partition (a Map item), or a Format invocation's own answer when it goes on."""

    index: int = Field(ge=0)
    count: int = Field(ge=1)
    # Segment j holds the rows after bounds[j] through bounds[j + 1] (None: the export's ends).
    bounds: list[list[Any] | None] = Field(default_factory=_whole_export, min_length=2)


class UploadStepInput(_StepInput):
    parts: list[PartSummary] = Field(min_length=1)


class ExpireStepInput(_StepInput):
    pass


class DeliverStepInput(_StepInput):
    """After Upload or MarkFailed; `give_up` once the state machine's retries are spent."""

    give_up: bool = False


class StepError(BaseModel):
    """What a Catch with ResultPath $.error puts in the state: the error name and its cause."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    error: str = Field(alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


class FailStepInput(_StepInput):
    error: StepError


class BackupStepInput(BaseModel):
    """A step of the backup state machine: Begin (the API's backup id, or none from the
    nightly rule), Record (with the stopped task's description) or Fail (with the Catch's
    {Error, Cause})."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    step: Literal["begin", "record", "fail"]
    backup_id: str | None = Field(default=None, pattern=BACKUP_ID_PATTERN)
    execution_arn: str | None = None
    task: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _id_after_begin(self) -> BackupStepInput:
        if self.step != "begin" and self.backup_id is None:
            raise ValueError(f"the {self.step} step needs a backup_id")
        return self
