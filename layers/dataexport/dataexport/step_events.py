"""Typed inputs of the export state machine's steps (job ids, keys and counts only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dataexport.export_job import PartSummary

JOB_ID_PATTERN = r"^exp_[0-9A-HJKMNP-TV-Z]{26}$"


class _StepInput(BaseModel):
    # States add their own keys (rows_total, partitions, ...): ignore what a step does not use.
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str = Field(pattern=JOB_ID_PATTERN)


class QueryStepInput(_StepInput):
    pass


class FormatStepInput(_StepInput):
    index: int = Field(ge=0)
    count: int = Field(ge=1)


class UploadStepInput(_StepInput):
    parts: list[PartSummary] = Field(min_length=1)


class ExpireStepInput(_StepInput):
    pass


class StepError(BaseModel):
    """What a Catch with ResultPath $.error puts in the state: the error name and its cause."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    error: str = Field(alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


class FailStepInput(_StepInput):
    error: StepError
