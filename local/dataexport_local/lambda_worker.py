"""One Lambda execution environment: a process that imports one function's handler and runs its
invocations, one at a time, as the Lambda Python runtime does.

    python -m dataexport_local.lambda_worker SPEC_JSON RESPONSE_FD

The dispatcher starts it with exactly the function's environment (see lambda_dispatch.py), so
this module reads nothing of the local runtime: only the standard library, the variables Lambda
sets and the SPEC (handler file, function name, layer directories, setup files). Requests arrive
on stdin and answers leave on RESPONSE_FD, one JSON document per line; the handler's own stdout
and stderr are the process's, as a function's logs are.
"""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

HANDLER_MODULE: Final = "lambda_function_handler"
# The base class of the errors the functions raise on purpose (matched by name in the ASL).
DOMAIN_ERROR_BASE: Final = ("dataexport.errors", "DataExportError")
# What a Lambda authorizer raises to have API Gateway answer 401.
AUTHORIZER_REFUSAL: Final = "Unauthorized"
# How the dispatcher should log a failure: a refusal, a domain error, or a bug (with traceback).
REFUSAL, DOMAIN, BUG = "refusal", "domain", "bug"

Handler = Callable[[Any, Any], Any]


@dataclass
class LocalLambdaContext:
    """The attributes and method of the Lambda Python runtime's context object."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    timeout_seconds: int
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout (from the template) runs out."""
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def max_memory_used_mb() -> int:
    """This process's peak resident memory (VmHWM), in MB as Lambda's REPORT counts it."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def load_handler(handler_file: Path, function_name: str) -> Handler:
    """Import the handler's file, as the runtime imports `<CodeUri>/<module>.py`."""
    spec = importlib.util.spec_from_file_location(HANDLER_MODULE, handler_file)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import {handler_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[HANDLER_MODULE] = module
    spec.loader.exec_module(module)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise AttributeError(f"{handler_file} has no function {function_name}")
    return handler  # type: ignore[no-any-return]


def failure_kind(exc: BaseException) -> str:
    """A refusal of the authorizer, one of dataexport's own errors, or anything else (a bug)."""
    if type(exc) is Exception and str(exc) == AUTHORIZER_REFUSAL:
        return REFUSAL
    if any((cls.__module__, cls.__qualname__) == DOMAIN_ERROR_BASE for cls in type(exc).__mro__):
        return DOMAIN
    return BUG


def error_answer(
    error_type: str, message: str, exc: BaseException | None, kind: str = BUG
) -> dict[str, Any]:
    return {
        "error": {
            "errorType": error_type,
            "errorMessage": message,
            # The Python runtime sends the stack trace too; the state machine's Cause carries it.
            "stackTrace": traceback.format_tb(exc.__traceback__) if exc is not None else [],
        },
        "kind": kind,
        "traceback": "".join(traceback.format_exception(exc)) if exc is not None else "",
    }


def context_for(request: dict[str, Any]) -> LocalLambdaContext:
    """The context of one invocation, from what Lambda sets in the environment."""
    environ = os.environ
    return LocalLambdaContext(
        function_name=environ["AWS_LAMBDA_FUNCTION_NAME"],
        function_version=environ["AWS_LAMBDA_FUNCTION_VERSION"],
        invoked_function_arn=str(request["invoked_arn"]),
        memory_limit_in_mb=int(environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
        aws_request_id=str(request["request_id"]),
        log_group_name=environ["AWS_LAMBDA_LOG_GROUP_NAME"],
        log_stream_name=environ["AWS_LAMBDA_LOG_STREAM_NAME"],
        timeout_seconds=int(request["timeout_seconds"]),
    )


def invoke(handler: Handler, request: dict[str, Any]) -> dict[str, Any]:
    """Run one invocation: the result as JSON text, or Lambda's error body."""
    context = context_for(request)
    # Tracing is Active in the template: the runtime sets a trace header per invocation. Not
    # sampled: no X-Ray daemon listens locally.
    os.environ["_X_AMZN_TRACE_ID"] = (
        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"
    )
    try:
        result = handler(request["event"], context)
    except Exception as exc:
        return error_answer(type(exc).__name__, str(exc), exc, failure_kind(exc))
    try:
        return {"payload": json.dumps(result)}
    except (TypeError, ValueError) as exc:
        # The Lambda runtime cannot serialise the result either.
        return error_answer("Runtime.MarshalError", f"Unable to marshal response: {exc}", None)


def serve(spec: dict[str, Any], answers: IO[str]) -> None:
    """Init (setup files, then the handler's import), a ready line with its duration, then one
    answer per request line. An init that failed is the answer to every invocation, as in
    Lambda."""
    started = time.monotonic()
    for directory in [spec["code_dir"], *spec["layer_dirs"]]:
        for entry in (Path(directory), Path(directory) / "python"):
            if entry.is_dir() and str(entry) not in sys.path:
                sys.path.append(str(entry))
    handler: Handler | None = None
    init_error: dict[str, Any] | None = None
    try:
        for setup_file in spec["setup_files"]:
            runpy.run_path(setup_file)
        handler = load_handler(Path(spec["handler_file"]), spec["handler_function"])
    except Exception as exc:
        init_error = error_answer(
            "Runtime.ImportModuleError", f"Unable to import module: {exc}", exc
        )
    answers.write(json.dumps({"init_ms": (time.monotonic() - started) * 1000}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        began = time.monotonic()
        answer = invoke(handler, request) if handler is not None else init_error
        answer = {
            **(answer or {}),
            "duration_ms": (time.monotonic() - began) * 1000,
            "max_memory_mb": max_memory_used_mb(),
        }
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    spec = json.loads(sys.argv[1])
    with os.fdopen(int(sys.argv[2]), "w") as answers:
        serve(spec, answers)


if __name__ == "__main__":
    main()
