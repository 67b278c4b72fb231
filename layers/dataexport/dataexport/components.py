"""Factories for the adapters a function needs, built from its configuration and cached.

Each Lambda process builds its clients and reads the catalog once, on first use.
"""

from __future__ import annotations

from functools import cache

from dataexport.adapters.job_store import JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.postgres import PostgresReader, read_database_secret
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.catalog.loader import Catalog, load_catalog
from dataexport.config import ApiConfig, BucketConfig, DatabaseConfig, JobTableConfig


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
def export_workflow(config: ApiConfig) -> ExportWorkflow:
    return ExportWorkflow(config.export_state_machine_arn, config.aws_region)


def postgres_reader(config: DatabaseConfig) -> PostgresReader:
    # Not cached: the secret is (with a TTL), so a rotated password is picked up.
    return PostgresReader(
        read_database_secret(config.database_secret_arn), config.statement_timeout_seconds
    )
