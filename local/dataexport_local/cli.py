"""`dataexport-local`: serve the product locally, seed demo data, mint tokens, run the demo.

    dataexport-local serve [--port 3000] [--seed-rows N] [--parameter Key=Value ...]
    dataexport-local seed [--rows 20000]
    dataexport-local token --sub usr_acme_01 --org org_acme [--role member] [--ttl 3600]
    dataexport-local demo [--rows 20000] [--out exports/<file>]
    dataexport-local audit verify --org org_acme [--api-url http://127.0.0.1:3000/v1] [--json]
    dataexport-local deploy-check --sam .tools/sam/bin/sam --checkov .tools/checkov/bin/checkov

Tokens are signed with LOCAL_TOKEN_SECRET, or the documented development key when it is unset,
so a token printed by `token` works against a `serve` running in another terminal; `audit verify`
asks a running `serve` (the audit table lives in its moto; found at $PORT, or the URL `serve`
printed) with an operator token signed the same way, and exits 1 when the tenant's chain is
broken, 2 when it could not ask. `serve` refuses to start on a port already in use.
`DATABASE_URL` selects your own PostgreSQL instead of the embedded one.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Final
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from dataexport_local.api_gateway import LOCALHOST
from dataexport_local.aws import moto_client
from dataexport_local.lambda_dispatch import Invocation
from dataexport_local.postgres import (
    DEFAULT_DATA_DIR,
    LocalDatabase,
    database_from_environment,
    has_demo_data,
    seed_demo_data,
)
from dataexport_local.runtime import LocalRuntime
from dataexport_local.scheduler import LocalScheduler
from dataexport_local.tokens import DEFAULT_TTL_SECONDS, mint_token

DEFAULT_SERVE_PORT: Final = 3000
DEFAULT_SEED_ROWS: Final = 20_000
DEMO_DEADLINE_SECONDS: Final = 180.0
DEMO_POLL_SECONDS: Final = 0.25
DEMO_EXPORTS_DIR: Final = Path("exports")
DEMO_STATUS_CODE_AT_LEAST: Final = 400
DEMO_DAYS: Final = 30
PORT_IN_USE_STATUS: Final = 1
SERVE_FUNCTION_LOG_LEVEL: Final = "WARNING"


class DemoFailed(Exception):
    """A step of the demo did not do what it should; the message says which and why."""


# ---------------------------------------------------------------------------- arguments


def _parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected Key=Value, got {text!r}")
    return name, value


def _permissions(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command line of `dataexport-local`."""
    parser = argparse.ArgumentParser(
        prog="dataexport-local",
        description="dataexport on this machine: moto for AWS, embedded PostgreSQL, local API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def database_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help=f"embedded PostgreSQL data directory (default {DEFAULT_DATA_DIR}); "
            "ignored when DATABASE_URL is set",
        )

    serve = commands.add_parser("serve", help="run the API locally until Ctrl-C")
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or DEFAULT_SERVE_PORT),
        help="API port (default: $PORT or 3000)",
    )
    serve.add_argument(
        "--seed-rows",
        type=int,
        default=None,
        help="replace the demo usage logs with N rows first "
        f"(default: seed {DEFAULT_SEED_ROWS} only if the database has no demo data)",
    )
    serve.add_argument(
        "--parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="Key=Value",
        help="template parameter override, e.g. ExportsPerHour=1000 or LogLevel=INFO for the "
        "functions' own logs (default WARNING) (repeatable)",
    )
    database_options(serve)

    seed = commands.add_parser("seed", help="create the demo schema and seed usage logs")
    seed.add_argument("--rows", type=int, default=DEFAULT_SEED_ROWS)
    database_options(seed)

    token = commands.add_parser("token", help="print a bearer token for the local authorizer")
    token.add_argument("--sub", required=True, help="user id (the token's subject)")
    token.add_argument("--org", required=True, help="tenant (organisation) id")
    token.add_argument("--role", default="member", choices=["member", "admin", "operator"])
    token.add_argument(
        "--permissions",
        type=_permissions,
        default=["DATA_EXPORT"],
        help="comma-separated permissions (default DATA_EXPORT; '' for none)",
    )
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="lifetime in seconds")

    gate = commands.add_parser(
        "deploy-check",
        help="check what `sam package` would upload, as AWS would (make deploy-check)",
    )
    gate.add_argument("--sam", type=Path, required=True, help="the SAM CLI executable")
    gate.add_argument("--checkov", type=Path, required=True, help="the checkov executable")
    gate.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="the SAM template to build"
    )

    demo = commands.add_parser("demo", help="run one real export end to end and check it")
    demo.add_argument("--rows", type=int, default=DEFAULT_SEED_ROWS, help="usage logs to seed")
    demo.add_argument("--out", type=Path, default=None, help="where to write the file")
    demo.add_argument("--port", type=int, default=0, help="API port (default: any free port)")
    demo.add_argument("--timeout", type=float, default=DEMO_DEADLINE_SECONDS)
    database_options(demo)

    smoke = commands.add_parser(
        "smoke", help="run one export end to end against a deployed stack (or a local one)"
    )
    smoke.add_argument(
        "--api-url", required=True, help="the stack's ApiUrl output (with or without /v1)"
    )
    smoke.add_argument(
        "--token", default=os.environ.get("TOKEN"), help="a bearer token (default: $TOKEN)"
    )
    smoke.add_argument("--dataset", default=None, help="default: the first dataset listed")
    smoke.add_argument("--timeout", type=float, default=DEMO_DEADLINE_SECONDS)

    audit_parser = commands.add_parser("audit", help="the audit trail of a running local API")
    audit_commands = audit_parser.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="verify a tenant's audit chain (exit 1 if it is broken)"
    )
    verify.add_argument("--org", required=True, help="tenant (organisation) id")
    verify.add_argument(
        "--api-url",
        default=f"http://{LOCALHOST}:{os.environ.get('PORT') or DEFAULT_SERVE_PORT}",
        help="the running local API, as `serve` prints it, with or without /v1 "
        f"(default http://{LOCALHOST}:$PORT, or port {DEFAULT_SERVE_PORT})",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")

    fire = commands.add_parser(
        "fire", help="run an EventBridge rule or Scheduler schedule of a running local API now"
    )
    fire.add_argument("name", help="the rule's name, or the schedule's (a schedule id: sch_...)")
    fire.add_argument(
        "--aws-url",
        required=True,
        help="the running runtime's moto endpoint (`serve` prints it as AWS (moto))",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dataexport-local` console script; returns the exit status."""
    arguments = build_parser().parse_args(argv)
    _configure_logging(logging.INFO if arguments.command == "serve" else logging.WARNING)
    commands = {
        "serve": serve,
        "seed": seed,
        "token": token,
        "demo": demo,
        "audit": audit,
        "fire": fire,
        "smoke": smoke,
        "deploy-check": _deploy_check,
    }
    try:
        return commands[arguments.command](arguments)
    except DemoFailed as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger(__name__).debug("dataexport-local failed", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _deploy_check(arguments: argparse.Namespace) -> int:
    # Imported here: the SAM translator and statelint are the gate's alone, not the runtime's.
    from dataexport_local.deploy_check import deploy_check  # noqa: PLC0415

    return deploy_check(arguments.sam, arguments.checkov, arguments.template)


def _configure_logging(level: int) -> None:
    """Warnings from libraries; the runtime's own lines (API requests) at `level`.

    The runtime's logger gets its own handler: Powertools' Logger(service="dataexport") adds a
    filter to the root handlers that drops every logger whose name starts with "dataexport".
    """
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, format=log_format)
    runtime_logger = logging.getLogger("dataexport_local")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(log_format))
    runtime_logger.addHandler(handler)
    runtime_logger.setLevel(level)
    runtime_logger.propagate = False


def _database(arguments: argparse.Namespace) -> LocalDatabase:
    return database_from_environment(data_dir=arguments.data_dir)


# ---------------------------------------------------------------------------- serve


def serve(arguments: argparse.Namespace) -> int:
    """Run the API with moto and PostgreSQL until Ctrl-C (or SIGTERM)."""
    from dataexport_local.demo_data import DEMO_USERS  # noqa: PLC0415 - demo data is optional

    taken = _port_in_use(arguments.port)
    if taken is not None:
        print(
            f"error: port {arguments.port} is already in use ({taken}); stop what listens "
            "there or choose another port with --port N (or PORT=N)",
            file=sys.stderr,
        )
        return PORT_IN_USE_STATUS
    database = _database(arguments)
    database.start()
    try:
        seed_rows = arguments.seed_rows
        if seed_rows is None and not has_demo_data(database):
            seed_rows = DEFAULT_SEED_ROWS
            print(f"The database has no demo data yet: seeding {seed_rows} usage logs.")
        # The server log is one line per request; the functions' own INFO logs on request.
        parameters = {"LogLevel": SERVE_FUNCTION_LOG_LEVEL, **dict(arguments.parameter)}
        with LocalRuntime(parameters, arguments.port, database, seed_rows) as runtime:
            member, admin = DEMO_USERS[0], DEMO_USERS[1]
            member_token = runtime.token(member.user_id, member.org_id, "member")
            admin_token = runtime.token(admin.user_id, admin.org_id, "admin")
            expires = datetime.now(UTC) + timedelta(seconds=DEFAULT_TTL_SECONDS)
            per_hour = runtime.template.parameters.get("ExportsPerHour", "?")
            operator = runtime.operator_credentials
            operator_variables = (
                f"AWS_ACCESS_KEY_ID={operator.access_key_id} "
                f"AWS_SECRET_ACCESS_KEY={operator.secret_access_key}"
            )
            print(
                "\n".join(
                    [
                        f"dataexport API   {runtime.api_url}/v1  (also {runtime.stage_url}/v1)",
                        f"AWS (moto)       {runtime.aws_endpoint}  (IAM enforced; operator key:"
                        f" {operator_variables})",
                        f"PostgreSQL       {database.admin_settings.describe()}",
                        f"started in       {runtime.startup_seconds:.1f} s",
                        "",
                        f"member token ({member.user_id}, {member.org_id}):",
                        member_token,
                        f"admin token ({admin.user_id}, {admin.org_id}):",
                        admin_token,
                        f"these tokens live {DEFAULT_TTL_SECONDS // 60} minutes (until "
                        f"{expires:%H:%M} UTC); mint more with",
                        f"  dataexport-local token --sub {member.user_id} --org {member.org_id}"
                        " --ttl 86400",
                        "",
                        f"each user may create {per_hour} exports an hour; to explore more, "
                        "restart with",
                        "  dataexport-local serve --parameter ExportsPerHour=1000",
                        "",
                        "try:",
                        f"  TOKEN={member_token}",
                        f"  curl -s {runtime.api_url}/v1/datasets"
                        ' -H "Authorization: Bearer $TOKEN"',
                        "",
                        "rules and schedules fire on their own; to fire one now:",
                        f"  {operator_variables} dataexport-local fire <name> --aws-url "
                        f"{runtime.aws_endpoint}",
                        "",
                        "Ctrl-C to stop.",
                    ]
                ),
                flush=True,
            )
            _wait_for_interrupt()
    finally:
        database.stop()
    print("stopped.")
    return 0


def _port_in_use(port: int) -> str | None:
    """Why the API could not listen on `port` (None: it can), asked before anything is
    started or seeded."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the API's server binds: a port left in TIME_WAIT is free, a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCALHOST, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Explicit handlers: a shell may start a background job with SIGINT ignored.
    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# ---------------------------------------------------------------------------- seed and token


def seed(arguments: argparse.Namespace) -> int:
    """Create the demo schema and replace the usage logs with `--rows` generated rows."""
    database = _database(arguments)
    database.start()
    try:
        started = time.monotonic()
        inserted = seed_demo_data(database, arguments.rows)
        print(
            f"Seeded {inserted} usage logs into {database.admin_settings.describe()} "
            f"in {time.monotonic() - started:.1f} s."
        )
    finally:
        database.stop()
    return 0


def token(arguments: argparse.Namespace) -> int:
    """Print a bearer token (only the token, so `TOKEN=$(dataexport-local token ...)` works)."""
    print(
        mint_token(
            arguments.sub,
            arguments.org,
            arguments.role,
            arguments.permissions,
            ttl_seconds=arguments.ttl,
        )
    )
    return 0


# ---------------------------------------------------------------------------- fire


def fire(arguments: argparse.Namespace) -> int:
    """Fire a rule or schedule of a running runtime now: its target is invoked through moto's
    Lambda API, which the serving process routes to the real handler."""
    endpoint = arguments.aws_url.rstrip("/")
    lambda_client = moto_client(endpoint, "lambda")

    def invoke(function_arn: str, event: Any) -> Invocation:
        answer = lambda_client.invoke(FunctionName=function_arn, Payload=json.dumps(event))
        return Invocation(answer["Payload"].read(), answer.get("FunctionError"))

    scheduler = LocalScheduler(lambda service: moto_client(endpoint, service), invoke)
    try:
        firing = scheduler.fire(arguments.name)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(
            f"error: moto refused the call ({exc.response['Error'].get('Code')}); set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the operator key `serve` printed",
            file=sys.stderr,
        )
        return 1
    result = firing.invocation.json() if firing.invocation is not None else None
    print(json.dumps({"fired": firing.name, "kind": firing.kind, "result": result}, indent=2))
    return 1 if firing.error else 0


# ---------------------------------------------------------------------------- audit

AUDIT_OPERATOR_ID: Final = "local-operator"
AUDIT_OPERATOR_ORG: Final = "platform"
AUDIT_UNVERIFIED_STATUS: Final = 2


def audit(arguments: argparse.Namespace) -> int:
    """`audit verify`: ask the running API to verify a tenant's chain, as an operator."""
    operator = mint_token(AUDIT_OPERATOR_ID, AUDIT_OPERATOR_ORG, "operator", [])
    query = urlencode({"org": arguments.org})
    url = f"{api_base_url(arguments.api_url)}/v1/audit-events/verify?{query}"
    try:
        answer = _request("GET", url, operator)
    except (urllib.error.URLError, OSError) as exc:
        print(
            f"error: no local API at {arguments.api_url} ({exc}); "
            "start one with `dataexport-local serve`",
            file=sys.stderr,
        )
        return AUDIT_UNVERIFIED_STATUS
    if answer.status != 200:
        body = answer.body[:300].decode(errors="replace")
        print(f"error: the API answered {answer.status}: {body}", file=sys.stderr)
        return AUDIT_UNVERIFIED_STATUS
    report: dict[str, Any] = json.loads(answer.body)
    print(json.dumps(report, indent=2) if arguments.json else describe_chain_report(report))
    return 0 if report.get("ok") else 1


def api_base_url(url: str) -> str:
    """The API's base URL from the one `serve` prints (`.../v1`, with or without the stage):
    the routes' `/v1` and any trailing slash removed."""
    base = url.strip().rstrip("/")
    return base.removesuffix("/v1").rstrip("/")


def describe_chain_report(report: dict[str, Any]) -> str:
    """A ChainReport (as the API returns it) in two lines for a person."""
    org, count = report.get("org_id"), report.get("count")
    head = f"head seq {report.get('head_seq')}, hash {report.get('head_hash')}"
    problem = report.get("problem")
    if report.get("ok") or not problem:
        return f"{org}: audit chain OK: {count} events; {head}"
    return (
        f"{org}: audit chain BROKEN at seq {problem['seq']} ({problem['kind']}): "
        f"{problem['message']}\n{count} events read; {head}"
    )


# ---------------------------------------------------------------------------- demo


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise DemoFailed(
                f"expected JSON, got HTTP {self.status}: {self.body[:200]!r}"
            ) from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The demo checks the API's 302 itself instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_http = urllib.request.build_opener(_NoRedirects)


def _request(method: str, url: str, token: str | None = None, body: Any = None) -> _Answer:
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - local http
    try:
        with _http.open(request, timeout=60) as response:
            return _Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return _Answer(error.code, dict(error.headers), error.read())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def demo(arguments: argparse.Namespace) -> int:
    """Seed, export over HTTP, wait for the state machine, download, and count the rows."""
    from dataexport_local.demo_data import DEMO_USERS  # noqa: PLC0415 - demo data is optional

    user = DEMO_USERS[0]
    database = _database(arguments)
    database.start()
    try:
        print(f"Starting the local runtime and seeding {arguments.rows} usage logs...", flush=True)
        # WARNING keeps the handlers' INFO logs off the demo's output (LogLevel is a parameter).
        with LocalRuntime(
            {"LogLevel": "WARNING"}, arguments.port, database, arguments.rows
        ) as runtime:
            print(f"Runtime up in {runtime.startup_seconds:.1f} s: API {runtime.api_url}/v1")
            return _run_demo_export(runtime, user.user_id, user.org_id, arguments)
    finally:
        database.stop()


def _run_demo_export(
    runtime: LocalRuntime, user_id: str, org_id: str, arguments: argparse.Namespace
) -> int:
    token = runtime.token(user_id, org_id, "member")
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=DEMO_DAYS)
    request = {
        "dataset": "usage_logs",
        "format": "csv",
        "filters": [{"field": "status_code", "op": "gte", "value": DEMO_STATUS_CODE_AT_LEAST}],
        "time_range": {"start": _iso(start), "end": _iso(end)},
        "options": {"timezone": "Europe/Berlin"},
    }
    print(
        f"As {user_id} ({org_id}, member): CSV of usage_logs with status_code >= "
        f"{DEMO_STATUS_CODE_AT_LEAST} from {_iso(start)} to {_iso(end)}"
    )
    created = _request("POST", f"{runtime.api_url}/v1/exports", token, request)
    if created.status != 202:
        raise DemoFailed(f"POST /v1/exports answered {created.status}: {created.body[:500]!r}")
    job_id = str(created.json()["id"])
    print(f"Created export {job_id}; waiting for the state machine...", flush=True)

    job = _wait_for_job(runtime.api_url, token, job_id, arguments.timeout)
    download = _download(runtime.api_url, token, job_id)

    file_name = Path(str(job.get("file_name") or f"{job_id}.csv")).name
    path = arguments.out or DEMO_EXPORTS_DIR / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(download.body)

    rows_in_file = count_csv_rows(download.body)
    rows_in_database = _count_matching_rows(runtime, org_id, user_id, start, end)
    print(f"File:               {path.resolve()} ({len(download.body)} bytes)")
    print(f"Rows in the file:   {rows_in_file}")
    print(f"SELECT count(*):    {rows_in_database}")
    print(f"Job rows_exported:  {job.get('rows_exported')}")
    if rows_in_file != rows_in_database or job.get("rows_exported") != rows_in_database:
        raise DemoFailed("the exported row count differs from PostgreSQL's count")
    print("OK: the export holds exactly the rows PostgreSQL counts for the same filter.")
    return 0


def _download(api_url: str, token: str, job_id: str) -> _Answer:
    """The export's file: the API's redirect, then the presigned URL it points to."""
    redirect = _request("GET", f"{api_url}/v1/exports/{job_id}/download", token)
    if redirect.status != 302 or "Location" not in redirect.headers:
        raise DemoFailed(f"GET /download answered {redirect.status}: {redirect.body[:500]!r}")
    download = _request("GET", redirect.headers["Location"])
    if download.status != 200:
        raise DemoFailed(f"the presigned URL answered {download.status}: {download.body[:300]!r}")
    return download


def _wait_for_job(api_url: str, token: str, job_id: str, timeout: float) -> dict[str, Any]:
    """Poll the job until it completes; fail with its error, or at the deadline."""
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        answer = _request("GET", f"{api_url}/v1/exports/{job_id}", token)
        if answer.status != 200:
            raise DemoFailed(
                f"GET /v1/exports/{job_id} answered {answer.status}: {answer.body[:500]!r}"
            )
        job: dict[str, Any] = answer.json()
        status = str(job.get("status"))
        if status == "completed":
            return job
        if status in ("failed", "cancelled", "expired", "deleted"):
            raise DemoFailed(f"export {job_id} ended {status}: {json.dumps(job.get('error'))}")
        time.sleep(DEMO_POLL_SECONDS)
    raise DemoFailed(f"export {job_id} still {status} after {timeout:.0f} s")


# ---------------------------------------------------------------------------- smoke


def smoke(arguments: argparse.Namespace) -> int:
    """One CSV export over the public API of a running stack: create, wait, download through the
    presigned URL, and check the file against the job (sha256 and rows)."""
    if not arguments.token:
        print("error: give a bearer token with --token or $TOKEN", file=sys.stderr)
        return 2
    api_url, token = api_base_url(arguments.api_url), str(arguments.token)
    try:
        return _run_smoke(api_url, token, arguments.dataset, arguments.timeout)
    except DemoFailed as exc:
        print(f"smoke FAILED: {exc}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"smoke FAILED: no API at {arguments.api_url} ({exc})", file=sys.stderr)
        return 1


def _run_smoke(api_url: str, token: str, dataset: str | None, timeout: float) -> int:
    listed = _request("GET", f"{api_url}/v1/datasets", token)
    if listed.status != 200:
        raise DemoFailed(f"GET /v1/datasets answered {listed.status}: {listed.body[:300]!r}")
    names = [str(item["name"]) for item in listed.json()["items"]]
    if not names:
        raise DemoFailed("this token may use no dataset")
    name = dataset or names[0]
    if name not in names:
        raise DemoFailed(f"dataset {name!r} is not one of {', '.join(names)}")
    print(f"API {api_url}/v1: {len(names)} datasets; exporting {name} as CSV", flush=True)
    created = _request("POST", f"{api_url}/v1/exports", token, {"dataset": name, "format": "csv"})
    if created.status not in (200, 202):
        raise DemoFailed(f"POST /v1/exports answered {created.status}: {created.body[:500]!r}")
    job_id = str(created.json()["id"])
    print(f"Created export {job_id}; waiting...", flush=True)
    job = _wait_for_job(api_url, token, job_id, timeout)
    body = _download(api_url, token, job_id).body
    digest, rows = hashlib.sha256(body).hexdigest(), count_csv_rows(body)
    print(f"Downloaded {len(body)} bytes, {rows} rows, sha256 {digest}")
    if digest != job.get("sha256") or rows != job.get("rows_exported"):
        raise DemoFailed(
            f"the file differs from the job: sha256 {job.get('sha256')}, "
            f"rows_exported {job.get('rows_exported')}"
        )
    print(f"OK: export {job_id} of {name} completed and its file matches the job.")
    return 0


def count_csv_rows(body: bytes) -> int:
    """Data rows of a CSV file (header excluded; a UTF-8 BOM and quoted newlines handled)."""
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    return max(0, sum(1 for _ in reader) - 1)


def _count_matching_rows(
    runtime: LocalRuntime, org_id: str, user_id: str, start: datetime, end: datetime
) -> int:
    """The same filter in SQL, run as the superuser: a member sees their own rows of their
    tenant, status_code >= 400, created_at in [start, end)."""
    connection = runtime.database.connect()
    try:
        rows = connection.run(
            "SELECT count(*) FROM demo.usage_logs"
            " WHERE org_id = :org_id AND user_id = :user_id"
            " AND status_code >= :status_code"
            " AND created_at >= :start AND created_at < :end",
            org_id=org_id,
            user_id=user_id,
            status_code=DEMO_STATUS_CODE_AT_LEAST,
            start=start,
            end=end,
        )
        return int(rows[0][0])
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
