"""Lambda invocations run the real handlers in this process, as if deployed.

moto's Step Functions interpreter invokes Lambda over HTTP on the moto server; with Docker off,
moto answers through `LambdaSimpleBackend.invoke`, which this module replaces while a dispatcher is
installed. The local API Gateway calls `LambdaDispatcher.invoke` directly: both paths share the
handler loading, the context and the error contract of the Lambda Python runtime (a raised
exception becomes `FunctionError: Unhandled` with `errorType` = the exception's class name, which
Step Functions matches in `Retry`/`Catch`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dataexport_local.template import FunctionSpec

logger = logging.getLogger(__name__)

FUNCTION_ERROR_HEADER: Final = "x-amz-function-error"
UNHANDLED: Final = "Unhandled"
# What a Lambda authorizer raises to have API Gateway answer 401.
AUTHORIZER_REFUSAL: Final = "Unauthorized"
# The base class of the errors the functions raise on purpose (matched by name in the ASL).
DOMAIN_ERROR_BASE: Final = ("dataexport.errors", "DataExportError")
HANDLER_MODULE_PREFIX: Final = "dataexport_fn_"

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

    @classmethod
    def for_function(
        cls, function: FunctionSpec, invoked_arn: str | None = None
    ) -> LocalLambdaContext:
        """A fresh context for one invocation of `function`."""
        return cls(
            function_name=function.name,
            function_version="$LATEST",
            invoked_function_arn=invoked_arn or function.arn,
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{function.name}",
            log_stream_name=time.strftime("%Y/%m/%d") + f"/[$LATEST]{uuid.uuid4().hex}",
            timeout_seconds=function.timeout_seconds,
        )


@dataclass(frozen=True)
class Invocation:
    """What Lambda's Invoke answers: the payload and, for a failed invocation, FunctionError."""

    payload: bytes
    function_error: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class LambdaDispatcher:
    """Runs the template's functions in this process, each from its own `app.py`.

    Each dispatcher is a new deployment: handler modules are imported afresh (once, on first use)
    under a unique name, and the packages of the functions' layers are re-imported too, so their
    module-level caches (configuration read from the environment, clients) belong to it.

    Each function runs one invocation at a time, like a single Lambda instance: a Lambda process
    never runs two events at once, and handlers may keep per-request state in module globals
    (Powertools' resolver keeps the current event there). Different functions run concurrently.
    """

    def __init__(self, functions: Sequence[FunctionSpec]) -> None:
        self._functions = tuple(functions)
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._instance_locks = {function.logical_id: threading.Lock() for function in functions}
        self._layer_packages_purged = False

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

    def is_running(self, name_or_arn: str) -> bool:
        """Whether an invocation of the function is in progress."""
        return self._instance_locks[self.function(name_or_arn).logical_id].locked()

    def invoke(self, name_or_arn: str, event: Any) -> Invocation:
        """Call the handler with `event`; a raised exception is a FunctionError, as in Lambda."""
        function = self.function(name_or_arn)
        try:
            handler = self._handler(function)
        except Exception as exc:
            logger.exception("%s cannot be imported", function.name)
            return _error("Runtime.ImportModuleError", f"Unable to import module: {exc}", "", exc)
        context = LocalLambdaContext.for_function(
            function, invoked_arn=_as_arn(name_or_arn, function)
        )
        try:
            with self._instance_locks[function.logical_id]:
                result = handler(event, context)
        except Exception as exc:
            _log_failure(function, context.aws_request_id, exc)
            return _error(type(exc).__name__, str(exc), context.aws_request_id, exc)
        try:
            return Invocation(json.dumps(result).encode())
        except (TypeError, ValueError) as exc:
            # The Lambda runtime cannot serialise the result either.
            return _error(
                "Runtime.MarshalError", f"Unable to marshal response: {exc}", context.aws_request_id
            )

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

    def _handler(self, function: FunctionSpec) -> Handler:
        with self._lock:
            handler = self._handlers.get(function.logical_id)
            if handler is None:
                if not self._layer_packages_purged:
                    _forget_layer_packages(self._functions)
                    self._layer_packages_purged = True
                handler = _load_handler(function)
                self._handlers[function.logical_id] = handler
            return handler

    # --------------------------------------------------------------------- moto hook

    def install(self) -> None:
        """Route moto's Lambda invocations to this dispatcher (one dispatcher at a time)."""
        _moto_hook.install(self)

    def uninstall(self) -> None:
        """Give moto back its own `invoke`."""
        _moto_hook.uninstall(self)


def _as_arn(name_or_arn: str, function: FunctionSpec) -> str:
    return name_or_arn if name_or_arn.startswith("arn:") else function.arn


def _log_failure(function: FunctionSpec, request_id: str, exc: Exception) -> None:
    """Log a failed invocation: with its traceback only when nothing meant it to fail.

    An authorizer refuses a token by raising "Unauthorized" (API Gateway answers 401; the
    gateway's request line says so), and a step raises a domain error the state machine
    matches by name (a webhook to retry, an export that failed): one line each. Anything else
    is a bug, answered as a 5xx: its traceback is logged."""
    if type(exc) is Exception and str(exc) == AUTHORIZER_REFUSAL:
        logger.debug("%s refused a token (request %s)", function.name, request_id)
    elif _is_domain_error(exc):
        logger.info(
            "%s raised %s (request %s): %s", function.name, type(exc).__name__, request_id, exc
        )
    else:
        logger.exception("%s failed (request %s)", function.name, request_id)


def _is_domain_error(exc: Exception) -> bool:
    """Whether `exc` is one of dataexport's own errors. By the class's qualified name, not by
    isinstance: each dispatcher imports the layer's packages afresh, so the handlers' error
    classes are not the ones this module sees."""
    return any((cls.__module__, cls.__qualname__) == DOMAIN_ERROR_BASE for cls in type(exc).__mro__)


def _error(
    error_type: str, message: str, request_id: str, exc: BaseException | None = None
) -> Invocation:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if request_id:
        body["requestId"] = request_id
    # The Python runtime sends the stack trace too; the state machine's Cause carries it.
    body["stackTrace"] = traceback.format_tb(exc.__traceback__) if exc is not None else []
    return Invocation(json.dumps(body).encode(), function_error=UNHANDLED)


def _load_handler(function: FunctionSpec) -> Handler:
    """Import the handler's file under a unique module name and return its handler function."""
    path = function.handler_file
    if not path.is_file():
        raise FileNotFoundError(f"{function.logical_id}: handler file {path} does not exist")
    for layer_dir in function.layer_dirs:
        # Lambda puts layers on the path; an installed (editable) package still wins.
        if layer_dir.is_dir() and str(layer_dir) not in sys.path:
            sys.path.append(str(layer_dir))
    module_name = HANDLER_MODULE_PREFIX + _module_suffix(function)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    handler = getattr(module, function.handler_function, None)
    if not callable(handler):
        raise AttributeError(f"{path} has no function {function.handler_function}")
    return handler  # type: ignore[no-any-return]


def _module_suffix(function: FunctionSpec) -> str:
    name = function.code_dir.name or function.logical_id
    return "".join(char if char.isalnum() else "_" for char in name)


def _layer_packages(functions: Iterable[FunctionSpec]) -> set[str]:
    """Top-level packages and modules shipped in the functions' layer directories."""
    names: set[str] = set()
    for layer_dir in {path for function in functions for path in function.layer_dirs}:
        for candidates in (layer_dir, layer_dir / "python"):
            if not candidates.is_dir():
                continue
            for entry in candidates.iterdir():
                if (entry / "__init__.py").is_file():
                    names.add(entry.name)
                elif entry.suffix == ".py" and entry.stem.isidentifier():
                    names.add(entry.stem)
    return names


def _forget_layer_packages(functions: Iterable[FunctionSpec]) -> None:
    """Drop the layer packages from sys.modules so this deployment imports them afresh."""
    packages = _layer_packages(functions)
    for name in list(sys.modules):
        if name.split(".", 1)[0] in packages or name.startswith(HANDLER_MODULE_PREFIX):
            del sys.modules[name]


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
