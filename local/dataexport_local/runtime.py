"""The whole product on a laptop: PostgreSQL, moto's AWS from template.yaml, and the HTTP API.

    with LocalRuntime(seed_rows=20_000) as runtime:
        token = runtime.token("usr_acme_01", "org_acme")
        # POST {runtime.api_url}/v1/exports with "Authorization: Bearer {token}"

`api_url` is `http://127.0.0.1:<port>` (routes at `/v1/...`); `stage_url` adds the template's
stage (`/dev/v1/...`), as API Gateway's invoke URL has it. Both are served.

Only one LocalRuntime may be active per process: moto's state and its Lambda hook are
process-wide. Each function runs in worker processes of its own, with exactly its environment;
this process's environment only points its own clients at moto (and is restored on exit). A test
that calls the product's code directly takes a function's environment from
`function_environment` (or applies it with `as_function`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from dataexport_local.api_gateway import LocalApiGateway
from dataexport_local.aws import EnvironmentPatch, LocalAws
from dataexport_local.cfn_yaml import read_template_document
from dataexport_local.ecs import LocalTasks
from dataexport_local.iam_enforcement import Credentials
from dataexport_local.lambda_dispatch import Invocation
from dataexport_local.postgres import (
    LocalDatabase,
    client_tools_dir,
    database_from_environment,
    seed_demo_data,
)
from dataexport_local.process_clients import forget_clients
from dataexport_local.scheduler import Firing, LocalScheduler
from dataexport_local.template import (
    ACCOUNT_ID,
    DEFAULT_STACK_NAME,
    DEFAULT_TEMPLATE_PATH,
    REGION,
    StackTemplate,
    StateMachineSpec,
)
from dataexport_local.tokens import (
    DEFAULT_PERMISSIONS,
    DEFAULT_TTL_SECONDS,
    TOKEN_SECRET_LOGICAL_ID,
    local_signing_key,
    mint_token,
)

# The template parameter that names the application database's secret.
DATABASE_SECRET_PARAMETER: Final = "DatabaseSecretArn"  # noqa: S105 - a parameter name
# The backup task's database secret: pg_dump connects as the database's owner.
BACKUP_SECRET_PARAMETER: Final = "BackupDatabaseSecretArn"  # noqa: S105 - a parameter name
# Any image name turns the backup resources on; locally the task runs as a process instead.
LOCAL_BACKUP_IMAGE: Final = "dataexport-backup:local"
# What ECS tasks run in: a local VPC's ids stand in for the database's subnets and group.
NETWORK_PARAMETERS: Final = {
    "DatabaseSubnetIds": "subnets",
    "DatabaseSecurityGroupId": "security_group",
}
DEFAULT_STATE_MACHINE: Final = "ExportStateMachine"


class RuntimeAlreadyActive(RuntimeError):
    """A second LocalRuntime was started while one is active in this process."""


_active_lock = threading.Lock()
_active: list[LocalRuntime] = []


class LocalRuntime:
    """PostgreSQL + moto + the local API Gateway, composed; a context manager.

    parameters: template parameter overrides (e.g. {"ExportRetentionSeconds": "3"}).
    port: the API's port (0: any free port).
    database: the PostgreSQL to use; None means DATABASE_URL if set, else the embedded server in
        `<repo>/.local/pg`. A database passed in is started if needed but never stopped here.
    seed_rows: when given, create the demo schema and replace the usage logs with that many rows.
    environment: extra variables for every function's workers (e.g. DATASETS_DIR); names the
        template already sets are refused (use parameters).
    worker_setup_files: Python files each worker runs before it imports its handler (for tests
        that change a constant the product does not read from its configuration).
    scheduler: fire EventBridge rules and Scheduler schedules when they are due (False: only
        when `fire` is called).
    managed_database_secret: give the database's secret the shape of an RDS-managed one
        (username and password only) and its location as the DatabaseHost, DatabasePort and
        DatabaseName parameters, as a deployment on such a secret does.
    """

    def __init__(
        self,
        parameters: Mapping[str, str] | None = None,
        port: int = 0,
        database: LocalDatabase | None = None,
        seed_rows: int | None = None,
        *,
        environment: Mapping[str, str] | None = None,
        template_path: Path = DEFAULT_TEMPLATE_PATH,
        stack_name: str = DEFAULT_STACK_NAME,
        signing_key: str | None = None,
        scheduler: bool = True,
        worker_setup_files: Sequence[Path] = (),
        managed_database_secret: bool = False,
    ) -> None:
        self._parameters = dict(parameters or {})
        self._port = port
        self._given_database = database
        self._seed_rows = seed_rows
        self._environment = dict(environment or {})
        self._worker_setup_files = tuple(worker_setup_files)
        self._template_path = template_path
        self._stack_name = stack_name
        self.signing_key = signing_key or local_signing_key()
        self._stack = ExitStack()
        self._database: LocalDatabase | None = None
        self._aws: LocalAws | None = None
        self._gateway: LocalApiGateway | None = None
        self._run_scheduler = scheduler
        self._managed_database_secret = managed_database_secret
        self._scheduler: LocalScheduler | None = None
        self.seeded_rows: int | None = None
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> LocalRuntime:
        """Start the database, moto with the template's resources, and the API."""
        started = time.monotonic()
        with _active_lock:
            if _active:
                raise RuntimeAlreadyActive(
                    "A LocalRuntime is already active in this process (moto and its Lambda hook "
                    "are process-wide); close it before starting another"
                )
            _active.append(self)
        self._stack.callback(_active.remove, self)
        try:
            database = self._given_database or database_from_environment()
            database.start()
            if self._given_database is None:
                self._stack.callback(database.stop)
            self._database = database
            if self._seed_rows is not None:
                self.seeded_rows = seed_demo_data(database, self._seed_rows)
            declared = set(read_template_document(self._template_path).get("Parameters") or {})

            def declared_only(values: Mapping[str, str]) -> dict[str, str]:
                # A smaller template (the tests' stub) has no backups, nor their parameters.
                return {name: value for name, value in values.items() if name in declared}

            reader = database.reader_settings.as_secret()
            location: dict[str, str] = {}
            if self._managed_database_secret:
                location = {
                    "DatabaseHost": str(reader.pop("host")),
                    "DatabasePort": str(reader.pop("port")),
                    "DatabaseName": str(reader.pop("dbname")),
                }
            secrets = {
                DATABASE_SECRET_PARAMETER: json.dumps(reader),
                BACKUP_SECRET_PARAMETER: json.dumps(database.admin_settings.as_secret()),
            }
            tools = client_tools_dir()
            self._aws = self._stack.enter_context(
                LocalAws(
                    self._template_path,
                    parameters={
                        **declared_only({"BackupImageUri": LOCAL_BACKUP_IMAGE, **location}),
                        **self._parameters,
                    },
                    parameter_secrets=declared_only(secrets),
                    network_parameters=declared_only(NETWORK_PARAMETERS),
                    task_environment={"PG_BIN_DIR": tools} if tools else None,
                    secret_values={TOKEN_SECRET_LOGICAL_ID: self.signing_key},
                    environment=self._environment,
                    worker_setup_files=self._worker_setup_files,
                    stack_name=self._stack_name,
                )
            )
            self._gateway = self._stack.enter_context(
                LocalApiGateway(self._aws.template, self._aws.dispatcher, port=self._port)
            )
            self._scheduler = LocalScheduler(
                self._aws.client, self._aws.dispatcher.invoke, role_clients=self._aws.role_client
            )
            if self._run_scheduler:
                self._stack.enter_context(self._scheduler)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def close(self) -> None:
        """Stop the API, moto and (if it started it) the database; restore the environment."""
        self._gateway = None
        self._scheduler = None
        self._aws = None
        self._database = None
        self._stack.close()

    # ------------------------------------------------------------------ what tests and tools use

    @property
    def api_url(self) -> str:
        """`http://127.0.0.1:<port>`: routes are at `{api_url}/v1/...`."""
        return self._started_gateway.url

    @property
    def stage_url(self) -> str:
        """`http://127.0.0.1:<port>/<stage>`, shaped like API Gateway's invoke URL."""
        return self._started_gateway.stage_url

    @property
    def aws_endpoint(self) -> str:
        """The moto server's URL (also in AWS_ENDPOINT_URL while the runtime is active)."""
        return self._started_aws.endpoint_url

    @property
    def template(self) -> StackTemplate:
        """The resolved template, with the physical names of what was created."""
        return self._started_aws.template

    @property
    def database(self) -> LocalDatabase:
        """The PostgreSQL in use: `connect()` as superuser, `socket_dir`, `reader_settings`."""
        if self._database is None:
            raise RuntimeError("The LocalRuntime is not started")
        return self._database

    @property
    def bucket_name(self) -> str:
        """The template's S3 bucket (it declares exactly one)."""
        (bucket,) = self.template.buckets
        return bucket.name

    @property
    def table_name(self) -> str:
        """The template's DynamoDB table (it declares exactly one)."""
        (table,) = self.template.tables
        return table.name

    def state_machine(self, logical_id: str | None = None) -> StateMachineSpec:
        """A state machine of the template (the export state machine, or the only one, when
        no logical id is given)."""
        machines = self.template.state_machines
        if logical_id is None:
            if len(machines) == 1:
                return machines[0]
            logical_id = DEFAULT_STATE_MACHINE
        return next(machine for machine in machines if machine.logical_id == logical_id)

    def execution_arn(self, execution_name: str, state_machine: str | None = None) -> str:
        """The ARN of an execution by name (the export state machine names them by job id)."""
        machine = self.state_machine(state_machine)
        return f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:{machine.name}:{execution_name}"

    def wait_for_execution_end(
        self, execution_name: str, timeout: float = 120, state_machine: str | None = None
    ) -> str:
        """Poll until an execution no longer runs and return its status. A job's record can
        change a moment before its execution ends: the last state's Lambda writes it first."""
        sfn = self.boto3_client("stepfunctions")
        arn = self.execution_arn(execution_name, state_machine)
        deadline = time.monotonic() + timeout
        while (status := str(sfn.describe_execution(executionArn=arn)["status"])) == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_name} still running after {timeout} s")
            time.sleep(0.2)
        return status

    def token(
        self,
        sub: str,
        org: str,
        role: str = "member",
        permissions: Iterable[str] = DEFAULT_PERMISSIONS,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> str:
        """A bearer token the local authorizer accepts."""
        return mint_token(
            sub, org, role, permissions, ttl_seconds=ttl_seconds, signing_key=self.signing_key
        )

    @property
    def operator_credentials(self) -> Credentials:
        """The key the runtime's own clients sign with in moto (an IAM user allowed
        everything); functions, tasks and state machines sign as their own roles."""
        return self._started_aws.operator

    def boto3_client(self, service: str) -> Any:
        """A boto3 client on the moto server."""
        return self._started_aws.client(service)

    def invoke(self, function: str, event: Any) -> Invocation:
        """Invoke a function (logical id, name or ARN) in one of its workers, as Lambda would."""
        return self._started_aws.dispatcher.invoke(function, event)

    def function_environment(self, function: str) -> dict[str, str]:
        """Exactly what a worker of `function` (logical id, name or ARN) sees in os.environ."""
        return self._started_aws.dispatcher.environment(function)

    @contextmanager
    def as_function(self, function: str) -> Iterator[dict[str, str]]:
        """This process's os.environ as `function`'s workers have it, while the block runs: for
        tests that call the product's code directly, as that function would."""
        environment = self.function_environment(function)
        patch = EnvironmentPatch()
        try:
            patch.set(environment)
            # Clients made before would still sign as whoever made them.
            forget_clients()
            yield environment
        finally:
            patch.restore()
            forget_clients()

    def retire_workers(self) -> None:
        """Start every function afresh on its next invocation (new workers, empty caches), as
        Lambda does after a deployment or once an environment's caches would have run out."""
        self._started_aws.dispatcher.retire_workers()

    def worker_pids(self, function: str | None = None) -> list[int]:
        """The process ids of `function`'s workers (every function's when None)."""
        return self._started_aws.dispatcher.worker_pids(function)

    @property
    def scheduler(self) -> LocalScheduler:
        """What fires the template's rules and the schedules the API created."""
        if self._scheduler is None:
            raise RuntimeError("The LocalRuntime is not started")
        return self._scheduler

    def fire(self, name: str) -> Firing:
        """Run the EventBridge rule or Scheduler schedule `name` now (waits for its target)."""
        return self.scheduler.fire(name)

    @property
    def tasks(self) -> LocalTasks:
        """The ECS tasks RunTask started, as local processes."""
        return self._started_aws.tasks

    def is_running(self, function: str) -> bool:
        """Whether an invocation of `function` (logical id, name or ARN) is in progress."""
        return self._started_aws.dispatcher.is_running(function)

    @property
    def _started_aws(self) -> LocalAws:
        if self._aws is None:
            raise RuntimeError("The LocalRuntime is not started")
        return self._aws

    @property
    def _started_gateway(self) -> LocalApiGateway:
        if self._gateway is None:
            raise RuntimeError("The LocalRuntime is not started")
        return self._gateway
