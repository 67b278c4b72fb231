"""Per-function configuration, read once from the environment and validated.

Each Lambda function has one model; a missing or malformed variable is a ConfigurationError that
names it, raised on the first invocation rather than deep inside a request.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from dataexport.errors import ConfigurationError


class _EnvironmentModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )


class AuthorizerConfig(_EnvironmentModel):
    token_secret_arn: str = Field(validation_alias="TOKEN_SECRET_ARN", min_length=1)


class JobTableConfig(_EnvironmentModel):
    exports_table_name: str = Field(validation_alias="EXPORTS_TABLE_NAME", min_length=1)
    datasets_dir: Path | None = Field(default=None, validation_alias="DATASETS_DIR")


class BucketConfig(JobTableConfig):
    exports_bucket_name: str = Field(validation_alias="EXPORTS_BUCKET_NAME", min_length=1)


class ApiConfig(BucketConfig):
    export_state_machine_arn: str = Field(validation_alias="EXPORT_STATE_MACHINE_ARN", min_length=1)
    download_url_ttl_seconds: int = Field(
        default=300, ge=30, le=3600, validation_alias="DOWNLOAD_URL_TTL_SECONDS"
    )


class DatabaseConfig(JobTableConfig):
    database_secret_arn: str = Field(validation_alias="DATABASE_SECRET_ARN", min_length=1)
    statement_timeout_seconds: int = Field(
        default=600, ge=1, validation_alias="STATEMENT_TIMEOUT_SECONDS"
    )


class QueryStepConfig(DatabaseConfig):
    pass


class FormatStepConfig(DatabaseConfig, BucketConfig):
    pass


class UploadStepConfig(BucketConfig):
    export_retention_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, validation_alias="EXPORT_RETENTION_SECONDS"
    )


class ExpireStepConfig(BucketConfig):
    pass


class FailStepConfig(BucketConfig):
    pass


ConfigT = TypeVar("ConfigT", bound=_EnvironmentModel)


def read_config(model: type[ConfigT]) -> ConfigT:
    """Validate the process environment against `model`, naming every bad variable."""
    try:
        return model.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"Invalid environment for {model.__name__}: {problems}") from exc


@cache
def cached_config(model: type[ConfigT]) -> ConfigT:
    """The configuration of this process, read on first use (never at import time)."""
    return read_config(model)
