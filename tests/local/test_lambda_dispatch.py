"""Handlers run in-process with Lambda's context and its error contract."""

from __future__ import annotations

from typing import Any

from dataexport_local.lambda_dispatch import LambdaDispatcher, LocalLambdaContext
from dataexport_local.template import SamTemplate


def test_a_raised_exception_is_an_unhandled_function_error_named_by_its_class(
    stub_template: SamTemplate,
) -> None:
    # Given the stub step handler, which raises SourceUnavailable when asked to fail
    dispatcher = LambdaDispatcher(stub_template.functions)

    # When it is invoked and fails
    invocation = dispatcher.invoke("WorkFunction", {"fail": True})

    # Then Lambda's error contract holds: FunctionError Unhandled, errorType = the class name
    assert invocation.function_error == "Unhandled"
    error: dict[str, Any] = invocation.json()
    assert error["errorType"] == "SourceUnavailable"
    assert error["errorMessage"] == "database down"
    assert isinstance(error["stackTrace"], list)


def test_a_handler_module_is_imported_once_and_called_with_a_lambda_context(
    stub_template: SamTemplate,
) -> None:
    # Given a dispatcher (a fresh "deployment")
    dispatcher = LambdaDispatcher(stub_template.functions)
    work = stub_template.function("WorkFunction")

    # When the function is invoked twice, by name and by qualified ARN
    first = dispatcher.invoke(work.name, {})
    second = dispatcher.invoke(f"{work.arn}:$LATEST", {})

    # Then both ran in the same module instance, with the template's Timeout (from Globals)
    assert first.function_error is None and second.function_error is None
    assert [first.json()["invocations"], second.json()["invocations"]] == [1, 2]
    assert 6_000 < first.json()["remaining_ms"] <= 7_000


def test_the_context_carries_the_function_s_name_arn_and_memory(
    stub_template: SamTemplate,
) -> None:
    recover = stub_template.function("RecoverFunction")
    context = LocalLambdaContext.for_function(recover)
    assert context.function_name == recover.name == "dataexport-RecoverFunction"
    assert context.invoked_function_arn == recover.arn
    assert context.memory_limit_in_mb == 256
    assert 11_000 < context.get_remaining_time_in_millis() <= 12_000
    assert context.aws_request_id != LocalLambdaContext.for_function(recover).aws_request_id


def test_a_raw_payload_is_parsed_like_lambda_s_invoke(stub_template: SamTemplate) -> None:
    dispatcher = LambdaDispatcher(stub_template.functions)
    assert dispatcher.invoke_payload("WorkFunction", b"").json()["worked"] is True
    broken = dispatcher.invoke_payload("WorkFunction", b"{not json")
    assert broken.function_error == "Unhandled"
