"""A deployment whose database secret is RDS-managed (username and password only) exports and
previews, its host, port and database given as template parameters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from dataexport_local.postgres import LocalDatabase
from dataexport_local.runtime import LocalRuntime
from tests.conftest import TEST_DATASETS
from tests.e2e.http_client import ApiClient


@pytest.fixture(scope="module")
def runtime(database: LocalDatabase) -> Iterator[LocalRuntime]:
    with LocalRuntime(
        database=database,
        environment={"DATASETS_DIR": str(TEST_DATASETS)},
        managed_database_secret=True,
        scheduler=False,
    ) as started:
        yield started


def test_an_rds_managed_secret_with_the_location_as_parameters_exports_and_previews(
    runtime: LocalRuntime,
) -> None:
    # Given the database secret holds only the username and password
    arn = runtime.function_environment("ExportFormatFunction")["DATABASE_SECRET_ARN"]
    stored = runtime.boto3_client("secretsmanager").get_secret_value(SecretId=arn)
    assert set(json.loads(stored["SecretString"])) == {"username", "password"}
    assert runtime.function_environment("ExportQueryFunction")["DATABASE_HOST"]

    # When a member previews and exports
    client = ApiClient(runtime.api_url, runtime.token("usr_acme_01", "org_acme", "member"))
    query = urlencode({"dataset": "usage_logs", "fields": "created_at,model", "limit": 3})
    preview = client.call("GET", f"/v1/exports/preview?{query}")
    job: dict[str, Any] = client.wait_for(
        client.create_export(
            {"dataset": "usage_logs", "format": "csv", "fields": ["created_at", "model"]}
        )["id"],
        {"completed", "failed"},
    )

    # Then both read the database the parameters name
    assert preview.status == 200, preview.body
    assert job["status"] == "completed", job["error"]
    assert job["rows_exported"] > 0
