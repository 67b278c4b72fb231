"""ECS for the local runtime: RunTask runs the task definition's entry point as a local process.

moto records ECS tasks but runs nothing. Here its backend's RunTask also starts the script the
template's task definition names in `Metadata.EntryPoint` (what the image's entry point runs),
with the container's environment, RunTask's overrides, the local AWS endpoint and credentials of a
session of the task definition's TaskRoleArn (ECS hands a task those through its credentials
endpoint; the SDK reads them from either place); DescribeTasks
then reports the process as ECS reports a container: RUNNING, then STOPPED with its exit code
(a signal N as 128 + N, as Docker does). StopTask stops the process as ECS would: SIGTERM, then
SIGKILL after the container's StopTimeout. So Step Functions' `ecs:runTask.sync` waits for the
real work and sees its real outcome.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dataexport_local.template import TaskDefinitionSpec

logger = logging.getLogger(__name__)

TASK_MODEL = "ecs::task"
# Variables of this process a task process also gets (the rest comes from its definition).
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
DEFAULT_STOP_TIMEOUT_SECONDS = 30


def exit_code(returncode: int) -> int:
    """A process's exit as a container's: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class LocalTasks:
    """Runs ECS tasks of the template's task definitions as local processes; install() hooks
    moto's ECS backend (in this process, like the Lambda dispatcher), uninstall() undoes it and
    stops what still runs. `role_credentials` gives the AWS_* credential variables of a session
    of a role, by role ARN and session name."""

    def __init__(
        self,
        task_definitions: Sequence[TaskDefinitionSpec],
        environment: Mapping[str, str],
        role_credentials: Callable[[str, str], Mapping[str, str]] | None = None,
    ) -> None:
        self._specs = {spec.family: spec for spec in task_definitions}
        self._environment = dict(environment)
        self._role_credentials = role_credentials
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._originals: dict[str, Callable[..., Any]] = {}

    # ------------------------------------------------------------------ hook
    def install(self) -> None:
        from moto.ecs.models import EC2ContainerServiceBackend  # noqa: PLC0415 - moto is heavy
        from moto.moto_api import state_manager  # noqa: PLC0415

        # moto would otherwise move tasks towards STOPPED on its own, as DescribeTasks is called.
        state_manager.set_transition(
            model_name=TASK_MODEL, transition={"progression": "manual", "times": sys.maxsize}
        )
        runner = self
        for name in ("run_task", "describe_tasks", "stop_task"):
            self._originals[name] = getattr(EC2ContainerServiceBackend, name)
        run_task, describe_tasks, stop_task = (
            self._originals["run_task"],
            self._originals["describe_tasks"],
            self._originals["stop_task"],
        )

        def run(backend: Any, *args: Any, **kwargs: Any) -> Any:
            tasks = run_task(backend, *args, **kwargs)
            for task in tasks:
                runner._start(task)
            return tasks

        def describe(backend: Any, *args: Any, **kwargs: Any) -> Any:
            tasks = describe_tasks(backend, *args, **kwargs)
            for task in tasks:
                runner._refresh(task)
            return tasks

        def stop(backend: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            task = stop_task(backend, cluster_str, task_str, reason)
            runner._stop(task)
            return task

        replacements = {"run_task": run, "describe_tasks": describe, "stop_task": stop}
        for name, replacement in replacements.items():
            setattr(EC2ContainerServiceBackend, name, replacement)

    def uninstall(self) -> None:
        from moto.ecs.models import EC2ContainerServiceBackend  # noqa: PLC0415
        from moto.moto_api import state_manager  # noqa: PLC0415

        for name, original in self._originals.items():
            setattr(EC2ContainerServiceBackend, name, original)
        self._originals.clear()
        state_manager.unset_transition(TASK_MODEL)
        self.stop_all()

    # ------------------------------------------------------------------ control
    def task_arns(self) -> list[str]:
        with self._lock:
            return list(self._processes)

    def running(self) -> list[str]:
        """The tasks whose process still runs."""
        with self._lock:
            return [arn for arn, process in self._processes.items() if process.poll() is None]

    def kill(self, task_arn: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to a task's process: a crash, as far as ECS can tell."""
        with self._lock:
            process = self._processes[task_arn]
        if process.poll() is None:
            process.send_signal(sig)

    def wait(self, task_arn: str, timeout: float) -> int:
        with self._lock:
            process = self._processes[task_arn]
        return exit_code(process.wait(timeout))

    def stop_all(self) -> None:
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()

    # ------------------------------------------------------------------ moto's tasks
    def _spec_for(self, task: Any) -> TaskDefinitionSpec | None:
        # arn:...:task-definition/<family>:<revision>
        family = str(task.task_definition_arn).rsplit("/", 1)[-1].rsplit(":", 1)[0]
        return self._specs.get(family)

    def _start(self, task: Any) -> None:
        spec = self._spec_for(task)
        definition = str(task.task_definition_arn).rsplit("/", 1)[-1]
        if spec is None or spec.entry_point is None:
            self._stopped_without_running(
                task, f"CannotStartContainerError: {definition} has no local EntryPoint"
            )
            return
        container = spec.container()
        environment = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        environment |= self._environment | spec.environment()
        environment |= override_environment(task.overrides, str(container.get("Name", "")))
        if self._role_credentials is not None and spec.task_role_arn is not None:
            environment |= self._role_credentials(spec.task_role_arn, str(task.id))
        process = subprocess.Popen(
            [sys.executable, str(spec.entry_point)],
            env=environment,
            cwd=spec.entry_point.parent,
            stdin=subprocess.DEVNULL,
        )
        with self._lock:
            self._processes[task.task_arn] = process
        task.last_status = "RUNNING"
        task.containers[0].last_status = "RUNNING"
        logger.info("Started task %s (%s) as process %s", task.id, definition, process.pid)

    def _refresh(self, task: Any) -> None:
        with self._lock:
            process = self._processes.get(task.task_arn)
        if process is None:
            return
        returncode = process.poll()
        container = task.containers[0]
        if returncode is None:
            stopping = task.desired_status == "STOPPED"
            task.last_status = "DEACTIVATING" if stopping else "RUNNING"
            container.last_status = "RUNNING"
            return
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        container.last_status = "STOPPED"
        container.exitCode = exit_code(returncode)
        if not task.stopped_reason:
            task.stopped_reason = "Essential container in task exited"

    def _stop(self, task: Any) -> None:
        with self._lock:
            process = self._processes.get(task.task_arn)
        if process is None or process.poll() is not None:
            return
        spec = self._spec_for(task)
        assert spec is not None, "only tasks of a known definition have a process"
        timeout = int(spec.container().get("StopTimeout", DEFAULT_STOP_TIMEOUT_SECONDS))
        process.terminate()
        threading.Thread(
            target=_kill_after, args=(process, timeout), name=f"stop-{task.id}", daemon=True
        ).start()
        # Reported STOPPED once the process has exited, not before.
        self._refresh(task)

    @staticmethod
    def _stopped_without_running(task: Any, reason: str) -> None:
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = reason
        task.containers[0].last_status = "STOPPED"
        task.containers[0].exitCode = None


def _kill_after(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()


def override_environment(overrides: Mapping[str, Any] | None, container: str) -> dict[str, str]:
    """RunTask's environment overrides of `container` (camelCase, as moto keeps them)."""
    found: dict[str, str] = {}
    for override in (overrides or {}).get("containerOverrides") or []:
        if override.get("name") == container:
            for entry in override.get("environment") or []:
                found[str(entry["name"])] = str(entry["value"])
    return found
