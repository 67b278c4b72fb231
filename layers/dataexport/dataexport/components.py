"""Factories for the adapters a function needs, built from its configuration and cached.

Each Lambda process builds its clients and reads the catalog once, on first use.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import cache

from dataexport.adapters.audit_events_reader import AuditEventsReader
from dataexport.adapters.audit_store import AuditTrail
from dataexport.adapters.backup_store import BackupStore
from dataexport.adapters.checkpoint_store import CheckpointStore
from dataexport.adapters.control_store import ControlStore
from dataexport.adapters.export_scheduler import ExportScheduler
from dataexport.adapters.hashing_secret import read_hashing_key
from dataexport.adapters.job_store import JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.pg_dump import unmatched_objects
from dataexport.adapters.postgres import PostgresReader, read_database_secret
from dataexport.adapters.principal_store import PrincipalStore
from dataexport.adapters.retention_store import RetentionPolicyStore
from dataexport.adapters.schedule_store import ScheduleStore
from dataexport.adapters.webhook_signing_secret import read_webhook_signing_secret
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.catalog.loader import Catalog, load_catalog
from dataexport.config import (
    AuditTableConfig,
    BackupApiConfig,
    BackupStepsConfig,
    BackupTaskConfig,
    BucketConfig,
    CreationConfig,
    DatabaseConfig,
    FormatStepConfig,
    HashingKeyConfig,
    JobTableConfig,
    QueueConfig,
    RetentionPolicyConfig,
    ScheduleConfig,
    StepSourceConfig,
    WebhookSecretConfig,
)
from dataexport.privacy import HashingKey
from dataexport.row_sources import RowSourceFor, no_hashing_key, row_source_chooser
from dataexport.services.backups import BackupServices
from dataexport.services.export_queue import ExportQueue
from dataexport.services.exports import CreationServices
from dataexport.services.retention import RetentionPolicies
from dataexport.services.schedules import ScheduleServices


@cache
def job_store(config: JobTableConfig) -> JobStore:
    return JobStore(config.exports_table_name, config.aws_region)


@cache
def object_store(config: BucketConfig) -> ObjectStore:
    return ObjectStore(config.exports_bucket_name, config.aws_region)


@cache
def catalog(config: JobTableConfig) -> Catalog:
    return load_catalog(config.datasets_dir)


@cache
def export_workflow(config: QueueConfig) -> ExportWorkflow:
    return ExportWorkflow(config.export_state_machine_arn, config.aws_region)


@cache
def export_queue(config: QueueConfig) -> ExportQueue:
    return ExportQueue(
        jobs=job_store(config),
        control=control_store(config),
        workflow=export_workflow(config),
        capacity=config.max_running_exports_per_tenant,
    )


@cache
def control_store(config: QueueConfig) -> ControlStore:
    return ControlStore(config.control_table_name, config.aws_region)


@cache
def checkpoint_store(config: FormatStepConfig | QueueConfig) -> CheckpointStore:
    return CheckpointStore(config.control_table_name, config.aws_region)


@cache
def retention_policies(config: RetentionPolicyConfig) -> RetentionPolicies:
    return RetentionPolicies(
        store=RetentionPolicyStore(config.control_table_name, config.aws_region),
        default=timedelta(seconds=config.export_retention_seconds),
    )


@cache
def backup_services(
    config: BackupApiConfig | BackupStepsConfig | BackupTaskConfig,
) -> BackupServices:
    """Backups as each of their functions sees them: the API starts executions, the steps
    audit, the task only writes its own record."""
    services = BackupServices(
        store=BackupStore(config.backups_table_name, config.aws_region),
        objects=ObjectStore(config.exports_bucket_name, config.aws_region),
        lock_lease=timedelta(seconds=config.backup_lock_lease_seconds),
        retention_days=config.backup_retention_days,
    )
    if isinstance(config, BackupTaskConfig):
        return services
    audited = replace(services, audit=AuditTrail(config.audit_table_name, config.aws_region))
    if isinstance(config, BackupStepsConfig):
        return audited
    arn = config.backup_state_machine_arn
    checked = audited
    if isinstance(config, DatabaseConfig):
        # The API reads the same database the backup role dumps; any role reads its catalog.
        checked = replace(
            audited,
            unmatched_objects=lambda options: unmatched_objects(postgres_reader(config), options),
        )
    return replace(
        checked,
        workflow=ExportWorkflow(arn, config.aws_region, "backup_id") if arn else None,
        download_url_ttl_seconds=config.download_url_ttl_seconds,
    )


@cache
def audit_trail(config: AuditTableConfig) -> AuditTrail:
    return AuditTrail(config.audit_table_name, config.aws_region)


def row_sources(config: StepSourceConfig) -> RowSourceFor:
    """The row source for each dataset an export step may read; functions that render rows
    (their configuration names the hashing secret) can apply hash_identifiers."""
    return row_source_chooser(
        postgres=lambda: postgres_reader(config),
        audit=lambda: AuditEventsReader(audit_trail(config)),
        hashing_key=(
            (lambda: hashing_key(config))
            if isinstance(config, HashingKeyConfig)
            else no_hashing_key
        ),
    )


def hashing_key(config: HashingKeyConfig) -> HashingKey:
    # Not cached here: the secret is (with a TTL), so a rotated key is picked up.
    return read_hashing_key(config.hashing_secret_arn)


def postgres_reader(config: DatabaseConfig) -> PostgresReader:
    # Not cached: the secret is (with a TTL), so a rotated password is picked up.
    return PostgresReader(
        read_database_secret(config.database_secret_arn, config.database_location()),
        config.statement_timeout_seconds,
    )


@cache
def principal_store(config: QueueConfig) -> PrincipalStore:
    return PrincipalStore(config.control_table_name, config.aws_region)


@cache
def creation_services(config: CreationConfig) -> CreationServices:
    return CreationServices(
        jobs=job_store(config),
        audit=audit_trail(config),
        control=control_store(config),
        queue=export_queue(config),
        catalog=catalog(config),
        exports_per_hour=config.exports_per_hour,
        tenant_exports_per_hour=dict(config.tenant_exports_per_hour),
        delivery_policy=config.delivery_policy(),
    )


@cache
def schedule_services(config: ScheduleConfig) -> ScheduleServices:
    return ScheduleServices(
        exports=creation_services(config),
        schedules=ScheduleStore(config.schedules_table_name, config.aws_region),
        scheduler=ExportScheduler(
            config.schedule_group_name,
            config.run_schedule_function_arn,
            config.scheduler_role_arn,
            config.aws_region,
        ),
        principals=principal_store(config),
        min_interval=timedelta(minutes=config.min_schedule_interval_minutes),
        max_per_tenant=config.max_schedules_per_tenant,
    )


def webhook_signing_secret(config: WebhookSecretConfig) -> str:
    # Not cached here: the secret is (with a TTL), so a rotated secret is picked up.
    return read_webhook_signing_secret(config.webhook_signing_secret_arn)
