"""Bearer JWTs: how a token is trusted, which claims name the caller, and why one is refused.

A deployment trusts tokens one way (`AuthorizerConfig.auth_mode`):
- `hs256`: signed with the deployment's shared key (TokenSigningSecret); the local runtime and
  the tests mint these.
- `jwks`: signed (RS256 or ES256) by an OIDC issuer such as Cognito, which publishes its public
  keys as a JWKS document.

The accepted algorithms are fixed by the mode, never read from the token's header, so `alg: none`
and an HS256 token "signed" with the issuer's public key are refused like any other forgery.
Every refusal is a TokenRefused whose `reason` is a category for the logs; the caller only ever
learns that the token is not valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any, Final

import jwt

from dataexport.config import AuthMode, AuthorizerConfig
from dataexport.errors import ConfigurationError, Unauthenticated
from dataexport.identity import Caller, Role

HS256_ALGORITHMS: Final = ("HS256",)
JWKS_ALGORITHMS: Final = ("RS256", "ES256")
LEEWAY_SECONDS: Final = 30  # clock skew tolerated on exp, nbf and iat
JWKS_CACHE_SECONDS: Final = 300  # fetched keys are reused this long before the JWKS is refetched
# A token with an unknown `kid` refetches the JWKS at most this often, so a stream of made-up kids
# cannot turn the authorizer into a flood of requests against the issuer.
JWKS_REFRESH_COOLDOWN_SECONDS: Final = 30
JWKS_TIMEOUT_SECONDS: Final = 3  # well inside the authorizer's 10 s timeout
BEARER_PREFIX: Final = "bearer "
_PERMISSION_SEPARATORS: Final = re.compile(r"[\s,]+")


class RefusalReason(StrEnum):
    """Why a token was refused: logged, never told to the caller."""

    NO_BEARER = "no_bearer"  # no `Authorization: Bearer <token>` header
    MALFORMED = "malformed"
    BAD_ALGORITHM = "bad_algorithm"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    MISSING_CLAIM = "missing_claim"
    BAD_CLAIM = "bad_claim"
    KEYS_UNAVAILABLE = "keys_unavailable"


class TokenRefused(Unauthenticated):
    """The request carries no acceptable token. `reason` is for the logs only."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__("A valid bearer token is required.")
        self.reason = reason


class SigningKeysUnavailable(TokenRefused):
    """The issuer's JWKS could not be fetched or read, so no token can be checked right now."""

    def __init__(self) -> None:
        super().__init__(RefusalReason.KEYS_UNAVAILABLE)


# PyJWT's errors, most specific first (InvalidSignatureError is a DecodeError, for instance).
_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], RefusalReason], ...]] = (
    (jwt.ExpiredSignatureError, RefusalReason.EXPIRED),
    (jwt.ImmatureSignatureError, RefusalReason.NOT_YET_VALID),
    (jwt.InvalidIssuerError, RefusalReason.WRONG_ISSUER),
    (jwt.InvalidAudienceError, RefusalReason.WRONG_AUDIENCE),
    (jwt.MissingRequiredClaimError, RefusalReason.MISSING_CLAIM),
    (jwt.InvalidAlgorithmError, RefusalReason.BAD_ALGORITHM),
    (jwt.InvalidSignatureError, RefusalReason.BAD_SIGNATURE),
    (jwt.InvalidKeyError, RefusalReason.BAD_SIGNATURE),
    (jwt.InvalidIssuedAtError, RefusalReason.BAD_CLAIM),
    (jwt.exceptions.InvalidSubjectError, RefusalReason.BAD_CLAIM),
    (jwt.exceptions.InvalidJTIError, RefusalReason.BAD_CLAIM),
)


@dataclass(frozen=True)
class ClaimNames:
    """Where a token carries the caller's tenant, role and permissions (providers differ)."""

    org: str = "org"
    role: str = "role"
    permissions: str = "permissions"


@dataclass(frozen=True)
class TokenRules:
    """What a token must satisfy besides a good signature."""

    algorithms: tuple[str, ...] = HS256_ALGORITHMS
    issuer: str | None = None
    audience: str | None = None
    claims: ClaimNames = field(default_factory=ClaimNames)
    leeway_seconds: int = LEEWAY_SECONDS

    @classmethod
    def from_config(cls, config: AuthorizerConfig) -> TokenRules:
        """The rules of a deployment: algorithms pinned by its mode, issuer, audience, claims."""
        return cls(
            algorithms=JWKS_ALGORITHMS if config.auth_mode is AuthMode.JWKS else HS256_ALGORITHMS,
            issuer=config.token_issuer,
            audience=config.token_audience,
            claims=ClaimNames(
                org=config.org_claim, role=config.role_claim, permissions=config.permissions_claim
            ),
        )


def bearer_token(header_value: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header_value or not header_value.lower().startswith(BEARER_PREFIX):
        raise TokenRefused(RefusalReason.NO_BEARER)
    token = header_value[len(BEARER_PREFIX) :].strip()
    if not token:
        raise TokenRefused(RefusalReason.NO_BEARER)
    return token


def verify_token(token: str, key: str | jwt.PyJWK, rules: TokenRules | None = None) -> Caller:
    """The caller a valid token names; TokenRefused (saying why, for the logs) for anything else.

    `key` is the HS256 shared key, or the issuer's public key for this token (`JwksKeys.key_for`).
    exp, sub and the org and role claims are required; nbf and iat are honoured when present;
    iss and aud are required and checked when the rules name them.
    """
    rules = rules or TokenRules()
    names = rules.claims
    required = ["exp", "sub", names.org, names.role]
    if rules.issuer is not None:
        required.append("iss")
    if rules.audience is not None:
        required.append("aud")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(rules.algorithms),
            issuer=rules.issuer,
            audience=rules.audience,
            # Without a configured audience, a token's `aud` (meant for someone) is not checked.
            options={"require": required, "verify_aud": rules.audience is not None},
            leeway=rules.leeway_seconds,
        )
    except jwt.PyJWTError as exc:
        raise TokenRefused(_reason(exc)) from None
    return _caller(claims, names)


class JwksKeys:
    """An issuer's public keys: fetched from its JWKS URL, cached, refetched for a new `kid`."""

    def __init__(self, client: jwt.PyJWKClient) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> JwksKeys:
        return cls(
            jwt.PyJWKClient(
                url,
                cache_jwk_set=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
                cooldown_duration=JWKS_REFRESH_COOLDOWN_SECONDS,
            )
        )

    def key_for(self, token: str) -> jwt.PyJWK:
        """The issuer's key named by the token's `kid`.

        TokenRefused when the token is malformed or names no key of the issuer;
        SigningKeysUnavailable when the JWKS cannot be fetched or read.
        """
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenRefused(RefusalReason.MALFORMED) from None
        if not isinstance(kid, str) or not kid:
            raise TokenRefused(RefusalReason.UNKNOWN_KEY)
        # The cached set first (fetched when stale), so that an issuer fault (unreachable, not
        # JSON, no usable key) is told apart from a kid the issuer does not know. ValueError and
        # OSError: a body that is not JSON, a connection dropped while reading it.
        try:
            self._client.get_signing_keys()
        except (jwt.PyJWTError, ValueError, OSError) as exc:
            raise SigningKeysUnavailable() from exc
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise SigningKeysUnavailable() from exc
        except jwt.PyJWKClientError:
            raise TokenRefused(RefusalReason.UNKNOWN_KEY) from None
        except (jwt.PyJWTError, ValueError, OSError) as exc:
            raise SigningKeysUnavailable() from exc


@cache
def jwks_keys(url: str) -> JwksKeys:
    """One key source per JWKS URL and process, so its cache outlives each invocation."""
    return JwksKeys.from_url(url)


def authenticate(
    authorization: str | None, config: AuthorizerConfig, shared_key: Callable[[], str]
) -> Caller:
    """The caller of an `Authorization` header, checked the way the deployment's config says.

    `shared_key` fetches the HS256 key; it is only called in hs256 mode.
    """
    token = bearer_token(authorization)
    key: str | jwt.PyJWK
    if config.auth_mode is AuthMode.JWKS:
        if config.jwks_url is None:
            raise ConfigurationError("JWKS_URL is required when AUTH_MODE is jwks")
        key = jwks_keys(config.jwks_url).key_for(token)
    else:
        key = shared_key()
    return verify_token(token, key, TokenRules.from_config(config))


def _reason(exc: jwt.PyJWTError) -> RefusalReason:
    for error_type, reason in _REASONS:
        if isinstance(exc, error_type):
            return reason
    return RefusalReason.MALFORMED


def _caller(claims: Mapping[str, Any], names: ClaimNames) -> Caller:
    sub, org, role = claims["sub"], claims[names.org], claims[names.role]
    if not (isinstance(sub, str) and isinstance(org, str) and isinstance(role, str)):
        raise TokenRefused(RefusalReason.BAD_CLAIM)
    try:
        return Caller(
            user_id=sub,
            org_id=org,
            role=Role(role),
            permissions=_permissions(claims.get(names.permissions)),
        )
    except ValueError:  # an unknown role; an empty, overlong or unprintable id (pydantic)
        raise TokenRefused(RefusalReason.BAD_CLAIM) from None


def _permissions(value: object) -> frozenset[str]:
    """A list of names, or one string of names separated by spaces or commas (OAuth `scope`)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(name for name in _PERMISSION_SEPARATORS.split(value) if name)
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return frozenset(value)
    raise TokenRefused(RefusalReason.BAD_CLAIM)
