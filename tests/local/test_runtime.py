"""LocalRuntime composes PostgreSQL, moto and the API so that a real token and secret work."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from dataexport_local.postgres import EmbeddedPostgres
from dataexport_local.runtime import LocalRuntime, RuntimeAlreadyActive
from dataexport_local.tokens import mint_token
from tests.local.conftest import STUB_TEMPLATE
from tests.local.test_api_gateway import call


@pytest.fixture(scope="module")
def embedded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    database = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    database.start()
    yield database
    database.stop()


@pytest.fixture(scope="module")
def runtime(embedded_postgres: EmbeddedPostgres) -> Iterator[LocalRuntime]:
    with LocalRuntime(
        {"Greeting": "bonjour"},
        database=embedded_postgres,
        seed_rows=0,
        template_path=STUB_TEMPLATE,
        environment={"EXTRA_SETTING": "on"},
    ) as started:
        yield started


def test_a_token_from_the_runtime_passes_an_authorizer_that_reads_the_signing_secret(
    runtime: LocalRuntime,
) -> None:
    # Given a token minted by the runtime, and one minted like `dataexport-local token` does
    for token in (runtime.token("usr_1", "org_1", "admin"), mint_token("usr_1", "org_1", "admin")):
        # When it calls the API, whose authorizer verifies it with the secret from moto
        answer = call("GET", f"{runtime.api_url}/v1/things", token)

        # Then it is accepted and its claims reach the function
        assert answer.status == 200, answer.body
        authorizer = answer.json()["authorizer"]
        assert (authorizer["principalId"], authorizer["org"], authorizer["role"]) == (
            "usr_1",
            "org_1",
            "admin",
        )


def test_a_token_signed_with_another_key_is_refused(runtime: LocalRuntime) -> None:
    forged = mint_token("usr_1", "org_1", signing_key="another-key-of-sufficient-length-0123456789")
    assert call("GET", f"{runtime.api_url}/v1/things", forged).status == 401


def test_handlers_reach_postgres_as_the_read_only_role_through_the_database_secret(
    runtime: LocalRuntime,
) -> None:
    answer = call("GET", f"{runtime.api_url}/v1/database", runtime.token("usr_1", "org_1"))
    assert answer.status == 200, answer.body
    assert answer.json() == {"user": "dataexport_reader", "read_only": "on"}
    secret = json.loads(
        runtime.boto3_client("secretsmanager").get_secret_value(
            SecretId=runtime.function_environment("ApiFunction")["DATABASE_SECRET_ARN"]
        )["SecretString"]
    )
    assert secret["host"] == str(runtime.database.socket_dir)


def test_parameters_and_extra_environment_reach_the_handlers(runtime: LocalRuntime) -> None:
    answer = call("GET", f"{runtime.stage_url}/v1/things", runtime.token("usr_1", "org_1"))
    assert answer.json()["greeting"] == "bonjour"
    # The extra variable is in every function's sandbox, not in this process
    assert runtime.function_environment("ApiFunction")["EXTRA_SETTING"] == "on"
    assert runtime.function_environment("WorkFunction")["EXTRA_SETTING"] == "on"
    assert "EXTRA_SETTING" not in os.environ
    assert os.environ["AWS_ENDPOINT_URL"] == runtime.aws_endpoint
    assert runtime.bucket_name == runtime.template.buckets[0].name
    assert runtime.execution_arn("job_1").endswith(":execution:dataexport-FlowStateMachine:job_1")


def test_a_second_runtime_in_the_same_process_is_refused(runtime: LocalRuntime) -> None:
    with pytest.raises(RuntimeAlreadyActive):
        LocalRuntime(template_path=STUB_TEMPLATE, database=runtime.database).start()
    assert call("GET", f"{runtime.api_url}/v1/health").status == 200
