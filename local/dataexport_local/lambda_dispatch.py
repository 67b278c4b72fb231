"""Lambda invocations run the real handlers, each function in worker processes of its own.

moto's Step Functions interpreter invokes Lambda over HTTP on the moto server; with Docker off,
moto answers through `LambdaSimpleBackend.invoke`, which this module replaces while a dispatcher is
installed. The local API Gateway calls `LambdaDispatcher.invoke` directly: both paths share the
sandboxes (lambda_sandbox.py) and the error contract of the Lambda Python runtime (a raised
exception becomes `FunctionError: Unhandled` with `errorType` = the exception's class name, which
Step Functions matches in `Retry`/`Catch`; a function past its Timeout is `Sandbox.Timedout`).
Each invocation logs Lambda's REPORT line.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from dataexport_local.lambda_sandbox import (
    FunctionPool,
    SandboxError,
    SandboxSettings,
    WorkerAnswer,
    sandbox_environment,
    start_pools,
)
from dataexport_local.lambda_worker import DOMAIN, REFUSAL, LocalLambdaContext
from dataexport_local.template import FunctionSpec

# How long closing waits for invocations in flight before it stops their workers.
CLOSE_GRACE_SECONDS: Final = 5.0

logger = logging.getLogger(__name__)
# Lambda's REPORT lines, apart from the dispatcher's own (a function's log, in AWS).
report_logger = logging.getLogger("dataexport_local.lambda_report")

FUNCTION_ERROR_HEADER: Final = "x-amz-function-error"
UNHANDLED: Final = "Unhandled"
TIMED_OUT: Final = "Sandbox.Timedout"

__all__ = ["Invocation", "LambdaDispatcher", "LocalLambdaContext"]


class HandlerFailure(Exception):
    """A handler's unexpected exception, as its worker's traceback text (logged, not raised)."""


@dataclass(frozen=True)
class Invocation:
    """What Lambda's Invoke answers: the payload and, for a failed invocation, FunctionError."""

    payload: bytes
    function_error: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class LambdaDispatcher:
    """Runs the template's functions, each in worker processes of its own; a context manager.

    settings: what the local runtime adds to every sandbox (the moto endpoint and credentials,
    the caller's extra variables); None gives the functions only their own and Lambda's
    variables. `close()` stops every worker.
    """

    def __init__(
        self, functions: Sequence[FunctionSpec], settings: SandboxSettings | None = None
    ) -> None:
        self._functions = tuple(functions)
        self._settings = settings or SandboxSettings(local_environment={}, extra_environment={})
        self._pools: dict[str, FunctionPool] = start_pools(self._functions, self._settings)
        self._closing = False

    def __enter__(self) -> LambdaDispatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def retire_workers(self) -> None:
        """Let no warm worker serve another invocation: each function's next invocation starts
        in a new execution environment, with empty caches (secrets, clients, configuration)."""
        for pool in self._pools.values():
            pool.retire()

    def close(self) -> None:
        """Stop every worker of every function, once the invocations in flight have ended or
        CLOSE_GRACE_SECONDS have passed (a step of an execution stopped with the runtime)."""
        self._closing = True
        deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        while any(pool.busy for pool in self._pools.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pool in self._pools.values():
            pool.close()

    @property
    def functions(self) -> tuple[FunctionSpec, ...]:
        return self._functions

    def function(self, name_or_arn: str) -> FunctionSpec:
        """The function named by its physical name, ARN (qualified or not) or logical id."""
        for function in self._functions:
            if name_or_arn in (function.name, function.arn, function.logical_id) or (
                name_or_arn.startswith(function.arn + ":")
            ):
                return function
        raise LookupError(f"No function {name_or_arn} in the template")

    def environment(self, name_or_arn: str) -> dict[str, str]:
        """What a worker of the function sees in os.environ (but for its log stream's name)."""
        function = self.function(name_or_arn)
        return sandbox_environment(function, self._settings, f"local/[$LATEST]{function.name}")

    def is_running(self, name_or_arn: str) -> bool:
        """Whether an invocation of the function is in progress."""
        return self._pools[self.function(name_or_arn).logical_id].busy > 0

    def worker_pids(self, name_or_arn: str | None = None) -> list[int]:
        """The process ids of the function's workers (every function's when None)."""
        pools = (
            [self._pools[self.function(name_or_arn).logical_id]]
            if name_or_arn is not None
            else list(self._pools.values())
        )
        return sorted(pid for pool in pools for pid in pool.pids)

    def invoke(self, name_or_arn: str, event: Any) -> Invocation:
        """Run the handler on `event` in one of the function's workers, as Lambda would."""
        function = self.function(name_or_arn)
        pool = self._pools[function.logical_id]
        request_id = str(uuid.uuid4())
        request = {
            "request_id": request_id,
            "event": event,
            "invoked_arn": name_or_arn if name_or_arn.startswith("arn:") else function.arn,
            "timeout_seconds": function.timeout_seconds,
        }
        try:
            worker, cold = pool.acquire()
        except SandboxError as exc:
            logger.error("%s could not start a worker: %s", function.name, exc)
            return _error("Runtime.ExitError", str(exc), request_id)
        started = time.monotonic()
        try:
            answer = worker.invoke(request, function.timeout_seconds)
        except SandboxError as exc:
            pool.release(worker, reusable=False)
            # Stopped with the runtime, a worker's end is expected; otherwise it is news.
            log = logger.debug if self._closing else logger.error
            log("%s's worker died (request %s): %s", function.name, request_id, exc)
            return _error("Runtime.ExitError", f"RequestId: {request_id} Error: {exc}", request_id)
        if answer is None:
            # Lambda stops the execution environment; the next invocation starts a new one.
            worker.kill()
            pool.release(worker, reusable=False)
            _report(
                function,
                request_id,
                duration_ms=(time.monotonic() - started) * 1000,
                max_memory_mb=None,
                init_ms=worker.init_ms if cold else None,
            )
            message = f"Task timed out after {function.timeout_seconds:.2f} seconds"
            logger.info("%s timed out (request %s)", function.name, request_id)
            return _error(TIMED_OUT, f"RequestId: {request_id} Error: {message}", request_id)
        pool.release(worker, reusable=True)
        _report(
            function,
            request_id,
            duration_ms=answer.duration_ms,
            max_memory_mb=answer.max_memory_mb,
            init_ms=worker.init_ms if cold else None,
        )
        return _invocation(function, request_id, answer)

    def invoke_payload(self, name_or_arn: str, payload: bytes | str | None) -> Invocation:
        """`invoke` with a raw JSON payload, as Lambda's Invoke API receives it."""
        text = payload.decode() if isinstance(payload, bytes) else (payload or "")
        try:
            event = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            return _error(
                "InvalidRequestContentException", f"Could not parse the payload: {exc}", ""
            )
        return self.invoke(name_or_arn, event)

    # --------------------------------------------------------------------- moto hook

    def install(self) -> None:
        """Route moto's Lambda invocations to this dispatcher (one dispatcher at a time)."""
        _moto_hook.install(self)

    def uninstall(self) -> None:
        """Give moto back its own `invoke`."""
        _moto_hook.uninstall(self)


def _invocation(function: FunctionSpec, request_id: str, answer: WorkerAnswer) -> Invocation:
    if answer.error is None:
        return Invocation((answer.payload or "null").encode())
    _log_failure(function, request_id, answer)
    body = {**answer.error, "requestId": request_id}
    return Invocation(json.dumps(body).encode(), function_error=UNHANDLED)


def _report(
    function: FunctionSpec,
    request_id: str,
    *,
    duration_ms: float,
    max_memory_mb: int | None,
    init_ms: float | None,
) -> None:
    """Lambda's REPORT line: duration, billed duration, memory, init duration on a cold start."""
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms",
        f"Memory Size: {function.memory_mb} MB",
    ]
    # A killed worker cannot say how much memory it used; Lambda's line says why it ended.
    parts.append(
        "Status: timeout" if max_memory_mb is None else f"Max Memory Used: {max_memory_mb} MB"
    )
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    report_logger.debug("%s: %s", function.name, "\t".join(parts))


def _log_failure(function: FunctionSpec, request_id: str, answer: WorkerAnswer) -> None:
    """Log a failed invocation: with its traceback only when nothing meant it to fail.

    An authorizer refuses a token by raising "Unauthorized" (API Gateway answers 401; the
    gateway's request line says so), and a step raises a domain error the state machine
    matches by name (a webhook to retry, an export that failed): one line each. Anything else
    is a bug, answered as a 5xx: its traceback (from the worker) is logged."""
    error = answer.error or {}
    if answer.kind == REFUSAL:
        logger.debug("%s refused a token (request %s)", function.name, request_id)
    elif answer.kind == DOMAIN:
        logger.info(
            "%s raised %s (request %s): %s",
            function.name,
            error.get("errorType"),
            request_id,
            error.get("errorMessage"),
        )
    else:
        failure = HandlerFailure(answer.traceback or str(error.get("errorMessage")))
        logger.error(
            "%s failed (request %s)",
            function.name,
            request_id,
            exc_info=(HandlerFailure, failure, None),
        )


def _error(error_type: str, message: str, request_id: str) -> Invocation:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if request_id:
        body["requestId"] = request_id
    body["stackTrace"] = []
    return Invocation(json.dumps(body).encode(), function_error=UNHANDLED)


class _MotoLambdaHook:
    """Replaces `LambdaSimpleBackend.invoke` while one dispatcher is installed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dispatcher: LambdaDispatcher | None = None
        self._original: Any = None

    def install(self, dispatcher: LambdaDispatcher) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: PLC0415 - moto is heavy

        with self._lock:
            if self._dispatcher is not None:
                raise RuntimeError("Another LambdaDispatcher is already installed in this process")
            self._dispatcher = dispatcher
            self._original = LambdaSimpleBackend.__dict__["invoke"]
            LambdaSimpleBackend.invoke = _dispatched_invoke  # type: ignore[method-assign,assignment]

    def uninstall(self, dispatcher: LambdaDispatcher) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: PLC0415

        with self._lock:
            if self._dispatcher is not dispatcher:
                return
            LambdaSimpleBackend.invoke = self._original  # type: ignore[method-assign]
            self._dispatcher = None
            self._original = None

    @property
    def dispatcher(self) -> LambdaDispatcher:
        dispatcher = self._dispatcher
        if dispatcher is None:
            raise RuntimeError("No LambdaDispatcher is installed")
        return dispatcher


_moto_hook = _MotoLambdaHook()


def _dispatched_invoke(  # noqa: PLR0917 - moto's positional signature
    backend: Any,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: dict[str, str],
) -> bytes:
    """The replacement for `LambdaSimpleBackend.invoke` (same signature, `self` = backend)."""
    # moto's own lookup answers ResourceNotFoundException for a function it does not know.
    deployed = backend.get_function(function_name, qualifier)
    dispatcher = _moto_hook.dispatcher
    invocation_type = headers.get("X-Amz-Invocation-Type") if headers is not None else None
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        threading.Thread(
            target=dispatcher.invoke_payload,
            args=(deployed.function_name, body),
            name=f"lambda-event-{deployed.function_name}",
            daemon=True,
        ).start()
        return b""
    invocation = dispatcher.invoke_payload(deployed.function_name, body)
    if invocation.function_error is not None:
        response_headers[FUNCTION_ERROR_HEADER] = invocation.function_error
    return invocation.payload
