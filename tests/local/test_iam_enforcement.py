"""moto enforcing IAM: each identity gets exactly what its policies allow, including the state
machine interpreter's calls, which sign with the machine's role."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from dataexport_local.iam_enforcement import (
    Credentials,
    RoleSessions,
    assume_role,
    create_operator,
    create_role,
    enforce_iam,
    local_policy,
    presigned_urls_authorized,
    state_machine_credentials,
    stop_enforcing,
)

ACCOUNT = "123456789012"
BUCKET = "iam-enforcement-bucket"
TABLE = "iam-enforcement-table"
FUNCTION = "iam-enforcement-function"
TESTING = Credentials("testing", "testing")


def service_trust(service: str) -> dict[str, Any]:
    """A role's trust policy letting `service` assume it (as SAM writes them)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


LAMBDA_TRUST = service_trust("lambda.amazonaws.com")
STATES_TRUST = service_trust("states.amazonaws.com")


def allow(actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}],
    }


@dataclass(frozen=True)
class Moto:
    endpoint_url: str
    operator: Credentials

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        return (credentials or self.operator).client(self.endpoint_url, service)

    def role(self, name: str, policy: dict[str, Any], trust: dict[str, Any] = LAMBDA_TRUST) -> str:
        return create_role(
            self.endpoint_url, self.operator, name, trust, inline_policies={"policy": policy}
        )

    def session(self, role_arn: str) -> Credentials:
        return assume_role(self.endpoint_url, self.operator, role_arn, "test-session")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(url: str) -> None:
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    """A moto server of this module's own, enforcing IAM once the resources exist; moto's state,
    auth switch, config and MOTO_PORT are given back afterwards for the worker's next tests."""
    port = _free_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    saved_port = os.environ.get("MOTO_PORT")
    saved_config = {key: default_user_config.get(key) for key in ("stepfunctions", "lambda")}
    # The interpreter calls Lambda at localhost:$MOTO_PORT; Lambda answers without Docker.
    os.environ["MOTO_PORT"] = str(port)
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _post(f"{endpoint_url}/moto-api/reset")
        operator = create_operator(endpoint_url, TESTING)
        world = Moto(endpoint_url, operator)
        s3 = world.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for key in ("in/a.txt", "out/a.txt"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"hello")
        world.client("dynamodb").create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return event\n")
        world.client("lambda").create_function(
            FunctionName=FUNCTION,
            Runtime="python3.11",
            Role=world.role("function-role", allow(["logs:*"], ["*"])),
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
        )
        enforce_iam(endpoint_url)
        yield world
    finally:
        stop_enforcing(endpoint_url)
        _post(f"{endpoint_url}/moto-api/reset")
        server.stop()
        for key, value in saved_config.items():
            if value is None:
                default_user_config.pop(key, None)  # type: ignore[misc]
            else:
                default_user_config[key] = value  # type: ignore[literal-required]
        if saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_port


def denial(error: ClientError) -> tuple[int, str]:
    """The HTTP status and the text of a denied call. moto answers JSON services' denials in
    the XML of IAM's query protocol, so botocore keeps the whole body as the message."""
    return int(error.response["ResponseMetadata"]["HTTPStatusCode"]), str(error.response["Error"])


def test_the_usual_testing_key_is_refused_once_iam_is_enforced(moto: Moto) -> None:
    with pytest.raises(ClientError) as raised:
        moto.client("s3", TESTING).list_objects_v2(Bucket=BUCKET)

    assert raised.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_the_operator_is_allowed_everything(moto: Moto) -> None:
    moto.client("dynamodb").put_item(TableName=TABLE, Item={"pk": {"S": "operator"}})

    assert moto.client("s3").get_object(Bucket=BUCKET, Key="out/a.txt")["Body"].read() == b"hello"


def test_an_allowed_action_passes_and_a_missing_one_is_denied_naming_it(moto: Moto) -> None:
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE}"
    session = moto.session(
        moto.role("writer", allow(["dynamodb:PutItem", "dynamodb:GetItem"], [table_arn]))
    )
    dynamodb = moto.client("dynamodb", session)

    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "writer"}})
    with pytest.raises(ClientError) as raised:
        dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "writer"}})

    status, text = denial(raised.value)
    assert status == 403
    assert "AccessDenied" in text
    assert "assumed-role/writer/test-session is not authorized to perform: dynamodb:DeleteItem" in (
        text
    )


def test_moto_checks_other_services_than_s3_against_any_resource(moto: Moto) -> None:
    """Why `local_policy` widens them: as written, a statement naming the table never matches."""
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE}"
    written = allow(["dynamodb:GetItem"], [table_arn])
    iam = moto.client("iam")
    create_role(moto.endpoint_url, moto.operator, "as-written", LAMBDA_TRUST)
    iam.put_role_policy(RoleName="as-written", PolicyName="raw", PolicyDocument=json.dumps(written))
    as_written = moto.session(f"arn:aws:iam::{ACCOUNT}:role/as-written")

    with pytest.raises(ClientError) as raised:
        moto.client("dynamodb", as_written).get_item(TableName=TABLE, Key={"pk": {"S": "x"}})
    assert denial(raised.value)[0] == 403
    assert local_policy(written)["Statement"][0]["Resource"] == "*"


def test_s3_permissions_are_scoped_to_a_key_prefix(moto: Moto) -> None:
    session = moto.session(
        moto.role("reader", allow(["s3:GetObject"], [f"arn:aws:s3:::{BUCKET}/in/*"]))
    )
    s3 = moto.client("s3", session)

    assert s3.get_object(Bucket=BUCKET, Key="in/a.txt")["Body"].read() == b"hello"
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=BUCKET, Key="out/a.txt")
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=BUCKET, Key="in/b.txt", Body=b"x")
    assert raised.value.response["Error"]["Code"] == "AccessDenied"


def test_a_multipart_upload_needs_put_object(moto: Moto) -> None:
    session = moto.session(
        moto.role("uploader", allow(["s3:PutObject"], [f"arn:aws:s3:::{BUCKET}/exports/*"]))
    )
    s3 = moto.client("s3", session)

    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="exports/x.csv")["UploadId"]
    part = s3.upload_part(
        Bucket=BUCKET, Key="exports/x.csv", UploadId=upload, PartNumber=1, Body=b"a,b\n"
    )
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="exports/x.csv",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )

    assert moto.client("s3").head_object(Bucket=BUCKET, Key="exports/x.csv")["ContentLength"] == 4


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_presigned_urls_fail_unless_authorized_by_their_signer(moto: Moto) -> None:
    reader = moto.session(
        moto.role("presigner", allow(["s3:GetObject"], [f"arn:aws:s3:::{BUCKET}/in/*"]))
    )
    s3 = moto.client("s3", reader)
    sigv4 = reader.client(moto.endpoint_url, "s3", config=Config(signature_version="s3v4"))
    allowed = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "in/a.txt"})
    other = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "out/a.txt"})

    # moto wants an Authorization header on every checked request.
    assert _get(allowed) == 500
    with presigned_urls_authorized():
        assert _get(allowed) == 200
        assert _get(other) == 403
        for key, status in (("in/a.txt", 200), ("out/a.txt", 403)):
            url = sigv4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key})
            assert _get(url) == status


def _finished(moto: Moto, execution_arn: str) -> dict[str, Any]:
    sfn = moto.client("stepfunctions")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError(f"{execution_arn} still running")


def _invoking_machine(moto: Moto, name: str, role_arn: str) -> str:
    function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}"
    definition = {
        "StartAt": "Invoke",
        "States": {"Invoke": {"Type": "Task", "Resource": function_arn, "End": True}},
    }
    created = moto.client("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=role_arn
    )
    return str(created["stateMachineArn"])


def test_a_state_machine_invokes_lambda_with_its_own_role(moto: Moto) -> None:
    function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}"
    invoker = moto.role("invoker", allow(["lambda:InvokeFunction"], [function_arn]), STATES_TRUST)
    bystander = moto.role("bystander", allow(["s3:GetObject"], ["*"]), STATES_TRUST)
    allowed = _invoking_machine(moto, "invoking", invoker)
    refused = _invoking_machine(moto, "not-invoking", bystander)
    sfn = moto.client("stepfunctions")

    with state_machine_credentials(RoleSessions(moto.endpoint_url, moto.operator, "states")):
        succeeded = _finished(moto, sfn.start_execution(stateMachineArn=allowed)["executionArn"])
        failed = _finished(moto, sfn.start_execution(stateMachineArn=refused)["executionArn"])

    assert succeeded["status"] == "SUCCEEDED"
    assert failed["status"] == "FAILED"
    assert "assumed-role/bystander/states is not authorized to perform: lambda:Invoke" in str(
        failed.get("cause")
    )


def test_without_the_hook_the_interpreter_s_fixed_key_is_refused(moto: Moto) -> None:
    invoker = moto.role("unhooked-invoker", allow(["lambda:InvokeFunction"], ["*"]), STATES_TRUST)
    machine = _invoking_machine(moto, "unhooked", invoker)
    sfn = moto.client("stepfunctions")

    failed = _finished(moto, sfn.start_execution(stateMachineArn=machine)["executionArn"])

    assert failed["status"] == "FAILED"
