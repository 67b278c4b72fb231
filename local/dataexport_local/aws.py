"""AWS for the local runtime: moto's server in this process, resources created from the template.

`LocalAws` starts a ThreadedMotoServer, points this process at it (AWS_ENDPOINT_URL, test
credentials, region, MOTO_PORT for moto's Step Functions interpreter), turns on real state machine
execution and Docker-less Lambda, and creates what template.yaml declares: DynamoDB tables, S3
buckets and their policies, Secrets Manager secrets, Lambda functions (dispatched to the real
handlers in workers), SES identities, state machines (DefinitionUri with DefinitionSubstitutions),
ECS clusters and task definitions (RunTask runs a task's entry point as a local process, see
ecs.py). Each function runs in worker processes of its own with exactly its template environment,
what Lambda sets and the few variables that reach moto (`sandbox_environment`); this process's
environment only points its own clients at moto. EventBridge rules (the Schedule events of functions
and state machines), Scheduler schedule groups and schedules are stored in moto, which does not fire
them: the local scheduler does.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import secrets
import socket
import string
import threading
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import boto3

from dataexport_local.cfn_yaml import TemplateError
from dataexport_local.ecs import LocalTasks
from dataexport_local.iam_enforcement import (
    Credentials,
    RoleSessions,
    bodiless_requests_signed_as_sent,
    create_operator,
    create_role,
    enforce_iam,
    presigned_urls_authorized,
    state_machine_credentials,
    stop_enforcing,
)
from dataexport_local.lambda_dispatch import LambdaDispatcher
from dataexport_local.lambda_sandbox import SandboxSettings
from dataexport_local.sam_package import transform_template
from dataexport_local.template import (
    DEFAULT_STACK_NAME,
    DEFAULT_TEMPLATE_PATH,
    REGION,
    BucketSpec,
    PhysicalResource,
    RoleSpec,
    StackTemplate,
    TableSpec,
    TaskDefinitionSpec,
    plan_physical_resources,
    resolve_template,
)

logger = logging.getLogger(__name__)

LOCALHOST: Final = "127.0.0.1"
TEST_ACCESS_KEY_ID: Final = "testing"
TEST_SECRET_ACCESS_KEY: Final = "testing"  # noqa: S105 - moto's conventional dummy credential
MOTO_CONFIG: Final[dict[str, dict[str, bool]]] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    # Execution roles attach AWS managed policies (AWSLambdaBasicExecutionRole, ...).
    "iam": {"load_aws_managed_policies": True},
}
# Variables that could send a call to a real AWS account while the runtime is active.
_CLEARED_VARIABLES: Final = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


def moto_client(endpoint_url: str, service: str) -> Any:
    """A boto3 client for `service` on the moto server at `endpoint_url`, signed with the
    environment's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a running runtime's operator key,
    which `serve` prints), else moto's test key (refused once a runtime enforces IAM)."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY),
    )


class LocalAwsError(RuntimeError):
    """The local AWS cannot be started as asked."""


class EnvironmentPatch:
    """Changes to os.environ that can be undone exactly (values set and removed, restored)."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def remove(self, *names: str) -> None:
        for name in names:
            self._saved.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


class _ProcessSlot:
    """Only one LocalAws per process: the environment and moto's state are process-wide."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: object | None = None
        # The moto port is kept for the process: clients cached by code that ran against a
        # previous LocalAws (boto3, pynamodb, Powertools) still reach the current one.
        self.last_port: int | None = None

    def acquire(self, owner: object) -> None:
        with self._lock:
            if self._owner is not None:
                raise LocalAwsError(
                    "A LocalRuntime (LocalAws) is already active in this process; moto and its "
                    "hooks are process-wide, so stop it before starting another"
                )
            self._owner = owner

    def release(self, owner: object) -> None:
        with self._lock:
            if self._owner is owner:
                self._owner = None


_slot = _ProcessSlot()


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _port_is_free(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


@contextmanager
def _moto_user_config() -> Iterator[None]:
    """moto's process-wide config set for the runtime, and given back afterwards.

    The server runs in this process, so this is the dict `/moto-api/config` would change; setting
    it here also lets us restore what it was.
    """
    from moto.core.config import default_user_config  # noqa: PLC0415 - moto is heavy

    config: dict[str, Any] = default_user_config  # type: ignore[assignment]
    saved = {key: config.get(key) for key in MOTO_CONFIG}
    for key, wanted in MOTO_CONFIG.items():
        config[key] = dict(wanted)
    try:
        yield
    finally:
        for key, previous in saved.items():
            if previous is None:
                config.pop(key, None)
            else:
                config[key] = previous


S3_KEY_BUFFER_BYTES = 1024 * 1024 * 1024

_DYNAMODB_LOCK = threading.Lock()


@contextmanager
def _serialized_dynamodb() -> Iterator[None]:
    """Run moto's DynamoDB actions one at a time.

    moto's DynamoDB backend is not thread-safe (a query can iterate an item while a concurrent
    update changes it), and the local runtime serves many requests at once. DynamoDB actions
    never call back into Lambda, so one lock cannot deadlock with the handlers' invocations.
    """
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 - moto is heavy

    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


@contextmanager
def _ecs_integration_in_step_functions_casing() -> Iterator[None]:
    """Translate the `ecs:runTask` integration's PascalCase parameters (Cluster,
    TaskDefinition, ...) to the ECS API's names, and its answer back, as Step Functions does.

    moto's interpreter leaves both translations out (they are stubs), so an ASL written for AWS
    would call ECS with names it does not know. The shapes come from botocore's ECS model.
    """
    from botocore.loaders import create_loader  # noqa: PLC0415
    from botocore.model import ServiceModel  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: PLC0415
        state_task_service_ecs,
    )

    service_class = state_task_service_ecs.StateTaskServiceEcs
    # From botocore's data files, not a session: no profile or configuration is read.
    model = ServiceModel(create_loader().load_service_model("ecs", "service-2"), "ecs")

    def operation(service: Any, action: str | None) -> Any:
        snake = service._get_boto_service_action(service_action_name=action)
        return model.operation_model("".join(part.capitalize() for part in snake.split("_")))

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: Any = None,
        service_action_name: str | None = None,
    ) -> None:
        shape = operation(self, service_action_name).input_shape
        if shape is not None:
            self._to_boto_request(parameters, shape)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: Any = None,
        service_action_name: str | None = None,
    ) -> None:
        shape = operation(self, service_action_name).output_shape
        if shape is not None:
            self._from_boto_response(response, shape)

    replacements = {
        "_normalise_parameters": normalise_parameters,
        "_normalise_response": normalise_response,
    }
    originals = {name: getattr(service_class, name) for name in replacements}
    for name, replacement in replacements.items():
        setattr(service_class, name, replacement)
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(service_class, name, original)


@contextmanager
def _schedule_rules_match_no_events() -> Iterator[None]:
    """Let a rule with only a schedule expression ignore the events put on its bus.

    In AWS such a rule runs on its clock and matches no event. moto matches every event put on
    the bus against every rule, and fails the whole PutEvents on a rule without a pattern.
    """
    from moto.events.models import Rule  # noqa: PLC0415 - moto is heavy

    original = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
        if self.scheduled_expression and not self.event_pattern.dump():
            return
        original(self, original_event, transform_input)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
    try:
        yield
    finally:
        Rule.send_to_targets = original  # type: ignore[method-assign]


@contextmanager
def _stopped_executions_stay_aborted() -> Iterator[None]:
    """Keep a stopped execution ABORTED when a task that was running at the stop fails later.

    In AWS, StopExecution ends the execution at once and whatever a running task returns or
    raises afterwards is discarded. moto's interpreter lets the task finish (an in-process
    handler cannot be killed), and then lets its error replace the stop, so the execution would
    end FAILED. Ignoring errors once stopped gives the outcome AWS gives.
    """
    from moto.stepfunctions.parser.asl.eval.environment import (  # noqa: PLC0415 - moto is heavy
        Environment,
    )
    from moto.stepfunctions.parser.asl.eval.program_state import (  # noqa: PLC0415
        ProgramStopped,
    )

    original = Environment.set_error

    def set_error(self: Environment, error: Any) -> None:
        if isinstance(self.program_state(), ProgramStopped):
            return
        original(self, error)

    Environment.set_error = set_error  # type: ignore[method-assign]
    try:
        yield
    finally:
        Environment.set_error = original  # type: ignore[method-assign]


@contextmanager
def _running_full_object_checksums() -> Iterator[None]:
    """Let moto compute a multipart upload's full-object CRC as the parts go by.

    Without awscrt, moto's full-object checksum (CRC64NVME by default) is a CRC32, which it
    computes over a second copy of the whole object it first concatenates: for a 400 MB export
    a few hundred milliseconds, in series at the end of every Format step. A running CRC32 gives
    the same value without the copy.
    """
    from moto.core.compat import HAS_CRT  # noqa: PLC0415 - moto is heavy
    from moto.s3 import models  # noqa: PLC0415

    builder = models.MultipartChecksumBuilder
    original_add, original_build = builder.addPart, builder.build

    def runs_crc32(self: Any) -> bool:
        algorithm = self.checksum_algorithm
        return self.checksum_type == "FULL_OBJECT" and (
            algorithm == "CRC32" or (algorithm == "CRC64NVME" and not HAS_CRT)
        )

    def add_part(self: Any, part: bytes) -> None:
        if not runs_crc32(self):
            original_add(self, part)
            return
        self.running_crc32 = binascii.crc32(part, getattr(self, "running_crc32", 0))
        self.part_count += 1

    def build(self: Any) -> Any:
        if not runs_crc32(self):
            return original_build(self)
        crc = getattr(self, "running_crc32", 0).to_bytes(4, "big")
        return self.checksum_type, base64.b64encode(crc).decode(), 1

    builder.addPart, builder.build = add_part, build  # type: ignore[method-assign]
    try:
        yield
    finally:
        builder.addPart, builder.build = original_add, original_build  # type: ignore[method-assign]


class LocalAws:
    """moto's AWS with the template's resources; each function's handler in workers of its own.

    Use as a context manager, or call `start()` and `close()`. `parameter_secrets` creates a
    secret per named parameter (value: its SecretString) and passes the secret's ARN as that
    parameter (e.g. DatabaseSecretArn); `secret_values` gives template secrets a known value by
    logical id (e.g. the token signing key); other secrets get their SecretString or a random one.
    `network_parameters` names parameters to fill with a local VPC's ids ("subnets" or
    "security_group"), unless `parameters` gives them: what an ECS task's awsvpc network needs.
    `task_environment` is added to the environment of every ECS task process. `environment` is
    added to every function's sandbox; `worker_setup_files` are run by each worker before it
    imports its handler.
    """

    def __init__(
        self,
        template_path: Path = DEFAULT_TEMPLATE_PATH,
        *,
        parameters: Mapping[str, str] | None = None,
        parameter_secrets: Mapping[str, str] | None = None,
        secret_values: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        stack_name: str = DEFAULT_STACK_NAME,
        port: int = 0,
        network_parameters: Mapping[str, str] | None = None,
        task_environment: Mapping[str, str] | None = None,
        worker_setup_files: Sequence[Path] = (),
    ) -> None:
        self.template_path = template_path.resolve()
        self._network_parameters = dict(network_parameters or {})
        self._task_environment = dict(task_environment or {})
        self._tasks: LocalTasks | None = None
        self.stack_name = stack_name
        self._parameters = dict(parameters or {})
        self._parameter_secrets = dict(parameter_secrets or {})
        self._secret_values = dict(secret_values or {})
        self._extra_environment = dict(environment or {})
        self._worker_setup_files = tuple(worker_setup_files)
        self._requested_port = port
        self._environment = EnvironmentPatch()
        self._resources = ExitStack()
        self._template: StackTemplate | None = None
        self._dispatcher: LambdaDispatcher | None = None
        self._operator: Credentials | None = None
        self._sessions: RoleSessions | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> LocalAws:
        """Start moto, create the template's resources and set the process environment."""
        _slot.acquire(self)
        # Undone in reverse order by close().
        self._resources.callback(_slot.release, self)
        self._resources.callback(self._environment.restore)
        try:
            self._start_server()
            self._reset_moto()
            # From here on every client of the runtime signs as the operator, every function,
            # task and state machine as a session of its own role.
            self._operator = create_operator(
                self.endpoint_url, Credentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
            )
            self._sessions = RoleSessions(self.endpoint_url, self._operator, "local")
            self._environment.set(self._client_environment())
            template = self._create_resources()
            self._template = template
            enforce_iam(self.endpoint_url)
            self._resources.callback(stop_enforcing, self.endpoint_url)
            dispatcher = LambdaDispatcher(
                template.functions,
                SandboxSettings(
                    local_environment=self.sandbox_environment(),
                    extra_environment=self._function_extra_environment(template),
                    setup_files=self._worker_setup_files,
                    role_credentials=self.role_environment,
                ),
            )
            self._resources.callback(dispatcher.close)
            dispatcher.install()
            self._resources.callback(dispatcher.uninstall)
            self._dispatcher = dispatcher
            tasks = LocalTasks(
                template.task_definitions,
                self._task_process_environment(),
                role_credentials=self.role_environment,
            )
            tasks.install()
            self._resources.callback(tasks.uninstall)
            self._tasks = tasks
            self._resources.callback(self.stop_running_executions)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop running executions, the hook and the server; restore the environment."""
        self._resources.close()

    # ------------------------------------------------------------------ accessors

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def template(self) -> StackTemplate:
        if self._template is None:
            raise LocalAwsError("LocalAws is not started")
        return self._template

    @property
    def tasks(self) -> LocalTasks:
        if self._tasks is None:
            raise LocalAwsError("LocalAws is not started")
        return self._tasks

    @property
    def dispatcher(self) -> LambdaDispatcher:
        if self._dispatcher is None:
            raise LocalAwsError("LocalAws is not started")
        return self._dispatcher

    @property
    def operator(self) -> Credentials:
        """The runtime's own identity in moto: an IAM user allowed everything."""
        if self._operator is None:
            raise LocalAwsError("LocalAws is not started")
        return self._operator

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on the moto server, signed as the operator."""
        return self.operator.client(self.endpoint_url, service)

    def role_session(self, role_arn: str, session_name: str) -> Credentials:
        """Temporary credentials of `role_arn`, assumed once per role and session name."""
        if self._sessions is None:
            raise LocalAwsError("LocalAws is not started")
        return self._sessions(role_arn, session_name)

    def role_environment(self, role_arn: str, session_name: str) -> dict[str, str]:
        """The AWS_* credential variables of a session of `role_arn`, as Lambda and ECS give a
        function or task of that role."""
        return self.role_session(role_arn, session_name).environment()

    def role_client(self, role_arn: str, service: str) -> Any:
        """A client signed as `role_arn`: what EventBridge and Scheduler call targets with."""
        session = self.role_session(role_arn, "events")
        return session.client(self.endpoint_url, service)

    def stop_running_executions(self) -> int:
        """Stop every running execution (a Wait of days would otherwise outlive the runtime)."""
        sfn = self.client("stepfunctions")
        stopped = 0
        for machine in self.template.state_machines:
            paginator = sfn.get_paginator("list_executions")
            for page in paginator.paginate(stateMachineArn=machine.arn, statusFilter="RUNNING"):
                for execution in page["executions"]:
                    sfn.stop_execution(executionArn=execution["executionArn"])
                    stopped += 1
        return stopped

    # ------------------------------------------------------------------ moto server

    def _start_server(self) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - moto is heavy

        port = self._requested_port
        if not port:
            reused = _slot.last_port
            port = reused if reused and _port_is_free(reused) else free_port()
        elif not _port_is_free(port):
            raise LocalAwsError(f"Port {port} is in use; cannot start the moto server there")
        # werkzeug logs every request of the moto server; keep the console for the handlers.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._resources.enter_context(_moto_user_config())
        self._resources.enter_context(_serialized_dynamodb())
        self._resources.enter_context(_stopped_executions_stay_aborted())
        self._resources.enter_context(_schedule_rules_match_no_events())
        self._resources.enter_context(_running_full_object_checksums())
        self._resources.enter_context(_ecs_integration_in_step_functions_casing())
        self._resources.enter_context(presigned_urls_authorized())
        self._resources.enter_context(bodiless_requests_signed_as_sent())
        self._resources.enter_context(
            state_machine_credentials(lambda role_arn: self.role_session(role_arn, "states"))
        )
        server = ThreadedMotoServer(ip_address=LOCALHOST, port=port, verbose=False)
        server.start()
        self._resources.callback(server.stop)
        self.port = port
        _slot.last_port = port
        self._environment.remove(*_CLEARED_VARIABLES)
        self._environment.set(
            {
                **self._client_environment(),
                # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
                "MOTO_PORT": str(port),
                # moto keeps each object in a spooled temporary file; by default anything over
                # 5 MiB (every multipart part) goes to disk and back. Exports' parts, and staging
                # objects of up to 1 GiB, stay in memory.
                "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(S3_KEY_BUFFER_BYTES),
            }
        )

    def _reset_moto(self) -> None:
        """Forget resources of an earlier LocalAws of this process (moto's state is global),
        and serve unchecked until the operator exists (the reset keeps enforcement on)."""
        stop_enforcing(self.endpoint_url)
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310 - our own http endpoint
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()

    # ------------------------------------------------------------------ resources

    def _create_resources(self) -> StackTemplate:
        parameters = dict(self._parameters)
        clash = sorted(set(parameters) & set(self._parameter_secrets))
        if clash:
            raise LocalAwsError(f"Parameter(s) {', '.join(clash)} are set by the local runtime")
        for parameter, secret_string in self._parameter_secrets.items():
            parameters[parameter] = self._create_secret(
                f"{self.stack_name}-{parameter}", secret_string, f"Local value of {parameter}"
            )
        wanted = {
            name: kind for name, kind in self._network_parameters.items() if name not in parameters
        }
        if wanted:
            parameters |= self._create_network(wanted)

        transformed = transform_template(self.template_path).transformed
        physical = plan_physical_resources(transformed, self.stack_name)
        planned = resolve_template(
            self.template_path, parameters, physical=physical, stack_name=self.stack_name
        )
        unknown = sorted(
            set(self._secret_values) - {secret.logical_id for secret in planned.secrets}
        )
        if unknown:
            raise TemplateError(f"The template has no secret(s) {', '.join(unknown)}")
        for secret in planned.secrets:
            arn = self._create_secret(
                secret.name,
                self._secret_value(secret.logical_id, secret.properties),
                str(secret.properties.get("Description", secret.logical_id)),
            )
            physical[secret.logical_id] = PhysicalResource(arn, {"Id": arn}, secret.name)

        template = resolve_template(
            self.template_path, parameters, physical=physical, stack_name=self.stack_name
        )
        for table in template.tables:
            self._create_table(table)
        for bucket in template.buckets:
            self._create_bucket(bucket)
        for identity in template.email_identities:
            self._create_email_identity(identity)
        s3 = self.client("s3")
        for policy in template.bucket_policies:
            document = enforceable_policy(policy.policy_document)
            if document["Statement"]:
                s3.put_bucket_policy(Bucket=policy.bucket, Policy=json.dumps(document))
        for role in template.roles:
            self._create_role(role)
        self._create_functions(template)
        sfn = self.client("stepfunctions")
        for machine in template.state_machines:
            sfn.create_state_machine(
                name=machine.name,
                definition=json.dumps(machine.definition()),
                roleArn=machine.role_arn,
                type=machine.type,
            )
        scheduler = self.client("scheduler")
        for group in template.schedule_groups:
            scheduler.create_schedule_group(Name=group)
        self._create_clock_events(template)
        ecs = self.client("ecs")
        for cluster in template.ecs_clusters:
            ecs.create_cluster(clusterName=cluster)
        for task_definition in template.task_definitions:
            ecs.register_task_definition(**register_task_definition_request(task_definition))
        logs = self.client("logs")
        for log_group in template.log_groups:
            logs.create_log_group(logGroupName=log_group)
        return template

    def _create_network(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """A VPC with one subnet and one security group, their ids for the `wanted` parameters."""
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # As a VPC for Fargate tasks usually is (moto's task ENIs also need the DNS names).
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        ids = {
            "subnets": ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"],
            "security_group": ec2.create_security_group(
                GroupName=f"{self.stack_name}-local", Description="Local runtime", VpcId=vpc
            )["GroupId"],
        }
        unknown = sorted(set(wanted.values()) - set(ids))
        if unknown:
            raise LocalAwsError(f"Unknown network parameter kind(s): {', '.join(unknown)}")
        return {name: ids[kind] for name, kind in wanted.items()}

    def _client_environment(self) -> dict[str, str]:
        """What sends an AWS client, in this process or a task's, to this moto."""
        credentials = self._operator or Credentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **credentials.environment(),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def _task_process_environment(self) -> dict[str, str]:
        """What an ECS task process gets besides its container's environment and its task
        role's credentials."""
        # Fargate sets the region; the credentials come from the task role.
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **self._task_environment,
        }

    def _create_clock_events(self, template: StackTemplate) -> None:
        """EventBridge rules and Scheduler schedules: stored in moto, fired by the local
        scheduler."""
        events = self.client("events")
        for rule in template.rules:
            request: dict[str, Any] = {
                "Name": rule.name,
                "State": "ENABLED" if rule.enabled else "DISABLED",
                "Description": rule.description,
            }
            if rule.schedule_expression is not None:
                request["ScheduleExpression"] = rule.schedule_expression
            if rule.event_pattern is not None:
                request["EventPattern"] = json.dumps(rule.event_pattern)
            events.put_rule(**request)
            targets = []
            for target in rule.targets:
                entry = {"Id": target.id, "Arn": target.arn}
                if target.role_arn is not None:
                    entry["RoleArn"] = target.role_arn
                if target.input is not None:
                    entry["Input"] = target.input
                targets.append(entry)
            if targets:
                events.put_targets(Rule=rule.name, Targets=targets)
        scheduler = self.client("scheduler")
        for schedule in template.schedules:
            scheduler.create_schedule(
                Name=schedule.name,
                GroupName=schedule.group,
                ScheduleExpression=schedule.expression,
                ScheduleExpressionTimezone=schedule.timezone,
                FlexibleTimeWindow={"Mode": "OFF"},
                State="ENABLED" if schedule.enabled else "DISABLED",
                Target=dict(schedule.target),
            )

    def _secret_value(self, logical_id: str, properties: Mapping[str, Any]) -> str:
        if logical_id in self._secret_values:
            return self._secret_values[logical_id]
        if "SecretString" in properties:
            return str(properties["SecretString"])
        generate = properties.get("GenerateSecretString") or {}
        template_string = generate.get("SecretStringTemplate")
        # Letters and digits satisfy every Exclude* option CloudFormation offers.
        alphabet = string.ascii_letters + string.digits
        length = int(generate.get("PasswordLength", 32))
        generated = "".join(secrets.choice(alphabet) for _ in range(length))
        if template_string and generate.get("GenerateStringKey"):
            value = json.loads(str(template_string))
            value[str(generate["GenerateStringKey"])] = generated
            return json.dumps(value)
        return generated

    def _create_secret(self, name: str, secret_string: str, description: str) -> str:
        created = self.client("secretsmanager").create_secret(
            Name=name, SecretString=secret_string, Description=description
        )
        return str(created["ARN"])

    def _create_table(self, table: TableSpec) -> None:
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**create_table_request(table))
        ttl = table.properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={
                    "Enabled": bool(ttl.get("Enabled", False)),
                    "AttributeName": str(ttl["AttributeName"]),
                },
            )
        recovery = table.properties.get("PointInTimeRecoverySpecification")
        if recovery:
            dynamodb.update_continuous_backups(
                TableName=table.name,
                PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": bool(recovery.get("PointInTimeRecoveryEnabled"))
                },
            )

    def _create_bucket(self, bucket: BucketSpec) -> None:
        s3 = self.client("s3")
        props = bucket.properties
        s3.create_bucket(Bucket=bucket.name)
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=bucket.name,
                PublicAccessBlockConfiguration=dict(props["PublicAccessBlockConfiguration"]),
            )
        encryption = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
        if encryption:
            s3.put_bucket_encryption(
                Bucket=bucket.name,
                ServerSideEncryptionConfiguration={
                    "Rules": [encryption_rule(rule) for rule in encryption]
                },
            )
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(
                Bucket=bucket.name, OwnershipControls=dict(props["OwnershipControls"])
            )
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=bucket.name,
                VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
            )
        rules = (props.get("LifecycleConfiguration") or {}).get("Rules")
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket.name,
                LifecycleConfiguration={"Rules": [lifecycle_rule(rule) for rule in rules]},
            )
        cors = (props.get("CorsConfiguration") or {}).get("CorsRules")
        if cors:
            s3.put_bucket_cors(
                Bucket=bucket.name,
                CORSConfiguration={"CORSRules": [cors_rule(rule) for rule in cors]},
            )
        if props.get("Tags"):
            s3.put_bucket_tagging(Bucket=bucket.name, Tagging={"TagSet": list(props["Tags"])})

    def _create_email_identity(self, identity: str) -> None:
        """An SES identity as the template declares it (moto verifies it at once)."""
        ses = self.client("ses")
        if "@" in identity:
            ses.verify_email_identity(EmailAddress=identity)
        else:
            ses.verify_domain_identity(Domain=identity)

    def _create_role(self, role: RoleSpec) -> None:
        """An IAM role in the form moto enforces, assumable by the operator."""
        create_role(
            self.endpoint_url,
            self.operator,
            role.name,
            role.trust_policy,
            inline_policies=role.inline_policies,
            managed_arns=role.managed_policy_arns,
            max_session_seconds=role.max_session_seconds,
        )

    def _create_functions(self, template: StackTemplate) -> None:
        lambda_client = self.client("lambda")
        code = _placeholder_zip()
        for function in template.functions:
            lambda_client.create_function(
                FunctionName=function.name,
                Runtime=function.runtime,
                Role=function.role_arn,
                Handler=function.handler,
                Code={"ZipFile": code},
                Timeout=function.timeout_seconds,
                MemorySize=function.memory_mb,
                Environment={"Variables": dict(function.environment)},
                Description=f"{function.logical_id} (runs in local worker processes)",
            )

    def sandbox_environment(self) -> dict[str, str]:
        """What the local runtime adds to every function's sandbox besides its role's
        credentials: only the moto endpoint, where AWS's service endpoints would be."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url}

    def _function_extra_environment(self, template: StackTemplate) -> dict[str, str]:
        """The caller's extra variables, refused when a function's template entry sets them."""
        clash = sorted(
            {
                name
                for function in template.functions
                for name in self._extra_environment
                if name in function.environment
            }
        )
        if clash:
            raise LocalAwsError(
                f"Environment variable(s) {', '.join(clash)} come from the template; "
                "change them through template parameters instead"
            )
        return dict(self._extra_environment)


def register_task_definition_request(task_definition: TaskDefinitionSpec) -> dict[str, Any]:
    """ECS RegisterTaskDefinition arguments from an AWS::ECS::TaskDefinition's properties
    (CloudFormation's PascalCase keys are the API's camelCase ones)."""
    request = _camel_case_keys(dict(task_definition.properties))
    request["family"] = task_definition.family
    # moto sizes a task from its containers' memory; Fargate lets the task's stand for them.
    for container in request.get("containerDefinitions") or []:
        if "memory" not in container and "memory" in request:
            container["memory"] = int(request["memory"])
    return dict(request)


def _camel_case_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            (key[:1].lower() + key[1:] if isinstance(key, str) else key): (
                # Log driver options are the driver's own names (awslogs-group, ...).
                item if key == "Options" else _camel_case_keys(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_camel_case_keys(item) for item in value]
    return value


def create_table_request(table: TableSpec) -> dict[str, Any]:
    """DynamoDB CreateTable arguments from an AWS::DynamoDB::Table's properties."""
    props = table.properties
    request: dict[str, Any] = {
        "TableName": table.name,
        "AttributeDefinitions": list(props["AttributeDefinitions"]),
        "KeySchema": list(props["KeySchema"]),
        "BillingMode": str(props.get("BillingMode", "PROVISIONED")),
    }
    for key in ("ProvisionedThroughput", "TableClass", "DeletionProtectionEnabled"):
        if key in props:
            request[key] = props[key]
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            request[key] = [
                {
                    name: value
                    for name, value in index.items()
                    if name != "ContributorInsightsSpecification"
                }
                for index in props[key]
            ]
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    sse = props.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {
            "Enabled": bool(sse.get("SSEEnabled", False)),
            **{key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse},
        }
    if props.get("Tags"):
        request["Tags"] = list(props["Tags"])
    return request


def enforceable_policy(document: Mapping[str, Any]) -> dict[str, Any]:
    """The bucket policy without the statements that have a Condition.

    moto ignores conditions, so a conditional Deny (e.g. aws:SecureTransport false, which every
    local plain-HTTP request would match anyway) would deny everything; those statements are
    left out locally and logged.
    """
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = [statement for statement in statements if "Condition" not in statement]
    for statement in statements:
        if "Condition" in statement:
            logger.info("Bucket policy statement %s is not applied locally", statement.get("Sid"))
    return {**document, "Statement": kept}


def lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """An S3 API lifecycle rule from CloudFormation's shape of it."""
    converted: dict[str, Any] = {"Status": rule["Status"]}
    if "Id" in rule:
        converted["ID"] = rule["Id"]
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        # A Ref to a Number parameter resolves to text, as in CloudFormation.
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpirationDate" in rule:
        expiration["Date"] = rule["ExpirationDate"]
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = rule["ExpiredObjectDeleteMarker"]
    if expiration:
        converted["Expiration"] = expiration
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = dict(rule["AbortIncompleteMultipartUpload"])
    if "NoncurrentVersionExpirationInDays" in rule:
        converted["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]
        }
    ignored = set(rule) - {
        "Id",
        "Status",
        "Prefix",
        "ExpirationInDays",
        "ExpirationDate",
        "ExpiredObjectDeleteMarker",
        "AbortIncompleteMultipartUpload",
        "NoncurrentVersionExpirationInDays",
    }
    if ignored:
        logger.info("Lifecycle rule %s: %s not applied locally", rule.get("Id"), sorted(ignored))
    return converted


def encryption_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """An S3 API default-encryption rule from CloudFormation's shape of it."""
    renamed = {"ServerSideEncryptionByDefault": "ApplyServerSideEncryptionByDefault"}
    return {renamed.get(key, key): value for key, value in rule.items()}


def cors_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """An S3 API CORS rule from CloudFormation's shape of it."""
    renamed = {"Id": "ID", "MaxAge": "MaxAgeSeconds"}
    return {renamed.get(key, key): value for key, value in rule.items()}


def _placeholder_zip() -> bytes:
    """Code for moto's create_function; the dispatcher runs the real handler instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "app.py", "def lambda_handler(event, context):\n    raise NotImplementedError\n"
        )
    return buffer.getvalue()
