"""Lambda execution environments for the local runtime: worker processes, one function each.

A function's invocations run in worker processes of its own (lambda_worker.py), started with
exactly the environment its template entry gives, what Lambda itself sets, and what the local
runtime adds to reach moto. A worker runs one invocation at a time and is reused while warm; a
function gets another worker when all of its workers are busy, up to its reserved concurrency
(or a local cap). A worker past the function's Timeout is killed and replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from dataexport_local.template import REGION, FunctionSpec

WORKER_MODULE: Final = "dataexport_local.lambda_worker"
# Workers per function when the template reserves no concurrency for it.
LOCAL_CONCURRENCY_CAP: Final = 8
# Lambda bounds init at 10 s; this machine imports more slowly than Lambda under a parallel
# test run, so a worker gets longer to become ready (a hung import still fails).
WORKER_READY_SECONDS: Final = 120.0
STOP_GRACE_SECONDS: Final = 5.0


class SandboxError(RuntimeError):
    """A worker could not be started, or died."""


def lambda_environment(function: FunctionSpec, log_stream: str) -> dict[str, str]:
    """The variables the Lambda service sets in every execution environment of `function`."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "_HANDLER": function.handler,
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        # Lambda's PATH names its own directories; locally the interpreter's is the stand-in.
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
    }


@dataclass(frozen=True)
class SandboxSettings:
    """What the local runtime adds to every function's sandbox.

    local_environment: the variables that send the SDK to moto instead of AWS (see
        `LocalAws.sandbox_environment`).
    extra_environment: variables the caller of the runtime adds (e.g. DATASETS_DIR).
    setup_files: Python files each worker runs before importing its handler (tests use one to
        change a constant the product does not read from its configuration).
    role_credentials: the AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN of a
        session of the function's execution role, by role ARN and session name, as Lambda sets
        them; None leaves the credentials of `local_environment`.
    """

    local_environment: Mapping[str, str]
    extra_environment: Mapping[str, str]
    setup_files: tuple[Path, ...] = ()
    role_credentials: Callable[[str, str], Mapping[str, str]] | None = None


def sandbox_environment(
    function: FunctionSpec, settings: SandboxSettings, log_stream: str
) -> dict[str, str]:
    """Exactly what a worker of `function` sees in os.environ."""
    credentials = (
        settings.role_credentials(function.role_arn, function.name)
        if settings.role_credentials is not None
        else {}
    )
    return {
        **function.environment,
        **settings.extra_environment,
        **lambda_environment(function, log_stream),
        **settings.local_environment,
        **credentials,
    }


@dataclass(frozen=True)
class WorkerAnswer:
    """What a worker said about one invocation (see lambda_worker.invoke)."""

    payload: str | None
    error: Mapping[str, Any] | None
    kind: str
    traceback: str
    duration_ms: float
    max_memory_mb: int


class Worker:
    """One worker process of one function: started, ready, then one invocation at a time."""

    def __init__(self, function: FunctionSpec, settings: SandboxSettings) -> None:
        self.function = function
        self.log_stream = time.strftime("%Y/%m/%d") + f"/[$LATEST]{uuid.uuid4().hex}"
        spec = {
            "code_dir": str(function.code_dir),
            "layer_dirs": [str(path) for path in function.layer_dirs],
            "handler_file": str(function.handler_file),
            "handler_function": function.handler_function,
            "setup_files": [str(path) for path in settings.setup_files],
        }
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, json.dumps(spec), str(write_fd)],
                stdin=subprocess.PIPE,
                env=sandbox_environment(function, settings, self.log_stream),
                cwd=function.code_dir,
                pass_fds=(write_fd,),
                text=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._answers: IO[str] = os.fdopen(read_fd, "r")
        try:
            ready = self._read(WORKER_READY_SECONDS)
        except SandboxError:
            self.stop()
            raise
        if ready is None:
            self.kill()
            raise SandboxError(f"A worker of {function.logical_id} did not become ready")
        # Reported with the first invocation, as Lambda's REPORT line does.
        self.init_ms: float | None = float(ready["init_ms"])

    @property
    def pid(self) -> int:
        return self.process.pid

    def invoke(self, request: Mapping[str, Any], timeout_seconds: float) -> WorkerAnswer | None:
        """Run one invocation; None when it did not answer within `timeout_seconds`."""
        stdin = self.process.stdin
        if stdin is None:
            raise SandboxError("The worker has no stdin")
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            answer = self._read(timeout_seconds)
        except (BrokenPipeError, ValueError) as exc:
            # ValueError: its pipes were closed, the dispatcher stopping it meanwhile.
            raise SandboxError(f"The worker of {self.function.logical_id} was stopped") from exc
        if answer is None:
            return None
        return WorkerAnswer(
            payload=answer.get("payload"),
            error=answer.get("error"),
            kind=str(answer.get("kind", "")),
            traceback=str(answer.get("traceback", "")),
            duration_ms=float(answer["duration_ms"]),
            max_memory_mb=int(answer["max_memory_mb"]),
        )

    def _read(self, timeout_seconds: float) -> dict[str, Any] | None:
        """The worker's next answer line; None on timeout; SandboxError if it exited."""
        readable, _, _ = select.select([self._answers], [], [], timeout_seconds)
        if not readable:
            return None
        line = self._answers.readline()
        if not line:
            code = self.process.wait()
            raise SandboxError(f"Runtime exited with error: exit status {code}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        """End the process: its stdin closed first (it exits between invocations), then killed."""
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS if self.process.poll() is None else 0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._answers.close()

    def kill(self) -> None:
        """Kill at once (a function past its timeout)."""
        self.process.kill()
        self.stop()


class FunctionPool:
    """The workers of one function: idle ones reused (warmest first), new ones up to `cap`."""

    def __init__(self, function: FunctionSpec, start: Callable[[], Worker], cap: int) -> None:
        self.function = function
        self.cap = cap
        self._start = start
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._starting = 0
        # Busy workers that are not to be reused once their invocation ends.
        self._retired: set[Worker] = set()
        self._condition = threading.Condition()
        self._closed = False

    @property
    def busy(self) -> int:
        with self._condition:
            return len(self._all) + self._starting - len(self._idle)

    @property
    def pids(self) -> list[int]:
        with self._condition:
            return sorted(worker.pid for worker in self._all)

    def acquire(self) -> tuple[Worker, bool]:
        """A worker for one invocation, and whether it was started for it (a cold start)."""
        with self._condition:
            while True:
                if self._closed:
                    raise SandboxError(f"{self.function.logical_id}'s workers are stopped")
                if self._idle:
                    return self._idle.pop(), False
                if len(self._all) + self._starting < self.cap:
                    self._starting += 1
                    break
                self._condition.wait()
        try:
            worker = self._start()
        except BaseException:
            with self._condition:
                self._starting -= 1
                self._condition.notify()
            raise
        with self._condition:
            self._starting -= 1
            self._all.add(worker)
            if self._closed:
                self._all.discard(worker)
                worker.stop()
                raise SandboxError(f"{self.function.logical_id}'s workers are stopped")
        return worker, True

    def release(self, worker: Worker, *, reusable: bool) -> None:
        """Give a worker back after its invocation; one that is not reusable is stopped."""
        with self._condition:
            retired = worker in self._retired
            self._retired.discard(worker)
            if reusable and not retired and not self._closed and worker.process.poll() is None:
                self._idle.append(worker)
                self._condition.notify()
                return
            self._all.discard(worker)
            self._condition.notify()
        worker.stop()

    def retire(self) -> None:
        """Stop the idle workers and keep no busy one once it is done: the next invocations
        start cold, in new execution environments (as after a deployment or a long idle)."""
        with self._condition:
            idle = list(self._idle)
            self._idle.clear()
            self._all.difference_update(idle)
            self._retired.update(self._all)
            self._condition.notify_all()
        for worker in idle:
            worker.stop()

    def close(self) -> None:
        """Stop every worker, busy ones included."""
        with self._condition:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._condition.notify_all()
        for worker in workers:
            worker.kill()


def concurrency_cap(function: FunctionSpec) -> int:
    """The function's ReservedConcurrentExecutions, or the local cap."""
    reserved = function.reserved_concurrency
    return reserved if reserved is not None and reserved > 0 else LOCAL_CONCURRENCY_CAP


def start_pools(
    functions: Sequence[FunctionSpec], settings: SandboxSettings
) -> dict[str, FunctionPool]:
    """A pool per function, by logical id; workers start on first use."""
    return {
        function.logical_id: FunctionPool(
            function,
            lambda function=function: Worker(function, settings),  # type: ignore[misc]
            concurrency_cap(function),
        )
        for function in functions
    }
