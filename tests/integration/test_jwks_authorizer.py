"""The real authorizer in jwks mode, against an issuer whose JWKS is served over real HTTP.

A thread on 127.0.0.1 plays the OIDC issuer (Cognito or another): it publishes an RSA and an EC
public key. The handler of functions/authorizer/app.py is loaded from its file, as Lambda does,
and invoked with the environment template.yaml gives it for the parameters of a jwks deployment.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from dataexport_local.lambda_dispatch import LocalLambdaContext
from dataexport_local.template import DEFAULT_TEMPLATE_PATH, resolve_template

# Tokens are minted when the tests are collected and checked up to a whole suite later.
VALID_FOR_SECONDS = 6 * 3600

ROOT = Path(__file__).resolve().parents[2]
HANDLER_FILE = ROOT / "functions" / "authorizer" / "app.py"
SAMPLE_EVENT = ROOT / "events" / "authorizer_token.json"

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
AUDIENCE = "app-client-123"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ANOTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AUTHORIZER_VARIABLES = (
    "AUTH_MODE",
    "TOKEN_SECRET_ARN",
    "JWKS_URL",
    "TOKEN_ISSUER",
    "TOKEN_AUDIENCE",
    "ORG_CLAIM",
    "ROLE_CLAIM",
    "PERMISSIONS_CLAIM",
)


# ----------------------------------------------------------------- the issuer


@dataclass
class Issuer:
    """A JWKS endpoint on 127.0.0.1 that counts the requests it answers."""

    jwks_url: str
    requests: list[str] = field(default_factory=list)


def _public_jwks() -> dict[str, Any]:
    return {
        "keys": [
            {
                **RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True),
                "kid": "rsa-1",
                "use": "sig",
            },
            {**ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True), "kid": "ec-1", "use": "sig"},
        ]
    }


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    body = json.dumps(_public_jwks()).encode()
    seen: list[str] = []

    class JwksHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield Issuer(f"http://127.0.0.1:{port}/.well-known/jwks.json", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def issuer_token(
    private_key: Any = RSA_KEY, algorithm: str = "RS256", kid: str = "rsa-1", **claims: object
) -> str:
    now = int(time.time())
    payload: dict[str, object] = {
        "sub": "usr_acme_01",
        "org": "org_acme",
        "role": "admin",
        "permissions": ["DATA_EXPORT"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + VALID_FOR_SECONDS,
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, private_key, algorithm=algorithm, headers={"kid": kid})


def hs256_token() -> str:
    """A shared-key token naming the issuer's key: refused, jwks mode only takes RS256/ES256."""
    claims = {"sub": "u", "org": "o", "role": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**32}
    return jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "rsa-1"})


# ----------------------------------------------------------------- the authorizer


@dataclass
class Authorizer:
    """The deployed handler, its log output, and how to call it the way API Gateway does."""

    module: ModuleType
    log: io.StringIO
    monkeypatch: pytest.MonkeyPatch

    def deploy(self, **parameters: str) -> dict[str, str]:
        """Set the environment template.yaml gives the function for these parameters."""
        environment = template_environment(**parameters)
        for variable in AUTHORIZER_VARIABLES:
            self.monkeypatch.delenv(variable, raising=False)
        for variable, value in environment.items():
            self.monkeypatch.setenv(variable, value)
        self.forget_configuration()
        return environment

    def __call__(self, authorization: str) -> dict[str, Any]:
        event = json.loads(SAMPLE_EVENT.read_text())
        event["authorizationToken"] = authorization
        context = LocalLambdaContext(
            function_name="AuthorizerFunction",
            function_version="$LATEST",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:authorizer",
            memory_limit_in_mb=512,
            aws_request_id=str(uuid.uuid4()),
            log_group_name="/aws/lambda/authorizer",
            log_stream_name="2026/01/01/[$LATEST]test",
            timeout_seconds=10,
        )
        answer: dict[str, Any] = self.module.lambda_handler(event, context)
        return answer

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]

    def forget_configuration(self) -> None:
        """Cold start: the next call reads the environment and builds its key cache afresh."""
        self.module.cached_config.cache_clear()
        sys.modules[self.module.authenticate.__module__].jwks_keys.cache_clear()


def jwks_parameters(jwks_url: str) -> dict[str, str]:
    return {
        "AuthMode": "jwks",
        "JwksUrl": jwks_url,
        "TokenIssuer": ISSUER,
        "TokenAudience": AUDIENCE,
    }


def template_environment(**parameters: str) -> dict[str, str]:
    return dict(_template_environment(tuple(sorted(parameters.items()))))


@functools.cache
def _template_environment(parameters: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    template = resolve_template(
        DEFAULT_TEMPLATE_PATH,
        {
            "DatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
            **dict(parameters),
        },
    )
    return tuple(template.function("AuthorizerFunction").environment.items())


@pytest.fixture(scope="module")
def handler_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dataexport_fn_authorizer_jwks_test", HANDLER_FILE
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def authorizer(
    handler_module: ModuleType, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Authorizer]:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    log = io.StringIO()
    handler = handler_module.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_stream = handler.setStream(log)
    previous_level = handler_module.logger.log_level
    handler_module.logger.setLevel("INFO")
    issuer.requests.clear()
    started = Authorizer(handler_module, log, monkeypatch)
    started.deploy(**jwks_parameters(issuer.jwks_url))
    yield started
    started.forget_configuration()
    handler_module.logger.setLevel(previous_level)
    handler.setStream(previous_stream)


def refuses(authorizer: Authorizer, authorization: str) -> str:
    """The message the authorizer raised (API Gateway answers 401 only for "Unauthorized")."""
    with pytest.raises(Exception) as raised:
        authorizer(authorization)
    assert type(raised.value) is Exception
    return str(raised.value)


# ----------------------------------------------------------------- stories


def test_a_good_issuer_token_is_allowed_with_its_identity_in_the_context(
    authorizer: Authorizer,
) -> None:
    answer = authorizer(f"Bearer {issuer_token()}")

    assert answer["principalId"] == "usr_acme_01"
    assert answer["context"] == {
        "sub": "usr_acme_01",
        "org": "org_acme",
        "role": "admin",
        "permissions": "DATA_EXPORT",
    }
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    # Cached per token by API Gateway, so the policy covers every route of the stage.
    assert statement["Resource"] == [
        "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/*/*"
    ]


def test_an_es256_token_is_allowed_and_the_keys_are_fetched_once(
    authorizer: Authorizer, issuer: Issuer
) -> None:
    for _ in range(3):
        answer = authorizer(f"Bearer {issuer_token(EC_KEY, 'ES256', kid='ec-1', sub='usr_2')}")
        assert answer["principalId"] == "usr_2"
    authorizer(f"Bearer {issuer_token()}")

    assert issuer.requests == ["/.well-known/jwks.json"]


def test_a_jwks_deployment_gets_the_issuer_settings_and_no_shared_key(
    authorizer: Authorizer, issuer: Issuer
) -> None:
    environment = authorizer.deploy(**jwks_parameters(issuer.jwks_url))

    assert environment["AUTH_MODE"] == "jwks"
    assert environment["JWKS_URL"] == issuer.jwks_url
    assert environment["TOKEN_ISSUER"] == ISSUER
    assert environment["TOKEN_AUDIENCE"] == AUDIENCE
    assert "TOKEN_SECRET_ARN" not in environment


def test_cognito_claim_names_are_mapped(authorizer: Authorizer, issuer: Issuer) -> None:
    authorizer.deploy(
        **jwks_parameters(issuer.jwks_url),
        OrgClaim="custom:org",
        RoleClaim="custom:role",
        PermissionsClaim="custom:permissions",
    )
    cognito_style = issuer_token(
        org=None,
        role=None,
        permissions=None,
        **{"custom:org": "org_beta", "custom:role": "member", "custom:permissions": "DATA_EXPORT"},
    )

    answer = authorizer(f"Bearer {cognito_style}")

    assert answer["context"]["org"] == "org_beta"
    assert answer["context"]["role"] == "member"
    assert answer["context"]["permissions"] == "DATA_EXPORT"


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (f"Bearer {issuer_token(exp=int(time.time()) - 3600)}", "expired"),
        (f"Bearer {issuer_token(nbf=int(time.time()) + 3600)}", "not_yet_valid"),
        (f"Bearer {issuer_token(iss='https://evil.example')}", "wrong_issuer"),
        (f"Bearer {issuer_token(aud='another-client')}", "wrong_audience"),
        (f"Bearer {issuer_token(ANOTHER_RSA_KEY)}", "bad_signature"),
        (f"Bearer {issuer_token(kid='nobody')}", "unknown_key"),
        (f"Bearer {issuer_token(role=None)}", "missing_claim"),
        (f"Bearer {issuer_token(role='superuser')}", "bad_claim"),
        (f"Bearer {hs256_token()}", "bad_algorithm"),
        ("Bearer not-a-jwt", "malformed"),
        ("Basic dXNlcjpwYXNz", "no_bearer"),
        ("Bearer " + issuer_token(org="org_acme\x00"), "bad_claim"),
        ("Bearer " + issuer_token(sub="usr\u2028admin"), "bad_claim"),
        (f"Bearer {issuer_token(sub='u' * 129)}", "bad_claim"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "forged-signature",
        "unknown-kid",
        "missing-role",
        "unknown-role",
        "hs256-in-jwks-mode",
        "malformed",
        "not-bearer",
        "control-character-in-org",
        "line-separator-in-sub",
        "overlong-sub",
    ],
)
def test_bad_tokens_get_unauthorized_and_only_the_reason_is_logged(
    authorizer: Authorizer, authorization: str, reason: str
) -> None:
    assert refuses(authorizer, authorization) == "Unauthorized"

    (record,) = authorizer.log_records()
    assert record["level"] == "INFO"
    assert record["reason"] == reason
    credential = authorization.split(" ", 1)[1]
    assert credential not in authorizer.log.getvalue()


def test_ids_with_separators_and_any_script_are_allowed(authorizer: Authorizer) -> None:
    answer = authorizer(f"Bearer {issuer_token(org='org_fuzz#x', sub='x#u1/Zoë-東京')}")

    assert answer["context"]["org"] == "org_fuzz#x"
    assert answer["context"]["sub"] == "x#u1/Zoë-東京"


def test_an_unreachable_jwks_is_a_401_and_an_error_in_the_logs(authorizer: Authorizer) -> None:
    with socket.socket() as placeholder:  # a port that nothing listens on once closed
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    authorizer.deploy(**jwks_parameters(f"http://127.0.0.1:{closed_port}/.well-known/jwks.json"))

    assert refuses(authorizer, f"Bearer {issuer_token()}") == "Unauthorized"

    (record,) = authorizer.log_records()
    assert record["level"] == "ERROR"
    assert record["reason"] == "keys_unavailable"


def test_made_up_key_ids_do_not_hammer_the_issuer(authorizer: Authorizer, issuer: Issuer) -> None:
    for attempt in range(5):
        assert refuses(authorizer, f"Bearer {issuer_token(kid=f'made-up-{attempt}')}") == (
            "Unauthorized"
        )

    # The first fetch starts PyJWKClient's refetch cooldown: unknown kids wait it out.
    assert issuer.requests == ["/.well-known/jwks.json"]


def test_a_jwks_deployment_without_an_issuer_fails_naming_the_variable(
    authorizer: Authorizer, issuer: Issuer
) -> None:
    authorizer.deploy(AuthMode="jwks", JwksUrl=issuer.jwks_url)

    with pytest.raises(Exception, match="TOKEN_ISSUER") as raised:
        authorizer(f"Bearer {issuer_token()}")
    assert type(raised.value).__name__ == "ConfigurationError"
