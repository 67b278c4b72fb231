"""Factories for the adapters a function needs, built from its configuration and cached.

Each Lambda process builds its clients and reads the catalog once, on first use.
"""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities import parameters

from dataexport.adapters.aws_clients import s3_client, sfn_client
from dataexport.adapters.job_store import JobStore
from dataexport.adapters.object_store import ObjectStore
from dataexport.adapters.postgres import PostgresReader, read_database_secret
from dataexport.adapters.workflow import ExportWorkflow
from dataexport.catalog.loader import Catalog, load_catalog
from dataexport.config import ApiConfig, BucketConfig, DatabaseConfig, JobTableConfig, cached_config


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


def reset_process_caches() -> None:
    """Forget every cached configuration, client and secret, as a fresh Lambda process would.

    The local runtime calls this when it starts or stops, since one Python process there hosts
    successive deployments (other endpoints, other parameters).
    """
    cached_config.cache_clear()
    for factory in (job_store, object_store, catalog, export_workflow, s3_client, sfn_client):
        factory.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # also drops their clients
