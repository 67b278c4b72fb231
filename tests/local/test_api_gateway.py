"""The local API Gateway routes, authorizes and answers like API Gateway's REST API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any

import pytest

from dataexport_local.api_gateway import LocalApiGateway
from dataexport_local.lambda_dispatch import LambdaDispatcher
from dataexport_local.template import StackTemplate

BODY_LIMIT = 1024


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def call(method: str, url: str, token: str | None = None, body: bytes | None = None) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


@pytest.fixture(scope="module")
def gateway(stub_template: StackTemplate) -> Iterator[LocalApiGateway]:
    with (
        LambdaDispatcher(stub_template.functions) as dispatcher,
        LocalApiGateway(stub_template, dispatcher, max_request_bytes=BODY_LIMIT) as started,
    ):
        yield started


def test_a_route_with_a_path_parameter_gets_a_rest_proxy_event(gateway: LocalApiGateway) -> None:
    # When an authorized caller asks for one thing, with repeated query parameters
    answer = call("GET", f"{gateway.url}/v1/things/abc%20d?tag=a&tag=b&x=1", "allow-alice")

    # Then the function saw the event API Gateway sends
    assert answer.status == 200
    event = answer.json()
    assert event["resource"] == event["resourcePath"] == "/v1/things/{id}"
    assert event["path"] == "/v1/things/abc d"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "abc d"}
    assert event["queryStringParameters"] == {"tag": "b", "x": "1"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "x": ["1"]}
    assert event["stageVariables"] is None and event["body"] is None
    assert event["stage"] == "test" and event["contextPath"] == "/test/v1/things/abc d"
    assert event["sourceIp"] == "127.0.0.1"
    # with the authorizer's context as strings, plus its principal
    assert event["authorizer"] == {
        "org": "org_test",
        "admin": "true",
        "level": "3",
        "principalId": "alice",
        "integrationLatency": 0,
    }
    assert event["function_name"] == "dataexport-ApiFunction"
    assert 28_000 < event["remaining_ms"] <= 29_000
    # and its headers and multi-value headers reached the client
    assert answer.headers.get_all("X-Multi") == ["a", "b"]
    assert answer.headers["X-Single"] == "one"


def test_a_literal_route_wins_over_a_path_parameter(gateway: LocalApiGateway) -> None:
    answer = call("GET", f"{gateway.url}/v1/things/summary", "allow-alice")
    assert answer.json()["resource"] == "/v1/things/summary"


def test_the_stage_prefixed_url_reaches_the_same_routes(gateway: LocalApiGateway) -> None:
    assert gateway.stage_url.endswith("/test")
    answer = call("GET", f"{gateway.stage_url}/v1/things", "allow-bob")
    assert answer.status == 200
    assert answer.json()["resource"] == "/v1/things"


def test_a_post_body_reaches_the_function_and_its_status_comes_back(
    gateway: LocalApiGateway,
) -> None:
    answer = call("POST", f"{gateway.url}/v1/things", "allow-alice", b'{"name": "caf\xc3\xa9"}')
    assert answer.status == 201
    assert answer.json()["body"] == '{"name": "café"}'
    assert answer.json()["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/nothing"), ("DELETE", "/v1/things"), ("GET", "/")]
)
def test_an_unknown_route_answers_the_template_s_missing_token_response(
    gateway: LocalApiGateway, method: str, path: str
) -> None:
    answer = call(method, gateway.url + path, "allow-alice")
    assert answer.status == 404
    assert answer.json() == {"error_code": "ROUTE_NOT_FOUND", "message": "no route"}


@pytest.mark.parametrize("token", [None, "garbage"])
def test_without_a_valid_token_the_answer_is_the_template_s_401(
    gateway: LocalApiGateway, token: str | None
) -> None:
    answer = call("GET", f"{gateway.url}/v1/things", token)
    assert answer.status == 401
    assert answer.json() == {"error_code": "UNAUTHENTICATED", "message": "token needed"}
    assert answer.headers["Content-Type"] == "application/json"


def test_a_deny_policy_answers_403(gateway: LocalApiGateway) -> None:
    answer = call("GET", f"{gateway.url}/v1/things", "deny")
    assert answer.status == 403
    assert answer.json()["error_code"] == "PERMISSION_DENIED"


def test_a_crashing_authorizer_answers_500_with_the_default_5xx_body(
    gateway: LocalApiGateway,
) -> None:
    answer = call("GET", f"{gateway.url}/v1/things", "crash")
    assert answer.status == 500
    assert answer.json() == {"error_code": "INTERNAL", "message": "internal"}


def test_a_crashing_function_answers_502_with_the_default_5xx_body(
    gateway: LocalApiGateway,
) -> None:
    answer = call("GET", f"{gateway.url}/v1/crash", "allow-alice")
    assert answer.status == 502
    assert answer.json() == {"error_code": "INTERNAL", "message": "internal"}


def test_a_body_over_the_limit_answers_413(gateway: LocalApiGateway) -> None:
    answer = call("POST", f"{gateway.url}/v1/things", "allow-alice", b"x" * (BODY_LIMIT + 1))
    assert answer.status == 413
    assert answer.json()["error_code"] == "TOO_LARGE"


def test_a_route_with_auth_none_needs_no_token(gateway: LocalApiGateway) -> None:
    answer = call("GET", f"{gateway.url}/v1/health")
    assert answer.status == 200
    assert answer.json()["authorizer"] is None
