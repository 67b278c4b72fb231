"""API Gateway's REST API on localhost, built from the RestApi body the SAM transform generates.

A request is matched against the body's paths (path templates such as `/v1/exports/{id}`), the
route's TOKEN authorizer (its `securityDefinitions`) runs with the identity header, and the
function its `aws_proxy` integration names gets a REST proxy event (version 1.0) as API Gateway
would send it. Gateway responses (unknown route, missing or bad token, denied, too large, crashed
function) take their status code and body from the body's `x-amazon-apigateway-gateway-responses`,
else API Gateway's defaults.

URLs: API Gateway serves `https://<api>.execute-api.<region>.amazonaws.com/<stage>/v1/...`. Locally
both `http://127.0.0.1:<port>/<stage>/v1/...` and `http://127.0.0.1:<port>/v1/...` work (like
`sam local start-api`); the event's `requestContext.path` always carries the stage.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from dataexport_local.lambda_dispatch import Invocation, LambdaDispatcher
from dataexport_local.template import (
    ACCOUNT_ID,
    REGION,
    ApiRoute,
    ApiSpec,
    AuthorizerSpec,
    FunctionSpec,
    StackTemplate,
)

logger = logging.getLogger(__name__)

LOCALHOST: Final = "127.0.0.1"
MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS: Final = 29
UNAUTHORIZED_MESSAGE: Final = "Unauthorized"
HTTP_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

# API Gateway's own status and body for each gateway response type it uses here.
_DEFAULT_RESPONSES: Final[dict[str, tuple[int, str | None, str]]] = {
    "MISSING_AUTHENTICATION_TOKEN": (
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    ),
    "UNAUTHORIZED": (401, "Unauthorized", "UnauthorizedException"),
    "ACCESS_DENIED": (
        403,
        "User is not authorized to access this resource",
        "AccessDeniedException",
    ),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLongException"),
    "BAD_REQUEST_BODY": (400, "Invalid request body", "BadRequestException"),
    # API Gateway takes only the methods below; any other is refused before routing.
    "METHOD_NOT_ALLOWED": (405, "Method Not Allowed", "MethodNotAllowedException"),
    "AUTHORIZER_FAILURE": (500, None, "AuthorizerFailureException"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, None, "AuthorizerConfigurationException"),
    "INTEGRATION_FAILURE": (502, "Internal server error", "InternalServerErrorException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "IntegrationTimeoutException"),
}


class AuthorizerError(Exception):
    """The authorizer failed or answered something API Gateway cannot use."""


@dataclass(frozen=True)
class Route:
    """One method on one resource path, bound to a function and maybe an authorizer."""

    resource: str
    method: str
    function: FunctionSpec
    authorizer: AuthorizerSpec | None
    pattern: re.Pattern[str]

    @classmethod
    def build(cls, route: ApiRoute, function: FunctionSpec, api: ApiSpec) -> Route:
        authorizer = None
        if route.authorizer is not None:
            authorizer = api.authorizers.get(route.authorizer)
            if authorizer is None:
                raise ValueError(
                    f"{route.method} {route.path}: no authorizer {route.authorizer} "
                    f"on {api.logical_id}"
                )
        return cls(route.path, route.method, function, authorizer, _path_pattern(route.path))

    @property
    def specificity(self) -> tuple[int, int, int]:
        """API Gateway prefers literal segments over `{param}` and those over `{proxy+}`."""
        segments = self.resource.strip("/").split("/")
        greedy = sum(segment.endswith("+}") for segment in segments)
        params = sum(segment.startswith("{") for segment in segments)
        return (greedy, params, -len(segments))


def _path_pattern(resource: str) -> re.Pattern[str]:
    parts = []
    for segment in resource.strip("/").split("/"):
        match = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
        if match is None:
            parts.append(re.escape(segment))
        elif match.group(2):
            parts.append(f"(?P<{match.group(1)}>.+)")
        else:
            parts.append(f"(?P<{match.group(1)}>[^/]+)")
    return re.compile("/" + "/".join(parts) if parts != [""] else "/")


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class _Policy:
    principal_id: str
    statements: tuple[Mapping[str, Any], ...]
    context: Mapping[str, Any]

    def allows(self, method_arn: str) -> bool:
        """IAM evaluation for execute-api:Invoke: an explicit Deny wins, else an Allow is needed."""
        allowed = False
        for statement in self.statements:
            if not (
                _matches_any(statement.get("Action"), "execute-api:Invoke")
                and _matches_any(statement.get("Resource"), method_arn)
            ):
                continue
            if str(statement.get("Effect")).lower() == "deny":
                return False
            allowed = allowed or str(statement.get("Effect")).lower() == "allow"
        return allowed


def _matches_any(patterns: Any, value: str) -> bool:
    candidates = patterns if isinstance(patterns, list) else [patterns]
    return any(
        isinstance(pattern, str) and fnmatch.fnmatchcase(value, pattern) for pattern in candidates
    )


def _policy_from(output: Any) -> _Policy:
    if (
        not isinstance(output, dict)
        or "principalId" not in output
        or "policyDocument" not in output
    ):
        raise AuthorizerError("The authorizer's answer has no principalId or policyDocument")
    statements = output["policyDocument"].get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    context = output.get("context") or {}
    if not isinstance(context, dict) or any(isinstance(v, dict | list) for v in context.values()):
        raise AuthorizerError(
            "The authorizer's context must map names to strings, numbers or booleans"
        )
    return _Policy(str(output["principalId"]), tuple(statements), context)


def _context_value(value: Any) -> str:
    # REST APIs hand the authorizer's context to the integration as strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class LocalApiGateway:
    """An HTTP server on localhost that behaves like the template's REST API."""

    def __init__(
        self,
        template: StackTemplate,
        dispatcher: LambdaDispatcher,
        *,
        api: ApiSpec | None = None,
        host: str = LOCALHOST,
        port: int = 0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        if api is None:
            if len(template.apis) != 1:
                raise ValueError(f"The template has {len(template.apis)} REST APIs; name one")
            api = template.apis[0]
        self.api = api
        self.dispatcher = dispatcher
        self.max_request_bytes = max_request_bytes
        self.routes: tuple[Route, ...] = tuple(
            sorted(
                (Route.build(route, function, api) for route, function in template.routes(api)),
                key=lambda route: route.specificity,
            )
        )
        self._host = host
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._policy_cache: dict[tuple[str, str], tuple[float, _Policy]] = {}
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ server lifecycle

    def __enter__(self) -> LocalApiGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalApiGateway:
        """Listen on host:port (port 0: any free port) in a background thread."""
        server = _GatewayServer((self._host, self._requested_port), _GatewayRequestHandler, self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="local-api-gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The local API Gateway is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without the stage (`{url}/v1/exports`)."""
        return f"http://{self._host}:{self.port}"

    @property
    def stage_url(self) -> str:
        """Base URL with the stage, as API Gateway's invoke URL has it."""
        return f"{self.url}/{self.api.stage}"

    # ------------------------------------------------------------------ request handling

    def handle(
        self,
        method: str,
        raw_path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        source_ip: str,
    ) -> HttpAnswer:
        """Answer one request as API Gateway would (`body` None: it was over the size limit)."""
        request_id = str(uuid.uuid4())
        if body is None:
            return self.gateway_response("REQUEST_TOO_LARGE", request_id)
        split = urlsplit(raw_path)
        path = self._without_stage(unquote(split.path) or "/")
        match = self._match(method, path)
        if match is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, path_parameters = match
        method_arn = self.method_arn(method, path)
        authorizer_context: dict[str, Any] | None = None
        if route.authorizer is not None:
            token = _header(headers, route.authorizer.identity_header)
            expression = route.authorizer.validation_expression
            if not token or (expression and re.fullmatch(expression, token) is None):
                return self.gateway_response("UNAUTHORIZED", request_id)
            try:
                policy = self._authorize(route.authorizer, token, method_arn)
            except PermissionError:
                return self.gateway_response("UNAUTHORIZED", request_id)
            except AuthorizerError as exc:
                logger.warning("Authorizer %s failed: %s", route.authorizer.name, exc)
                return self.gateway_response("AUTHORIZER_FAILURE", request_id)
            if not policy.allows(method_arn):
                return self.gateway_response("ACCESS_DENIED", request_id)
            authorizer_context = {
                key: _context_value(value) for key, value in policy.context.items()
            }
            authorizer_context["principalId"] = policy.principal_id
            authorizer_context["integrationLatency"] = 0
        event = self._proxy_event(
            route=route,
            method=method,
            path=path,
            query=split.query,
            path_parameters=path_parameters,
            headers=headers,
            body=body,
            source_ip=source_ip,
            request_id=request_id,
            authorizer_context=authorizer_context,
        )
        started = time.monotonic()
        invocation = self.dispatcher.invoke(route.function.name, event)
        if time.monotonic() - started > INTEGRATION_TIMEOUT_SECONDS:
            return self.gateway_response("INTEGRATION_TIMEOUT", request_id)
        return self._integration_answer(invocation, request_id)

    def method_arn(self, method: str, path: str) -> str:
        """The ARN a TOKEN authorizer is asked about for this request."""
        api = f"{self.api.rest_api_id}/{self.api.stage}"
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api}/{method}/{path.lstrip('/')}"

    def _without_stage(self, path: str) -> str:
        prefix = f"/{self.api.stage}"
        if path == prefix:
            return "/"
        return path[len(prefix) :] if path.startswith(prefix + "/") else path

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        normalized = path.rstrip("/") or "/"
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.fullmatch(normalized)
            if found is not None:
                return route, dict(found.groupdict())
        return None

    def _authorize(self, authorizer: AuthorizerSpec, token: str, method_arn: str) -> _Policy:
        """The authorizer's policy for this token, from the cache while ReauthorizeEvery lasts."""
        key = (authorizer.name, token)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._policy_cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
        invocation = self.dispatcher.invoke(authorizer.function_arn, event)
        answer = invocation.json()
        if invocation.function_error is not None:
            message = answer.get("errorMessage") if isinstance(answer, dict) else None
            if message == UNAUTHORIZED_MESSAGE:
                raise PermissionError(UNAUTHORIZED_MESSAGE)
            raise AuthorizerError(
                f"{answer.get('errorType') if isinstance(answer, dict) else answer}"
            )
        policy = _policy_from(answer)
        if authorizer.reauthorize_every_seconds > 0:
            with self._cache_lock:
                self._policy_cache[key] = (now + authorizer.reauthorize_every_seconds, policy)
        return policy

    def _proxy_event(
        self,
        *,
        route: Route,
        method: str,
        path: str,
        query: str,
        path_parameters: Mapping[str, str],
        headers: Sequence[tuple[str, str]],
        body: bytes,
        source_ip: str,
        request_id: str,
        authorizer_context: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """A REST API Lambda proxy integration event (payload format 1.0)."""
        single_headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            single_headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        pairs = parse_qsl(query, keep_blank_values=True)
        single_query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for name, value in pairs:
            single_query[name] = value
            multi_query.setdefault(name, []).append(value)
        text_body, is_base64 = _event_body(body)
        now = datetime.now(UTC)
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": method,
            "headers": single_headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": single_query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": dict(path_parameters) or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": route.function.logical_id[:6].lower(),
                "resourcePath": route.resource,
                "httpMethod": method,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{self.api.stage}{path}",
                "accountId": ACCOUNT_ID,
                "protocol": "HTTP/1.1",
                "stage": self.api.stage,
                "domainPrefix": self.api.rest_api_id,
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": request_id,
                "identity": {
                    "sourceIp": source_ip,
                    "userAgent": _header(headers, "User-Agent"),
                    "accountId": None,
                    "caller": None,
                    "user": None,
                    "userArn": None,
                    "cognitoIdentityPoolId": None,
                    "cognitoIdentityId": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "accessKey": None,
                    "apiKey": None,
                    "apiKeyId": None,
                },
                "domainName": f"{self.api.rest_api_id}.execute-api.{REGION}.amazonaws.com",
                "apiId": self.api.rest_api_id,
                "authorizer": dict(authorizer_context) if authorizer_context is not None else None,
            },
            "body": text_body,
            "isBase64Encoded": is_base64,
        }

    def _integration_answer(self, invocation: Invocation, request_id: str) -> HttpAnswer:
        if invocation.function_error is not None:
            return self.gateway_response("DEFAULT_5XX", request_id, status=502)
        try:
            result = invocation.json()
            status = int(result["statusCode"])
        except (ValueError, KeyError, TypeError):
            logger.warning("The function's answer is not a proxy integration response")
            return self.gateway_response("DEFAULT_5XX", request_id, status=502)
        multi = result.get("multiValueHeaders") or {}
        single = result.get("headers") or {}
        headers: list[tuple[str, str]] = []
        for name, values in multi.items():
            headers.extend((str(name), str(value)) for value in values)
        multi_names = {name.lower() for name in multi}
        headers.extend(
            (str(name), str(value))
            for name, value in single.items()
            if name.lower() not in multi_names
        )
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers.append(("x-amzn-RequestId", request_id))
        raw_body = result.get("body")
        if raw_body is None:
            body = b""
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(raw_body)
        else:
            body = str(raw_body).encode()
        return HttpAnswer(status, headers, body)

    def gateway_response(
        self, kind: str, request_id: str, *, status: int | None = None
    ) -> HttpAnswer:
        """A gateway response as the template customises it (else DEFAULT_4XX/5XX, else AWS's)."""
        default_status, default_message, error_type = _DEFAULT_RESPONSES.get(
            kind, (status or 500, "Internal server error", "InternalServerErrorException")
        )
        status = status or default_status
        responses = self.api.gateway_responses
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        spec = responses.get(kind) or responses.get(family)
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", error_type),
        ]
        if spec is None:
            body = json.dumps({"message": default_message})
        else:
            if spec.status_code is not None and kind in responses:
                status = spec.status_code
            template = spec.templates.get("application/json") or next(
                iter(spec.templates.values()), None
            )
            body = (
                _render_template(template, kind, request_id, default_message)
                if template is not None
                else json.dumps({"message": default_message})
            )
            headers.extend(spec.headers.items())
        return HttpAnswer(status, headers, body.encode())


def _render_template(template: str, kind: str, request_id: str, message: str | None) -> str:
    """The few `$context` variables a gateway response template commonly uses."""
    return (
        template.replace("$context.requestId", request_id)
        .replace("$context.error.messageString", json.dumps(message))
        .replace("$context.error.message", message or "")
        .replace("$context.error.responseType", kind)
    )


def _event_body(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    found = None
    for key, value in headers:
        if key.lower() == wanted:
            found = value
    return found


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections when many clients arrive at once.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        gateway: LocalApiGateway,
    ) -> None:
        self.gateway = gateway
        super().__init__(address, handler)


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _GatewayServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def do_OPTIONS(self) -> None:
        self._answer()

    def __getattr__(self, name: str) -> Any:
        # http.server answers a method without a do_ handler with an HTML 501; API Gateway
        # refuses a method it does not take (TRACE, PROPFIND, QUERY...) with a 4xx of its own.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _answer(self) -> None:
        started = time.monotonic()
        gateway = self.server.gateway
        headers = [(str(name), str(value)) for name, value in self.headers.items()]
        body: bytes | None = None  # None: left unread, so the connection cannot be reused
        try:
            length = self._body_length()
            if self.command not in HTTP_METHODS:
                answer = gateway.gateway_response("METHOD_NOT_ALLOWED", str(uuid.uuid4()))
                answer.headers.append(("Allow", ", ".join(HTTP_METHODS)))
            elif length is None:
                answer = gateway.gateway_response("BAD_REQUEST_BODY", str(uuid.uuid4()))
            else:
                body = self._read_body(length, gateway.max_request_bytes)
                answer = gateway.handle(
                    self.command, self.path, headers, body, self.client_address[0]
                )
        except Exception:
            logger.exception(
                "The local API Gateway failed on %s %s", self.command, urlsplit(self.path).path
            )
            answer = gateway.gateway_response("DEFAULT_5XX", str(uuid.uuid4()), status=500)
        self.send_response(answer.status)
        for name, value in answer.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if body is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        logger.info(
            "%s %s -> %d (%.0f ms)",
            self.command,
            urlsplit(self.path).path,
            answer.status,
            (time.monotonic() - started) * 1000,
        )

    def _body_length(self) -> int | None:
        """Content-Length; None when it is not a whole number or the body is chunked."""
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit() or "chunked" in self.headers.get("Transfer-Encoding", ""):
            return None
        return int(declared)

    def _read_body(self, length: int, limit: int) -> bytes | None:
        """The request body, or None when it is larger than `limit` (left unread)."""
        if length > limit:
            return None
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by `_answer` (without query strings)."""
