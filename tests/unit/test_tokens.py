"""Bearer token verification: only well-formed, correctly signed, unexpired tokens pass.

Two ways to trust a token: HS256 with the deployment's shared key, and RS256/ES256 tokens of an
OIDC issuer whose public keys come from its JWKS (served from memory here; over HTTP in
tests/integration/test_jwks_authorizer.py).
"""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from dataexport.auth.tokens import (
    JWKS_ALGORITHMS,
    ClaimNames,
    JwksKeys,
    RefusalReason,
    SigningKeysUnavailable,
    TokenRefused,
    TokenRules,
    authenticate,
    bearer_token,
    verify_token,
)
from dataexport.config import AuthMode, AuthorizerConfig, read_config
from dataexport.errors import ConfigurationError, Unauthenticated
from dataexport.identity import MAX_ID_LENGTH, PLATFORM_ORG_ID, Caller, Role

# Tokens are minted when the tests are collected and checked up to a whole suite later.
VALID_FOR_SECONDS = 6 * 3600

KEY = "k" * 64

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
AUDIENCE = "app-client-123"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ANOTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KID = "rsa-1"
EC_KID = "ec-1"
JWKS_RULES = TokenRules(algorithms=JWKS_ALGORITHMS, issuer=ISSUER, audience=AUDIENCE)
MEMBER = Caller(
    user_id="u1", org_id="org_acme", role=Role.MEMBER, permissions=frozenset({"DATA_EXPORT"})
)


def token(key: str = KEY, algorithm: str = "HS256", **claims: object) -> str:
    now = int(time.time())
    payload: dict[str, object] = {
        "sub": "u1",
        "org": "org_acme",
        "role": "member",
        "permissions": ["DATA_EXPORT"],
        "iat": now,
        "exp": now + VALID_FOR_SECONDS,
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm)


def _part(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unsigned_token(claims: dict[str, object], kid: str | None = None) -> str:
    """A token claiming `alg: none`, with no signature at all."""
    header: dict[str, object] = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return f"{_part(header)}.{_part(claims)}."


def issuer_claims(**claims: object) -> dict[str, object]:
    now = int(time.time())
    payload: dict[str, object] = {
        "sub": "u1",
        "org": "org_acme",
        "role": "member",
        "permissions": ["DATA_EXPORT"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + VALID_FOR_SECONDS,
    }
    payload.update(claims)
    return {k: v for k, v in payload.items() if v is not None}


def issuer_token(
    private_key: Any = RSA_KEY,
    algorithm: str = "RS256",
    kid: str | None = RSA_KID,
    **claims: object,
) -> str:
    """A token as the OIDC issuer signs it (RS256 with its RSA key unless told otherwise)."""
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(issuer_claims(**claims), private_key, algorithm=algorithm, headers=headers)


def hs256_with_public_key(**claims: object) -> str:
    """The algorithm-confusion forgery: HS256, keyed with the issuer's (public) RSA key in PEM."""
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': RSA_KID})}.{_part(issuer_claims(**claims))}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_part(signature)}"


def public_jwks() -> dict[str, Any]:
    rsa_jwk = RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    return {
        "keys": [
            {**rsa_jwk, "kid": RSA_KID, "use": "sig", "alg": "RS256"},
            {**ec_jwk, "kid": EC_KID, "use": "sig", "alg": "ES256"},
        ]
    }


class InMemoryJwks(jwt.PyJWKClient):
    """The issuer's JWKS endpoint, answered from memory instead of the network."""

    def __init__(self, document: Any) -> None:
        super().__init__("https://issuer.example/.well-known/jwks.json")
        self.document = document

    def fetch_data(self) -> Any:
        return self.document


class UnreachableJwks(jwt.PyJWKClient):
    """An issuer whose JWKS endpoint cannot be reached."""

    def __init__(self) -> None:
        super().__init__("https://issuer.example/.well-known/jwks.json")

    def fetch_data(self) -> Any:
        raise jwt.PyJWKClientConnectionError("connection refused")


def verify_from_issuer(bad_or_good: str, rules: TokenRules = JWKS_RULES) -> Caller:
    keys = JwksKeys(InMemoryJwks(public_jwks()))
    return verify_token(bad_or_good, keys.key_for(bad_or_good), rules)


# ----------------------------------------------------------------- HS256 with the shared key


def test_a_valid_token_names_the_caller() -> None:
    caller = verify_token(token(), KEY)
    assert caller == MEMBER


@pytest.mark.parametrize(
    "bad",
    [
        token(key="another-key-entirely-another-key-entirely"),
        token(exp=int(time.time()) - 3600),
        token(org=None),
        token(role="superuser"),
        token(permissions={"DATA_EXPORT": True}),
        token(permissions=["A,DATA_EXPORT"]),
        "not-a-jwt",
        unsigned_token({"sub": "u1", "org": "o", "role": "admin", "exp": 9999999999}),
        issuer_token(),
    ],
    ids=[
        "wrong-key",
        "expired",
        "no-org",
        "unknown-role",
        "permissions-not-list-or-string",
        "permission-name-with-comma",
        "garbage",
        "alg-none",
        "rs256-in-hs256-mode",
    ],
)
def test_bad_tokens_are_refused(bad: str) -> None:
    with pytest.raises(Unauthenticated):
        verify_token(bad, KEY)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "bearer"])
def test_headers_without_a_bearer_token_are_refused(header: str | None) -> None:
    with pytest.raises(TokenRefused) as refused:
        bearer_token(header)
    assert refused.value.reason is RefusalReason.NO_BEARER


def test_the_authorizer_context_round_trips() -> None:
    caller = Caller(
        user_id="u1", org_id="o1", role=Role.ADMIN, permissions=frozenset({"B", "DATA_EXPORT"})
    )
    assert Caller.from_authorizer_context(caller.to_authorizer_context()) == caller


def test_a_permission_name_cannot_smuggle_another_through_the_context() -> None:
    # The context joins permissions with commas, so "X,DATA_EXPORT" would come out as two.
    with pytest.raises(ValueError, match="permission"):
        Caller(
            user_id="u1", org_id="o1", role=Role.MEMBER, permissions=frozenset({"X,DATA_EXPORT"})
        )


# Ids are parts of store keys, log lines and S3 keys: nothing unprintable, nothing absurdly long.
UNPRINTABLE = {
    "nul": "\x00",
    "newline": "\n",
    "escape": "\x1b[31m",
    "del": "\x7f",
    "c1-next-line": "\x85",
    "zero-width-space": "\u200b",
    "right-to-left-override": "\u202e",
    "line-separator": "\u2028",
    "paragraph-separator": "\u2029",
    "byte-order-mark": "\ufeff",
}


@pytest.mark.parametrize("claim", ["sub", "org"])
@pytest.mark.parametrize("character", list(UNPRINTABLE.values()), ids=list(UNPRINTABLE))
def test_ids_holding_unprintable_characters_are_refused(claim: str, character: str) -> None:
    with pytest.raises(TokenRefused) as refused:
        verify_token(token(**{claim: f"org_acme{character}x"}), KEY)
    assert refused.value.reason is RefusalReason.BAD_CLAIM


@pytest.mark.parametrize("claim", ["sub", "org"])
def test_ids_longer_than_the_limit_are_refused(claim: str) -> None:
    assert verify_token(token(**{claim: "x" * MAX_ID_LENGTH}), KEY)
    with pytest.raises(TokenRefused) as refused:
        verify_token(token(**{claim: "x" * (MAX_ID_LENGTH + 1)}), KEY)
    assert refused.value.reason is RefusalReason.BAD_CLAIM


def test_no_token_may_name_the_platforms_own_audit_chain_as_its_tenant() -> None:
    with pytest.raises(TokenRefused) as refused:
        verify_token(token(org=PLATFORM_ORG_ID, role="admin"), KEY)
    assert refused.value.reason is RefusalReason.BAD_CLAIM


@pytest.mark.parametrize(
    ("sub", "org"),
    [("u1", "org_fuzz#x"), ("x#u1", "org_fuzz"), ("a/../b", "../org"), ("Zoë 東京", "Ünïcode")],
)
def test_separators_spaces_and_letters_of_any_script_are_legal_ids(sub: str, org: str) -> None:
    caller = verify_token(token(sub=sub, org=org), KEY)
    assert (caller.user_id, caller.org_id) == (sub, org)


# ----------------------------------------------------------------- RS256/ES256 from a JWKS


def test_a_valid_rs256_token_of_the_issuer_names_the_caller() -> None:
    assert verify_from_issuer(issuer_token()) == MEMBER


def test_a_valid_es256_token_of_the_issuer_names_the_caller() -> None:
    assert verify_from_issuer(issuer_token(EC_KEY, "ES256", kid=EC_KID)) == MEMBER


def test_a_token_within_the_clock_skew_leeway_passes() -> None:
    now = int(time.time())
    assert verify_from_issuer(issuer_token(exp=now - 10, nbf=now + 10, iat=now + 10)) == MEMBER


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            issuer_token(iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"),
            "wrong_issuer",
        ),
        (issuer_token(iss=None), "missing_claim"),
        (issuer_token(aud="another-app-client"), "wrong_audience"),
        (issuer_token(aud=None), "missing_claim"),
        (issuer_token(exp=int(time.time()) - 3600), "expired"),
        (issuer_token(exp=None), "missing_claim"),
        (issuer_token(nbf=int(time.time()) + 3600), "not_yet_valid"),
        (issuer_token(iat=int(time.time()) + 3600), "not_yet_valid"),
        (unsigned_token(issuer_claims(), kid=RSA_KID), "bad_algorithm"),
        (hs256_with_public_key(), "bad_algorithm"),
        (issuer_token(EC_KEY, "ES256", kid=RSA_KID), "bad_algorithm"),
        (issuer_token(RSA_KEY, "RS512"), "bad_algorithm"),
        (issuer_token(ANOTHER_RSA_KEY), "bad_signature"),
        (issuer_token(kid="rotated-away"), "unknown_key"),
        (issuer_token(kid=None), "unknown_key"),
        (issuer_token(role=None), "missing_claim"),
        (issuer_token(role="root"), "bad_claim"),
        (issuer_token(sub=None), "missing_claim"),
        (issuer_token(sub=42), "bad_claim"),
        (issuer_token(org=""), "bad_claim"),
        ("not.a.jwt", "malformed"),
    ],
    ids=[
        "wrong-issuer",
        "no-issuer",
        "wrong-audience",
        "no-audience",
        "expired",
        "no-expiry",
        "not-yet-valid",
        "issued-in-the-future",
        "alg-none",
        "hs256-signed-with-the-public-key",
        "es256-under-an-rsa-kid",
        "algorithm-not-pinned",
        "signed-by-another-key",
        "unknown-kid",
        "no-kid",
        "missing-role",
        "unknown-role",
        "missing-sub",
        "sub-not-a-string",
        "empty-org",
        "malformed",
    ],
)
def test_bad_issuer_tokens_are_refused_with_a_reason_for_the_logs(bad: str, reason: str) -> None:
    with pytest.raises(TokenRefused) as refused:
        verify_from_issuer(bad)
    assert refused.value.reason == reason


def test_without_a_configured_audience_any_aud_is_accepted() -> None:
    rules = TokenRules(algorithms=JWKS_ALGORITHMS, issuer=ISSUER)
    assert verify_from_issuer(issuer_token(aud="whatever-client"), rules) == MEMBER


def test_claims_are_read_under_the_names_the_provider_uses() -> None:
    # Cognito: custom attributes; OAuth: a space separated `scope` (commas work too).
    rules = TokenRules(
        algorithms=JWKS_ALGORITHMS,
        issuer=ISSUER,
        audience=AUDIENCE,
        claims=ClaimNames(org="custom:org", role="custom:role", permissions="scope"),
    )
    mapped = issuer_token(
        org=None,
        role=None,
        permissions=None,
        **{
            "custom:org": "org_acme",
            "custom:role": "admin",
            "scope": "openid DATA_EXPORT,profile",
        },
    )

    caller = verify_from_issuer(mapped, rules)

    assert caller == Caller(
        user_id="u1",
        org_id="org_acme",
        role=Role.ADMIN,
        permissions=frozenset({"openid", "DATA_EXPORT", "profile"}),
    )


def test_a_mapped_claim_does_not_fall_back_to_our_own_claim_name() -> None:
    rules = TokenRules(
        algorithms=JWKS_ALGORITHMS, issuer=ISSUER, claims=ClaimNames(org="custom:org")
    )
    with pytest.raises(TokenRefused) as refused:
        verify_from_issuer(issuer_token(org="org_acme"), rules)
    assert refused.value.reason is RefusalReason.MISSING_CLAIM


def test_a_token_without_permissions_grants_none() -> None:
    caller = verify_from_issuer(issuer_token(permissions=None))
    assert caller.permissions == frozenset()


def test_an_unreachable_jwks_is_reported_as_such_not_as_a_bad_token() -> None:
    keys = JwksKeys(UnreachableJwks())
    with pytest.raises(SigningKeysUnavailable) as unavailable:
        keys.key_for(issuer_token())
    assert unavailable.value.reason is RefusalReason.KEYS_UNAVAILABLE
    assert isinstance(unavailable.value, Unauthenticated)  # still a 401 wherever it surfaces


@pytest.mark.parametrize(
    "document", [["not", "an", "object"], {"keys": []}, {"keys": [{"kty": "nonsense"}]}]
)
def test_a_broken_jwks_document_is_reported_as_unavailable_keys(document: Any) -> None:
    keys = JwksKeys(InMemoryJwks(document))
    with pytest.raises(SigningKeysUnavailable):
        keys.key_for(issuer_token())


def test_a_key_the_issuer_adds_later_is_fetched_when_a_token_names_it() -> None:
    document: dict[str, Any] = {"keys": public_jwks()["keys"][:1]}  # the RSA key only
    client = InMemoryJwks(document)
    keys = JwksKeys(client)
    assert keys.key_for(issuer_token()).key_id == RSA_KID
    document["keys"] = public_jwks()["keys"]  # the issuer rotates in its EC key
    client.cooldown_duration = 0  # the refetch cooldown is PyJWT's; not under test here

    assert keys.key_for(issuer_token(EC_KEY, "ES256", kid=EC_KID)).key_id == EC_KID


# ----------------------------------------------------------------- configuration and wiring


def authorizer_config(**environ: str) -> AuthorizerConfig:
    return AuthorizerConfig.model_validate(environ)


def test_hs256_mode_checks_tokens_with_the_shared_key_only() -> None:
    config = authorizer_config(TOKEN_SECRET_ARN="arn:aws:secretsmanager:eu-west-1:1:secret:k")
    assert config.auth_mode is AuthMode.HS256

    assert authenticate(f"Bearer {token()}", config, shared_key=lambda: KEY) == MEMBER
    with pytest.raises(TokenRefused) as refused:
        authenticate(f"Bearer {issuer_token()}", config, shared_key=lambda: KEY)
    assert refused.value.reason is RefusalReason.BAD_ALGORITHM


def test_jwks_mode_pins_rs256_and_es256_and_maps_the_claims() -> None:
    config = authorizer_config(
        AUTH_MODE="jwks",
        JWKS_URL="https://issuer.example/.well-known/jwks.json",
        TOKEN_ISSUER=ISSUER,
        TOKEN_AUDIENCE="",
        ORG_CLAIM="custom:org",
        PERMISSIONS_CLAIM="scope",
    )

    rules = TokenRules.from_config(config)

    assert rules == TokenRules(
        algorithms=("RS256", "ES256"),
        issuer=ISSUER,
        audience=None,
        claims=ClaimNames(org="custom:org", role="role", permissions="scope"),
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "TOKEN_SECRET_ARN"),
        ({"AUTH_MODE": "jwks", "TOKEN_ISSUER": ISSUER}, "JWKS_URL"),
        (
            {"AUTH_MODE": "jwks", "JWKS_URL": "https://i.example/jwks", "TOKEN_ISSUER": " "},
            "TOKEN_ISSUER",
        ),
        (
            {"AUTH_MODE": "jwks", "JWKS_URL": "http://i.example/jwks", "TOKEN_ISSUER": ISSUER},
            "JWKS_URL",
        ),
        ({"AUTH_MODE": "rs256", "TOKEN_SECRET_ARN": "arn"}, "AUTH_MODE"),
    ],
    ids=[
        "hs256-without-secret",
        "jwks-without-url",
        "jwks-without-issuer",
        "jwks-over-http",
        "unknown-mode",
    ],
)
def test_a_bad_authorizer_environment_names_the_variable(
    environ: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AUTH_MODE", "TOKEN_SECRET_ARN", "JWKS_URL", "TOKEN_ISSUER"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError, match=named):
        read_config(AuthorizerConfig)


def test_a_loopback_jwks_may_be_served_over_plain_http() -> None:
    config = authorizer_config(
        AUTH_MODE="jwks", JWKS_URL="http://127.0.0.1:8080/jwks.json", TOKEN_ISSUER=ISSUER
    )
    assert config.jwks_url == "http://127.0.0.1:8080/jwks.json"
    assert config.token_secret_arn is None
