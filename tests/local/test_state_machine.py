"""moto runs the template's state machine, and its Lambda tasks run our handlers in-process."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dataexport_local.aws import LocalAws
from tests.local.conftest import STUB_TEMPLATE

DEADLINE_SECONDS = 30


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    with LocalAws(STUB_TEMPLATE, parameter_secrets={"DatabaseSecretArn": "{}"}) as started:
        yield started


def run_to_completion(aws: LocalAws, execution_input: dict[str, Any]) -> dict[str, Any]:
    """Start an execution of the stub flow and poll it (with a deadline) until it ends."""
    sfn = aws.client("stepfunctions")
    (machine,) = aws.template.state_machines
    # moto names an unnamed execution "None", so each gets a name (as the product does).
    started = sfn.start_execution(
        stateMachineArn=machine.arn, name=uuid.uuid4().hex, input=json.dumps(execution_input)
    )
    arn = started["executionArn"]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"execution still running after {DEADLINE_SECONDS}s"
        time.sleep(0.05)


def entered_states(aws: LocalAws, execution_arn: str) -> list[str]:
    events = aws.client("stepfunctions").get_execution_history(executionArn=execution_arn)
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in events["events"]
        if event["type"].endswith("StateEntered")
    ]


def test_a_successful_task_runs_the_real_handler_with_the_template_s_environment(
    aws: LocalAws,
) -> None:
    # When the flow runs and its Work task succeeds
    execution = run_to_completion(aws, {"fail": False})

    # Then moto called our handler in its worker, which saw its resolved environment
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["worked"] is True
    assert output["table"] == aws.template.tables[0].name
    assert output["environment"]["RECORDS_TABLE_NAME"] == output["table"]
    assert "RECORDS_TABLE_NAME" not in os.environ
    assert entered_states(aws, execution["executionArn"]) == ["Work", "Done"]


def test_a_named_exception_is_caught_by_the_asl_catch_for_that_name(aws: LocalAws) -> None:
    # When the Work task raises SourceUnavailable
    execution = run_to_completion(aws, {"fail": True})

    # Then the Catch on SourceUnavailable sent the error to Recover, and the flow succeeded
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {
        "recovered": "SourceUnavailable",
        "message": "database down",
    }
    assert entered_states(aws, execution["executionArn"]) == ["Work", "Recover", "Done"]


def test_lambda_invoke_through_moto_reports_the_function_error(aws: LocalAws) -> None:
    # When the function is invoked through Lambda's API on the moto server
    answer = aws.client("lambda").invoke(
        FunctionName=aws.template.function("WorkFunction").arn, Payload=b'{"fail": true}'
    )

    # Then the answer carries FunctionError and the error payload
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read())["errorType"] == "SourceUnavailable"


def test_a_second_local_aws_in_the_same_process_is_refused(aws: LocalAws) -> None:
    with pytest.raises(RuntimeError, match="already active"):
        LocalAws(STUB_TEMPLATE, parameter_secrets={"DatabaseSecretArn": "{}"}).start()
    # and the refused one did not disturb the active one's environment
    assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint_url


def test_the_template_s_resources_exist_in_moto(aws: LocalAws) -> None:
    template = aws.template
    dynamodb = aws.client("dynamodb")
    assert dynamodb.describe_time_to_live(TableName=template.tables[0].name)[
        "TimeToLiveDescription"
    ] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    aws.client("s3").head_bucket(Bucket=template.buckets[0].name)
    secret_arn = aws.dispatcher.environment("AuthorizerFunction")["TOKEN_SECRET_ARN"]
    assert secret_arn == template.secrets[0].arn and secret_arn.startswith("arn:aws:secretsmanager")
    assert (
        len(aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
        == 40
    )
    functions = {f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert functions == {function.name for function in template.functions}
