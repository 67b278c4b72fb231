"""Per-function configuration, read once from the environment and validated.

Each Lambda function has one model; a missing or malformed variable is a ConfigurationError that
names it, raised on the first invocation rather than deep inside a request.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from dataexport.backup import BACKUP_ID_PATTERN
from dataexport.database_location import DatabaseLocation
from dataexport.delivery import DeliveryPolicy
from dataexport.errors import ConfigurationError


class _EnvironmentModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )


class AuthMode(StrEnum):
    """How the authorizer trusts a token (the template's AuthMode parameter)."""

    HS256 = "hs256"  # signed with the deployment's shared key (TokenSigningSecret)
    JWKS = "jwks"  # signed by an OIDC issuer (Cognito or another) that publishes a JWKS


# http is only accepted for a JWKS on this machine (tests, a local issuer): keys fetched over
# plain http from anywhere else could be swapped in transit.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class AuthorizerConfig(_EnvironmentModel):
    """How bearer tokens are trusted and which claims name the caller's tenant, role, permissions.

    The template passes every parameter whether set or not, so an empty variable counts as unset.
    """

    auth_mode: AuthMode = Field(default=AuthMode.HS256, validation_alias="AUTH_MODE")
    token_secret_arn: str | None = Field(
        default=None, validation_alias="TOKEN_SECRET_ARN", validate_default=True
    )
    jwks_url: str | None = Field(default=None, validation_alias="JWKS_URL", validate_default=True)
    token_issuer: str | None = Field(
        default=None, validation_alias="TOKEN_ISSUER", validate_default=True
    )
    token_audience: str | None = Field(default=None, validation_alias="TOKEN_AUDIENCE")
    org_claim: str = Field(default="org", min_length=1, validation_alias="ORG_CLAIM")
    role_claim: str = Field(default="role", min_length=1, validation_alias="ROLE_CLAIM")
    permissions_claim: str = Field(
        default="permissions", min_length=1, validation_alias="PERMISSIONS_CLAIM"
    )

    @field_validator(
        "token_secret_arn", "jwks_url", "token_issuer", "token_audience", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("token_secret_arn")
    @classmethod
    def _secret_in_hs256_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("auth_mode") is AuthMode.HS256:
            raise ValueError("TOKEN_SECRET_ARN is required when AUTH_MODE is hs256")
        return value

    @field_validator("token_issuer")
    @classmethod
    def _issuer_in_jwks_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("auth_mode") is AuthMode.JWKS:
            raise ValueError("TOKEN_ISSUER is required when AUTH_MODE is jwks")
        return value

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url_in_jwks_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("auth_mode") is AuthMode.JWKS:
                raise ValueError("JWKS_URL is required when AUTH_MODE is jwks")
            return None
        parts = urlsplit(value)
        if (parts.scheme == "https" and parts.hostname) or (
            parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        ):
            return value
        raise ValueError("JWKS_URL must be an https URL (http only for a loopback host)")


class JobTableConfig(_EnvironmentModel):
    exports_table_name: str = Field(validation_alias="EXPORTS_TABLE_NAME", min_length=1)
    datasets_dir: Path | None = Field(default=None, validation_alias="DATASETS_DIR")


class BucketConfig(JobTableConfig):
    exports_bucket_name: str = Field(validation_alias="EXPORTS_BUCKET_NAME", min_length=1)


class AuditTableConfig(_EnvironmentModel):
    """What a function that records or reads audit events needs."""

    audit_table_name: str = Field(validation_alias="AUDIT_TABLE_NAME", min_length=1)


class QueueConfig(JobTableConfig):
    """What a function needs to start queued exports when a tenant's running slot frees."""

    control_table_name: str = Field(validation_alias="CONTROL_TABLE_NAME", min_length=1)
    export_state_machine_arn: str = Field(validation_alias="EXPORT_STATE_MACHINE_ARN", min_length=1)
    max_running_exports_per_tenant: int = Field(
        default=3, ge=1, validation_alias="MAX_RUNNING_EXPORTS_PER_TENANT"
    )


class DatabaseLocationConfig(_EnvironmentModel):
    """Where the database is when its secret does not say (an RDS-managed secret holds only the
    username and password): the template's DatabaseHost, DatabasePort and DatabaseName. Empty
    means "from the secret"; a value set here wins over the secret's."""

    database_host: str = Field(default="", validation_alias="DATABASE_HOST")
    database_port: str = Field(
        default="", pattern=r"^$|^[0-9]{1,5}$", validation_alias="DATABASE_PORT"
    )
    database_name: str = Field(default="", validation_alias="DATABASE_NAME")

    def database_location(self) -> DatabaseLocation:
        return DatabaseLocation(
            host=self.database_host or None,
            port=int(self.database_port) if self.database_port else None,
            dbname=self.database_name or None,
        )


class DatabaseConfig(JobTableConfig, DatabaseLocationConfig):
    database_secret_arn: str = Field(validation_alias="DATABASE_SECRET_ARN", min_length=1)
    statement_timeout_seconds: int = Field(
        default=600, ge=1, validation_alias="STATEMENT_TIMEOUT_SECONDS"
    )


class StepSourceConfig(DatabaseConfig, AuditTableConfig):
    """The steps that read rows: from PostgreSQL, or from the audit trail for audit_events."""


class HashingKeyConfig(_EnvironmentModel):
    """What a function that renders rows needs for the hash_identifiers privacy profile."""

    hashing_secret_arn: str = Field(validation_alias="HASHING_SECRET_ARN", min_length=1)


class RetentionPolicyConfig(_EnvironmentModel):
    """What a function that reads tenants' retention policies needs: where they are kept, and
    the deployment's default for datasets without one."""

    control_table_name: str = Field(validation_alias="CONTROL_TABLE_NAME", min_length=1)
    export_retention_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, validation_alias="EXPORT_RETENTION_SECONDS"
    )


_S3_BUCKET_ARN = re.compile(r"^arn:[a-z0-9-]+:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")


class DeliveryPolicyConfig(_EnvironmentModel):
    """What the deployment allows as delivery targets (the API checks requests against it, the
    Deliver step checks again before sending). Lists are comma-separated, empty when unset."""

    allow_private_delivery_targets: bool = Field(
        default=False, validation_alias="ALLOW_PRIVATE_DELIVERY_TARGETS"
    )
    email_sender: str | None = Field(default=None, validation_alias="EMAIL_SENDER")
    email_allowed_domains: str = Field(default="", validation_alias="EMAIL_ALLOWED_DOMAINS")
    delivery_bucket_arns: str = Field(default="", validation_alias="DELIVERY_BUCKET_ARNS")

    @field_validator("email_sender", mode="before")
    @classmethod
    def _empty_sender_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("delivery_bucket_arns")
    @classmethod
    def _bucket_arns(cls, value: str) -> str:
        for arn in _listed(value):
            if _S3_BUCKET_ARN.fullmatch(arn) is None:
                raise ValueError(f"DELIVERY_BUCKET_ARNS holds {arn!r}, not an S3 bucket ARN")
        return value

    def delivery_policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            allow_private_targets=self.allow_private_delivery_targets,
            email_sender=self.email_sender,
            email_allowed_domains=frozenset(
                domain.lower() for domain in _listed(self.email_allowed_domains)
            ),
            bucket_names=frozenset(
                arn.rpartition(":")[2] for arn in _listed(self.delivery_bucket_arns)
            ),
        )


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class WebhookSecretConfig(_EnvironmentModel):
    """What a function that signs webhooks, or tells tenants their key, needs."""

    webhook_signing_secret_arn: str = Field(
        validation_alias="WEBHOOK_SIGNING_SECRET_ARN", min_length=1
    )


class CreationConfig(QueueConfig, AuditTableConfig, DeliveryPolicyConfig):
    """What creating an export needs (the API, and each run of a schedule)."""

    exports_per_hour: int = Field(default=10, ge=1, validation_alias="EXPORTS_PER_HOUR")
    tenant_exports_per_hour: Json[dict[str, PositiveInt]] = Field(
        default_factory=dict, validation_alias="TENANT_EXPORTS_PER_HOUR"
    )

    def __hash__(self) -> int:
        # The tenant map is a dict; the configuration is still read once and never changes.
        return hash((type(self), self.exports_table_name, self.control_table_name))


class ScheduleConfig(CreationConfig):
    """Scheduled exports: their table, and the Scheduler schedules that run them."""

    schedules_table_name: str = Field(validation_alias="SCHEDULES_TABLE_NAME", min_length=1)
    schedule_group_name: str = Field(validation_alias="SCHEDULE_GROUP_NAME", min_length=1)
    scheduler_role_arn: str = Field(validation_alias="SCHEDULER_ROLE_ARN", min_length=1)
    run_schedule_function_arn: str = Field(
        validation_alias="RUN_SCHEDULE_FUNCTION_ARN", min_length=1
    )
    min_schedule_interval_minutes: int = Field(
        default=60, ge=1, validation_alias="MIN_SCHEDULE_INTERVAL_MINUTES"
    )
    max_schedules_per_tenant: int = Field(
        default=100, ge=1, validation_alias="MAX_SCHEDULES_PER_TENANT"
    )

    def __hash__(self) -> int:
        return hash((type(self), self.exports_table_name, self.schedules_table_name))


class BackupTableConfig(_EnvironmentModel):
    """The backups' table and lock, and the bucket their archives go to (under backups/)."""

    backups_table_name: str = Field(validation_alias="BACKUPS_TABLE_NAME", min_length=1)
    exports_bucket_name: str = Field(validation_alias="EXPORTS_BUCKET_NAME", min_length=1)
    backup_lock_lease_seconds: int = Field(
        default=300, ge=3, le=3600, validation_alias="BACKUP_LOCK_LEASE_SECONDS"
    )
    backup_retention_days: int = Field(
        default=30, ge=1, le=3650, validation_alias="BACKUP_RETENTION_DAYS"
    )


class BackupStepsConfig(BackupTableConfig, AuditTableConfig):
    """The backup state machine's steps (Begin, Record, Fail)."""

    nightly_backup_options: Json[dict[str, Any]] = Field(
        default_factory=dict, validation_alias="NIGHTLY_BACKUP_OPTIONS"
    )
    # The longest the Dump state waits for the task before failing the backup.
    backup_timeout_seconds: int = Field(
        default=21_600, ge=60, validation_alias="BACKUP_TIMEOUT_SECONDS"
    )

    def __hash__(self) -> int:
        return hash((type(self), self.backups_table_name))


class BackupApiConfig(BackupTableConfig, AuditTableConfig):
    # Unset in a deployment without the backup task (no BackupImageUri): backups are refused.
    backup_state_machine_arn: str | None = Field(
        default=None, validation_alias="BACKUP_STATE_MACHINE_ARN", min_length=1
    )
    # Presigned links the API issues: exports' downloads and backups'.
    download_url_ttl_seconds: int = Field(
        default=300, ge=30, le=3600, validation_alias="DOWNLOAD_URL_TTL_SECONDS"
    )


class BackupTaskConfig(BackupTableConfig, DatabaseLocationConfig):
    """The backup container: which backup, and the database credentials pg_dump uses."""

    backup_id: str = Field(validation_alias="BACKUP_ID", pattern=BACKUP_ID_PATTERN)
    backup_database_secret_arn: str = Field(
        validation_alias="BACKUP_DATABASE_SECRET_ARN", min_length=1
    )
    # Where pg_dump and pg_restore are; unset, they are looked up on PATH (as in the image).
    pg_bin_dir: str | None = Field(default=None, validation_alias="PG_BIN_DIR")


class ApiConfig(
    BackupApiConfig,
    BucketConfig,
    ScheduleConfig,
    StepSourceConfig,
    HashingKeyConfig,
    RetentionPolicyConfig,
    WebhookSecretConfig,
):
    """The API: jobs, files, schedules, the audit trail, and the database for previews (its
    statement timeout is the API's own, far shorter than an export's)."""

    statement_timeout_seconds: int = Field(
        default=10, ge=1, le=25, validation_alias="PREVIEW_STATEMENT_TIMEOUT_SECONDS"
    )
    idempotency_table_name: str = Field(validation_alias="IDEMPOTENCY_TABLE_NAME", min_length=1)

    def __hash__(self) -> int:
        return hash((type(self), self.exports_table_name, self.control_table_name))


class QueryStepConfig(StepSourceConfig):
    """How the Query step splits exports: segments of rows, grouped into partitions."""

    segment_rows: int = Field(default=250_000, ge=1, validation_alias="EXPORT_SEGMENT_ROWS")
    partition_segments: int = Field(default=4, ge=1, validation_alias="EXPORT_PARTITION_SEGMENTS")
    format_max_concurrency: int = Field(
        default=4, ge=1, le=40, validation_alias="FORMAT_MAX_CONCURRENCY"
    )
    format_distributed_partitions: int = Field(
        default=40, ge=1, validation_alias="FORMAT_DISTRIBUTED_PARTITIONS"
    )
    format_distributed_max_concurrency: int = Field(
        default=100, ge=1, le=10_000, validation_alias="FORMAT_DISTRIBUTED_MAX_CONCURRENCY"
    )
    # The Format function's reserved concurrency (0: none): no export plans more at once.
    format_connection_budget: int = Field(
        default=0, ge=0, validation_alias="FORMAT_CONNECTION_BUDGET"
    )


class FormatStepConfig(StepSourceConfig, BucketConfig, HashingKeyConfig):
    control_table_name: str = Field(validation_alias="CONTROL_TABLE_NAME", min_length=1)
    # A Format invocation starts no new segment after this long; the state machine calls it
    # again to go on from its checkpoint.
    format_time_budget_seconds: float = Field(
        default=600, ge=0, validation_alias="FORMAT_TIME_BUDGET_SECONDS"
    )


class RunScheduleConfig(ScheduleConfig):
    """The RunSchedule function: creates a schedule's job as its owner, starts it."""


class UploadStepConfig(BucketConfig, QueueConfig, RetentionPolicyConfig):
    pass


class ExpireStepConfig(BucketConfig, AuditTableConfig, RetentionPolicyConfig):
    """The Expire step purges through the same expiry logic, and audits, as the Retention run."""


class RetentionRunConfig(ExpireStepConfig):
    """The daily Retention run: the Expire step's needs, over every export that is due."""


class FailStepConfig(BucketConfig, QueueConfig, AuditTableConfig):
    pass


class DeliverStepConfig(BucketConfig, AuditTableConfig, DeliveryPolicyConfig, WebhookSecretConfig):
    """The Deliver step: the outcome event, and the job's webhook, email or copy."""

    delivery_link_ttl_seconds: int = Field(
        default=3600, ge=60, le=43_200, validation_alias="DELIVERY_LINK_TTL_SECONDS"
    )


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
