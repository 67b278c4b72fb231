"""Each function runs in worker processes of its own, as in Lambda's execution environments:
its own environment only, Lambda's variables, one invocation at a time per worker, warm reuse,
several workers for concurrent invocations, a timeout that kills, a REPORT line per invocation,
and no worker left once the dispatcher closes."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from dataexport_local.lambda_dispatch import CLOSE_GRACE_SECONDS, LambdaDispatcher
from dataexport_local.template import StackTemplate
from tests.local.conftest import captured_log

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:api/dev/GET/v1/things"


@pytest.fixture
def dispatcher(stub_template: StackTemplate) -> Iterator[LambdaDispatcher]:
    with LambdaDispatcher(stub_template.functions) as started:
        yield started


@pytest.fixture
def reports() -> Iterator[list[logging.LogRecord]]:
    """The REPORT lines the dispatcher logs."""
    with captured_log("dataexport_local.lambda_report") as records:
        yield records


def test_a_function_sees_its_own_environment_and_lambda_s_variables_only(
    dispatcher: LambdaDispatcher, stub_template: StackTemplate
) -> None:
    # When the Work function reports its environment
    work = stub_template.function("WorkFunction")
    seen = dispatcher.invoke("WorkFunction", {}).json()["environment"]

    # Then it has its own template variables and what Lambda sets
    assert seen["RECORDS_TABLE_NAME"] == work.environment["RECORDS_TABLE_NAME"]
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == work.name
    assert seen["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert seen["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert seen["AWS_REGION"] == seen["AWS_DEFAULT_REGION"] == "us-east-1"
    assert seen["_HANDLER"] == "app.lambda_handler"
    assert seen["LAMBDA_TASK_ROOT"] == str(work.code_dir)
    assert seen["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{work.name}"
    assert seen["AWS_LAMBDA_LOG_STREAM_NAME"].split("/")[-1].startswith("[$LATEST]")
    assert seen["TZ"] == ":UTC"
    # and nothing of another function's entry, nor of this process
    others = {
        name
        for function in stub_template.functions
        if function.logical_id != "WorkFunction"
        for name in function.environment
    } - set(work.environment)
    assert {"TOKEN_SECRET_ARN", "GREETING"} <= others
    assert not others & set(seen)
    assert "PYTEST_CURRENT_TEST" not in seen
    # (set during the invocation: the trace header; by Python where LANG's locale is missing)
    during = {"_X_AMZN_TRACE_ID", "LC_CTYPE"}
    assert set(seen) - during == set(dispatcher.environment("WorkFunction"))


def test_a_warm_worker_is_reused_and_busy_workers_get_company(
    dispatcher: LambdaDispatcher,
) -> None:
    # When the function is invoked twice in a row
    first = dispatcher.invoke("WorkFunction", {}).json()
    second = dispatcher.invoke("WorkFunction", {}).json()

    # Then the same warm worker ran both
    assert first["pid"] == second["pid"]
    assert second["invocations"] == 2

    # When two invocations arrive at once
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        both = list(pool.map(lambda _: dispatcher.invoke("WorkFunction", {"sleep": 1.5}), [0, 1]))
    elapsed = time.monotonic() - started

    # Then they ran at the same time in two workers, one of them the warm one
    pids = {invocation.json()["pid"] for invocation in both}
    assert len(pids) == 2 and first["pid"] in pids
    assert elapsed < 2.9, f"two 1.5 s invocations took {elapsed:.1f} s: they did not overlap"
    assert dispatcher.worker_pids("WorkFunction") == sorted(pids)


def test_a_function_past_its_timeout_is_killed_and_answers_sandbox_timedout(
    stub_template: StackTemplate, reports: list[logging.LogRecord]
) -> None:
    # Given the Work function with a Timeout of 1 second
    work = dataclasses.replace(stub_template.function("WorkFunction"), timeout_seconds=1)
    with LambdaDispatcher([work]) as dispatcher:
        # When an invocation runs for longer
        timed_out = dispatcher.invoke("WorkFunction", {"sleep": 30})
        workers_left = dispatcher.worker_pids()
        after = dispatcher.invoke("WorkFunction", {})

    # Then the caller sees Lambda's timeout error, and the worker is gone
    assert timed_out.function_error == "Unhandled"
    error = timed_out.json()
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in error["errorMessage"]
    assert workers_left == []
    # and the next invocation runs in a new worker, from a cold start
    assert after.function_error is None and after.json()["invocations"] == 1
    lines = [record.getMessage() for record in reports]
    assert "Status: timeout" in lines[0]
    assert "Init Duration" in lines[1]


def test_every_invocation_logs_lambda_s_report_line(
    dispatcher: LambdaDispatcher, reports: list[logging.LogRecord]
) -> None:
    dispatcher.invoke("WorkFunction", {})
    failed = dispatcher.invoke("WorkFunction", {"fail": True}).json()

    lines = [record.getMessage() for record in reports]
    assert len(lines) == 2
    cold, warm = lines
    for line in lines:
        assert "dataexport-WorkFunction: REPORT RequestId: " in line
        for fact in ("Duration: ", "Billed Duration: ", "Memory Size: 256 MB", "Max Memory Used: "):
            assert fact in line, line
    assert "Init Duration: " in cold and "Init Duration" not in warm
    assert failed["requestId"] in warm
    used = int(warm.split("Max Memory Used: ")[1].split(" MB")[0])
    assert 5 < used < 256


def test_no_worker_survives_the_dispatcher_s_close(stub_template: StackTemplate) -> None:
    # Given workers of two functions, one of them busy
    with LambdaDispatcher(stub_template.functions) as dispatcher:
        dispatcher.invoke("WorkFunction", {})
        allowed = dispatcher.invoke(
            "AuthorizerFunction", {"authorizationToken": "allow-a", "methodArn": METHOD_ARN}
        )
        assert allowed.function_error is None
        busy = ThreadPoolExecutor(max_workers=1)
        # (longer than the grace closing gives invocations in flight)
        pending = busy.submit(
            dispatcher.invoke, "WorkFunction", {"sleep": CLOSE_GRACE_SECONDS + 10}
        )
        deadline = time.monotonic() + 5
        while not dispatcher.is_running("WorkFunction") and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = dispatcher.worker_pids()
        assert len(pids) >= 2

    # When it has closed, then none of them runs any more
    alive = [pid for pid in pids if psutil.pid_exists(pid) and _not_a_zombie(pid)]
    assert alive == [], f"workers {alive} outlived the dispatcher"
    # and the invocation that was running answers as Lambda's runtime does when it exits
    assert pending.result(timeout=10).json()["errorType"] == "Runtime.ExitError"
    busy.shutdown()


def _not_a_zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_retired_workers_are_not_reused(dispatcher: LambdaDispatcher) -> None:
    # Given a warm worker
    warm = dispatcher.invoke("WorkFunction", {}).json()

    # When the workers are retired (as after a deployment), then the next invocation starts cold
    dispatcher.retire_workers()
    cold = dispatcher.invoke("WorkFunction", {}).json()
    assert cold["pid"] != warm["pid"] and cold["invocations"] == 1
    assert not psutil.pid_exists(warm["pid"]) or not _not_a_zombie(warm["pid"])
