"""Handlers run in their functions' workers with Lambda's context and its error contract."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from dataexport_local.lambda_dispatch import LambdaDispatcher
from dataexport_local.template import StackTemplate
from tests.local.conftest import captured_log


def test_a_raised_exception_is_an_unhandled_function_error_named_by_its_class(
    stub_template: StackTemplate,
) -> None:
    # Given the stub step handler, which raises SourceUnavailable when asked to fail
    with LambdaDispatcher(stub_template.functions) as dispatcher:
        # When it is invoked and fails
        invocation = dispatcher.invoke("WorkFunction", {"fail": True})

    # Then Lambda's error contract holds: FunctionError Unhandled, errorType = the class name
    assert invocation.function_error == "Unhandled"
    error: dict[str, Any] = invocation.json()
    assert error["errorType"] == "SourceUnavailable"
    assert error["errorMessage"] == "database down"
    assert isinstance(error["stackTrace"], list)


def test_a_handler_module_is_imported_once_and_called_with_a_lambda_context(
    stub_template: StackTemplate,
) -> None:
    # Given a dispatcher (a fresh "deployment")
    work = stub_template.function("WorkFunction")
    with LambdaDispatcher(stub_template.functions) as dispatcher:
        # When the function is invoked twice, by name and by qualified ARN
        first = dispatcher.invoke(work.name, {})
        second = dispatcher.invoke(f"{work.arn}:$LATEST", {})

    # Then both ran in the same module instance, with the template's Timeout (from Globals)
    assert first.function_error is None and second.function_error is None
    assert [first.json()["invocations"], second.json()["invocations"]] == [1, 2]
    assert 6_000 < first.json()["remaining_ms"] <= 7_000
    # and a context naming the function, the ARN it was invoked by, its memory and the request
    context = second.json()["context"]
    assert context["function_name"] == work.name == "dataexport-WorkFunction"
    assert context["invoked_function_arn"] == f"{work.arn}:$LATEST"
    assert context["memory_limit_in_mb"] == 256
    assert context["log_group_name"] == f"/aws/lambda/{work.name}"
    assert context["aws_request_id"] != first.json()["context"]["aws_request_id"]


def test_a_raw_payload_is_parsed_like_lambda_s_invoke(stub_template: StackTemplate) -> None:
    with LambdaDispatcher(stub_template.functions) as dispatcher:
        assert dispatcher.invoke_payload("WorkFunction", b"").json()["worked"] is True
        broken = dispatcher.invoke_payload("WorkFunction", b"{not json")
    assert broken.function_error == "Unhandled"


@pytest.fixture
def dispatch_log() -> Iterator[list[logging.LogRecord]]:
    """What the dispatcher logs, at every level."""
    with captured_log("dataexport_local.lambda_dispatch") as records:
        yield records


def test_only_a_failure_nothing_meant_is_logged_with_its_traceback(
    stub_template: StackTemplate, dispatch_log: list[logging.LogRecord]
) -> None:
    # Given the stub functions
    authorizer = stub_template.function("AuthorizerFunction")
    method_arn = "arn:aws:execute-api:us-east-1:123456789012:api/dev/GET/v1/things"

    # When a step raises a domain error, the authorizer refuses a token, and it has a bug
    with LambdaDispatcher(stub_template.functions) as dispatcher:
        dispatcher.invoke("WorkFunction", {"fail": True})
        refused = {"authorizationToken": "Bearer nobody", "methodArn": method_arn}
        assert dispatcher.invoke(authorizer.name, refused).json()["errorMessage"] == "Unauthorized"
        crash = {"authorizationToken": "crash", "methodArn": method_arn}
        dispatcher.invoke(authorizer.name, crash)

    # Then the first two are one line each without a traceback (the refusal only at DEBUG),
    # and only the bug is logged with its traceback
    logged = [(record.levelno, record.exc_info is not None) for record in dispatch_log]
    assert logged == [(logging.INFO, False), (logging.DEBUG, False), (logging.ERROR, True)]
    assert "raised SourceUnavailable" in dispatch_log[0].getMessage()
    assert "database down" in dispatch_log[0].getMessage()
