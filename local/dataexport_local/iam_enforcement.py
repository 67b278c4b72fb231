"""IAM enforcement in the local runtime: moto checks every request against its signer's policies.

moto authorizes a request once its auth switch is on (`/moto-api/reset-auth` with 0). From then on
only IAM users' access keys and `sts:AssumeRole` sessions are accepted, so the runtime first creates
an operator user allowed everything, and gives each function the temporary credentials of its own
role. What moto's checker gets wrong, and this module works around:

- it authorizes every service but S3 against the resource "*", so a statement naming ARNs would
  never match: `local_policy` keeps S3 statements as they are and widens the others to "*";
- it names some actions after the API operation, not IAM's action (`lambda:Invoke`,
  `xray:TraceSegments`, `dynamodb:TransactWriteItems`): `local_policy` adds those names;
- it treats a Condition it cannot evaluate as met, so a conditional Deny denies everything:
  `local_policy` leaves such statements out;
- a trust statement with only a Service principal fails with a server error when a user assumes
  the role: `create_role` adds the assuming caller to each Allow statement;
- it fails presigned URLs (no Authorization header) with a server error:
  `presigned_urls_authorized` checks the signer's permissions instead;
- it checks the signature of a GET without a body over the wrong payload:
  `bodiless_requests_signed_as_sent` gives it the empty one;
- its Step Functions interpreter signs every call with a fixed key:
  `state_machine_credentials` signs them with the role the state (or the execution) runs as.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import importlib
import json
import secrets
import string
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final
from unittest import mock

import boto3

from dataexport_local.template import ACCOUNT_ID, PARTITION, REGION

OPERATOR_USER_NAME: Final = "local-operator"
# moto's assumed-role credentials never expire, but the runtime still refreshes them like an SDK.
DEFAULT_SESSION_SECONDS: Final = 12 * 60 * 60
_REFRESH_MARGIN: Final = datetime.timedelta(minutes=5)
_ALLOW_EVERYTHING: Final = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# IAM action -> the names moto checks for the same call.
_MOTO_ACTION_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "lambda:invokefunction": ("lambda:Invoke",),
    "xray:puttracesegments": ("xray:TraceSegments",),
    "xray:puttelemetryrecords": ("xray:TelemetryRecords",),
    "dynamodb:putitem": ("dynamodb:TransactWriteItems",),
    "dynamodb:updateitem": ("dynamodb:TransactWriteItems",),
    "dynamodb:deleteitem": ("dynamodb:TransactWriteItems",),
    "dynamodb:conditioncheckitem": ("dynamodb:TransactWriteItems",),
    "dynamodb:getitem": ("dynamodb:TransactGetItems",),
}


@dataclass(frozen=True)
class Credentials:
    """An access key for the local moto; a session token and expiration when assumed."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expiration: datetime.datetime | None = None

    def environment(self) -> dict[str, str]:
        """The AWS_* variables an SDK reads these credentials from."""
        variables = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            variables["AWS_SESSION_TOKEN"] = self.session_token
        return variables

    def client(
        self, endpoint_url: str | None, service: str, *, region: str = REGION, **options: Any
    ) -> Any:
        """A boto3 client for `service` at `endpoint_url`, signing with these credentials."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            **options,
        )

    def expires_soon(self, now: datetime.datetime | None = None) -> bool:
        if self.expiration is None:
            return False
        now = now or datetime.datetime.now(datetime.UTC)
        return self.expiration - _REFRESH_MARGIN <= now


# ---------------------------------------------------------------------------- the switch


def set_auth_threshold(endpoint_url: str, requests_before_auth: float) -> float:
    """Let moto serve `requests_before_auth` requests unchecked, then check every one (0: check
    from now on; inf: never). Returns the previous threshold.

    The threshold is moto's process-wide setting, so it also applies to `mock_aws` in the
    process that runs the server.
    """
    request = urllib.request.Request(  # noqa: S310 - our own http endpoint
        f"{endpoint_url}/moto-api/reset-auth",
        data=str(requests_before_auth).encode(),
        method="POST",
        # Any form content type would make the server parse the body as a form and lose it.
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        answer = json.loads(response.read())
    return float(answer["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


def enforce_iam(endpoint_url: str) -> float:
    """Check every request from now on; returns the previous threshold."""
    return set_auth_threshold(endpoint_url, 0)


def stop_enforcing(endpoint_url: str) -> float:
    """Serve every request unchecked again (moto's default); `/moto-api/reset` leaves this."""
    return set_auth_threshold(endpoint_url, float("inf"))


@contextmanager
def iam_enforced(endpoint_url: str) -> Iterator[None]:
    """Enforce IAM while the block runs, then give back the threshold there was."""
    previous = enforce_iam(endpoint_url)
    try:
        yield
    finally:
        set_auth_threshold(endpoint_url, previous)


# ---------------------------------------------------------------------------- identities


# Keys differ between processes and stay the same within one (see `_stable_credentials`).
_PROCESS_SALT: Final = secrets.token_bytes(16)
_KEY_ALPHABET: Final = string.ascii_uppercase + "234567"


def _stable_credentials(label: str, prefix: str, *, with_token: bool) -> Credentials:
    """Credentials derived from `label`: the same in every LocalAws of this process.

    Code that ran against an earlier runtime of the process keeps its clients (boto3's, pynamodb's,
    Powertools') with the credentials they were made with, and those must still work: a fixed
    key per identity does that, as the fixed test key did before IAM was enforced.
    """
    digest = hashlib.sha256(_PROCESS_SALT + label.encode()).digest()
    key_id = prefix + "".join(_KEY_ALPHABET[byte % 32] for byte in digest[:16])
    secret = base64.b64encode(hashlib.sha256(digest + b"secret").digest())[:40].decode()
    token = base64.b64encode(hashlib.sha512(digest + b"token").digest()).decode()
    return Credentials(key_id, secret, token if with_token else None)


def _iam_and_sts_backends() -> tuple[Any, Any]:
    from moto.iam.models import iam_backends  # noqa: PLC0415 - moto is heavy
    from moto.sts.models import sts_backends  # noqa: PLC0415

    return iam_backends[ACCOUNT_ID][PARTITION], sts_backends[ACCOUNT_ID][PARTITION]


def _pin_access_key(issued: str, wanted: Credentials) -> None:
    """Give the key moto issued as `issued` (a user's, or an assumed role's) the id, secret and
    session token of `wanted`. moto's server runs in this process (LocalAws's does)."""
    iam, sts = _iam_and_sts_backends()
    key = iam.access_keys.pop(issued)
    key.access_key_id, key.secret_access_key = wanted.access_key_id, wanted.secret_access_key
    iam.access_keys[wanted.access_key_id] = key
    for role in sts.assumed_roles:
        if role.access_key_id == issued:
            role.access_key_id = wanted.access_key_id
            role.secret_access_key = wanted.secret_access_key
            role.session_token = wanted.session_token


def create_operator(
    endpoint_url: str, caller: Credentials, name: str = OPERATOR_USER_NAME
) -> Credentials:
    """An IAM user allowed everything, with an access key: the identity of the runtime itself
    and of the tests' clients once IAM is enforced. `caller` must be allowed iam:CreateUser etc.
    (before enforcement, moto takes any key, e.g. the usual "testing")."""
    iam = caller.client(endpoint_url, "iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="allow-everything", PolicyDocument=json.dumps(_ALLOW_EVERYTHING)
    )
    issued = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    operator = _stable_credentials(f"user/{name}", "AKIA", with_token=False)
    _pin_access_key(str(issued), operator)
    return operator


def caller_arn(endpoint_url: str, credentials: Credentials) -> str:
    """Who moto takes `credentials` for (sts:GetCallerIdentity is allowed to everybody)."""
    return str(credentials.client(endpoint_url, "sts").get_caller_identity()["Arn"])


def create_role(
    endpoint_url: str,
    caller: Credentials,
    name: str,
    trust: Mapping[str, Any],
    *,
    inline_policies: Mapping[str, Mapping[str, Any]] | None = None,
    managed_arns: Sequence[str] = (),
    max_session_seconds: int = 3600,
) -> str:
    """A role with its inline and managed policies, in the form moto can enforce
    (`local_policy`); `caller` may assume it. Returns its ARN.

    AWS managed policies (arn:aws:iam::aws:policy/...) exist only when moto's config has
    iam.load_aws_managed_policies true before its IAM backend is created.
    """
    iam = caller.client(endpoint_url, "iam")
    document = local_trust_policy(trust, caller_arn(endpoint_url, caller))
    arn = str(
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(document),
            MaxSessionDuration=max_session_seconds,
        )["Role"]["Arn"]
    )
    for policy_name, policy in (inline_policies or {}).items():
        # IAM reads a document without a Version as 2008-10-17 (SAM's policy templates write
        # none); moto refuses those, and the two differ only in policy variables.
        versioned = {"Version": "2012-10-17", **policy}
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy_name,
            PolicyDocument=json.dumps(local_policy(versioned)),
        )
    for policy_arn in managed_arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return arn


def assume_role(
    endpoint_url: str,
    caller: Credentials,
    role_arn: str,
    session_name: str,
    duration_seconds: int = DEFAULT_SESSION_SECONDS,
) -> Credentials:
    """Temporary credentials of `role_arn`, as Lambda or ECS get them for a function or task:
    the same for the same role and session name throughout the process."""
    answer = caller.client(endpoint_url, "sts").assume_role(
        RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_seconds
    )["Credentials"]
    stable = _stable_credentials(f"{role_arn}/{session_name}", "ASIA", with_token=True)
    _pin_access_key(str(answer["AccessKeyId"]), stable)
    return Credentials(
        stable.access_key_id, stable.secret_access_key, stable.session_token, answer["Expiration"]
    )


class RoleSessions:
    """Credentials per role ARN and session name, assumed by `caller` when first asked and again
    near expiry. Called with a role ARN alone, a session of `session_name`."""

    def __init__(self, endpoint_url: str, caller: Credentials, session_name: str) -> None:
        self._endpoint_url = endpoint_url
        self._caller = caller
        self._session_name = session_name
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], Credentials] = {}

    def __call__(self, role_arn: str, session_name: str | None = None) -> Credentials:
        key = (role_arn, session_name or self._session_name)
        with self._lock:
            credentials = self._sessions.get(key)
            if credentials is None or credentials.expires_soon():
                credentials = assume_role(self._endpoint_url, self._caller, *key)
                self._sessions[key] = credentials
            return credentials


# ---------------------------------------------------------------------------- policies


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def local_policy(document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` as moto can enforce it: S3 statements unchanged; other Allow statements for
    any resource, with moto's names for the actions it calls otherwise; conditional Deny
    statements left out (moto would apply them unconditionally)."""
    statements: list[dict[str, Any]] = []
    for statement in _as_list(document.get("Statement") or []):
        effect = statement.get("Effect")
        if effect == "Deny" and "Condition" in statement:
            continue
        if effect != "Allow" or "Action" not in statement:
            statements.append(dict(statement))
            continue
        actions = [str(action) for action in _as_list(statement["Action"])]
        s3_actions = [action for action in actions if action.lower().startswith("s3:")]
        other_actions = [action for action in actions if action not in s3_actions]
        if s3_actions:
            statements.append({**statement, "Action": s3_actions})
        if other_actions:
            for action in list(other_actions):
                for alias in _MOTO_ACTION_NAMES.get(action.lower(), ()):
                    if alias not in other_actions:
                        other_actions.append(alias)
            widened = {key: value for key, value in statement.items() if key != "NotResource"}
            statements.append({**widened, "Action": other_actions, "Resource": "*"})
    return {**document, "Statement": statements}


def local_trust_policy(document: Mapping[str, Any], assuming_arn: str) -> dict[str, Any]:
    """`document` with `assuming_arn` among the AWS principals of each Allow statement.

    moto compares the assuming caller with Principal.AWS and fails on a statement without it
    (a Service principal alone); locally the runtime assumes roles on the services' behalf.
    """
    statements: list[dict[str, Any]] = []
    for original in _as_list(document.get("Statement") or []):
        statement = dict(original)
        principal = statement.get("Principal")
        if statement.get("Effect") == "Allow" and isinstance(principal, dict):
            aws = principal.get("AWS")
            if aws != "*":
                known = [] if aws is None else _as_list(aws)
                statement["Principal"] = {**principal, "AWS": [*known, assuming_arn]}
        statements.append(statement)
    return {**document, "Statement": statements}


# ---------------------------------------------------------------------------- moto hooks


@contextmanager
def presigned_urls_authorized() -> Iterator[None]:
    """Authorize a presigned S3 request by its signer's policies while IAM is enforced.

    moto expects an Authorization header on every checked request and fails a presigned URL
    (signed in its query) with a server error. The signer's access key and session token come
    from the query; moto does not check the URL's signature or expiry either way.
    """
    from moto import settings  # noqa: PLC0415 - moto is heavy
    from moto.core.authorization import ActionAuthenticatorMixin  # noqa: PLC0415
    from moto.iam.access_control import S3IAMRequest  # noqa: PLC0415
    from moto.utilities.utils import get_partition  # noqa: PLC0415

    original = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        query: Mapping[str, list[str]] = self.querystring
        enforced = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        # SigV4 URLs name the key in X-Amz-Credential, SigV2 ones (boto3's default) in
        # AWSAccessKeyId; moto reads only the key id and the region from a credential scope.
        if "X-Amz-Credential" in query:
            scope = query["X-Amz-Credential"][0]
        elif "AWSAccessKeyId" in query:
            scope = f"{query['AWSAccessKeyId'][0]}/00000000/{self.region}/s3/aws4_request"
        else:
            scope = ""
        if not enforced or "Authorization" in self.headers or not scope:
            original(self, bucket_name, key_name)
            return
        headers = {
            "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, "
            "SignedHeaders=host, Signature=presigned"
        }
        token = query.get("X-Amz-Security-Token") or query.get("x-amz-security-token")
        if token:
            headers["X-Amz-Security-Token"] = token[0]
        target = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
        request = S3IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=self.raw_path,
            data=self.data,
            body=b"",
            headers=headers,
            action=self.data["Action"],
        )
        request.check_action_permitted(f"arn:{get_partition(self.region)}:s3:::{target}")

    with mock.patch.object(
        ActionAuthenticatorMixin, "_authenticate_and_authorize_s3_action", authorize
    ):
        yield


@contextmanager
def bodiless_requests_signed_as_sent() -> Iterator[None]:
    """Check the signature of a request without a body (a REST API's GET or DELETE, such as
    Lambda's ListFunctions or Scheduler's ListSchedules) over the empty payload it was signed
    with. moto falls back to its parsed request data when the body is empty, which for these
    requests is the headers, so every such call fails with SignatureDoesNotMatch."""
    from moto.iam.access_control import IAMRequestBase  # noqa: PLC0415 - moto is heavy

    original = IAMRequestBase._create_aws_request

    def create_aws_request(self: Any) -> Any:
        if self._body or self._method not in ("GET", "HEAD", "DELETE"):
            return original(self)
        data = self._data
        self._data = b""
        try:
            return original(self)
        finally:
            self._data = data

    with mock.patch.object(IAMRequestBase, "_create_aws_request", create_aws_request):
        yield


def _step_functions_client_modules() -> list[ModuleType]:
    """moto's interpreter modules that imported `boto_client_for` by name (each needs it set)."""
    # Imported here so that each has taken its copy of the name before it is replaced.
    for name in (
        "state_map.item_reader.eval.resource_eval_s3",
        "state_map.result_writer.resource_eval.resource_eval_s3",
        "state_task.lambda_eval_utils",
        "state_task.service.state_task_service_factory",
    ):
        importlib.import_module(f"moto.stepfunctions.parser.asl.component.state.exec.{name}")
    from moto.stepfunctions.parser.asl.utils import boto_client  # noqa: PLC0415

    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser")
        and getattr(module, "boto_client_for", None) is boto_client.boto_client_for
    ]


@contextmanager
def state_machine_credentials(credentials_for: Callable[[str], Credentials]) -> Iterator[None]:
    """Sign the Step Functions interpreter's calls (Lambda, ECS, SDK integrations, Map's S3
    reader and writer) with the credentials of the role the state runs as.

    moto passes that role to every client it makes: the state's Credentials.RoleArn, else the
    execution's, which is the state machine's roleArn at StartExecution. `credentials_for` maps
    a role ARN to credentials, e.g. a `RoleSessions`.
    """
    from botocore.config import Config  # noqa: PLC0415
    from moto.core.models import botocore_stubber  # noqa: PLC0415 - moto is heavy
    from moto.settings import moto_server_port  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (  # noqa: PLC0415
        TimeoutSeconds,
    )
    from moto.stepfunctions.parser.asl.utils import boto_client  # noqa: PLC0415

    original = boto_client.boto_client_for
    modules = [*_step_functions_client_modules(), boto_client]

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = getattr(state_credentials, "role_arn", None)
        if not role_arn:
            raise ValueError(f"moto's interpreter called {service} without a role to sign as")
        credentials = credentials_for(str(role_arn))
        # As moto's own: no retries, and the endpoint unless its in-process stubber is on.
        options: dict[str, Any] = {
            "config": Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            )
        }
        endpoint = None if botocore_stubber.enabled else f"http://localhost:{moto_server_port()}"
        return credentials.client(endpoint, service, region=region, **options)

    for module in modules:
        module.boto_client_for = boto_client_for  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module.boto_client_for = original  # type: ignore[attr-defined]
