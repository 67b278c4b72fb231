"""Bearer JWTs: HS256 signed with the deployment's key; claims sub, org, role, permissions."""

from __future__ import annotations

import jwt
from pydantic import ValidationError

from dataexport.errors import Unauthenticated
from dataexport.identity import Caller

ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["exp", "sub", "org", "role"]
BEARER_PREFIX = "bearer "


def bearer_token(header_value: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header_value or not header_value.lower().startswith(BEARER_PREFIX):
        raise Unauthenticated("A bearer token is required.")
    token = header_value[len(BEARER_PREFIX) :].strip()
    if not token:
        raise Unauthenticated("A bearer token is required.")
    return token


def verify_token(token: str, signing_key: str) -> Caller:
    """The caller a valid token names; Unauthenticated for anything else (never says why)."""
    try:
        claims = jwt.decode(
            token,
            signing_key,
            algorithms=ALGORITHMS,
            options={"require": REQUIRED_CLAIMS},
            leeway=30,
        )
        permissions = claims.get("permissions") or []
        if not isinstance(permissions, list):
            raise Unauthenticated("The token is not valid.")
        return Caller(
            user_id=str(claims["sub"]),
            org_id=str(claims["org"]),
            role=claims["role"],
            permissions=frozenset(str(item) for item in permissions),
        )
    except (jwt.PyJWTError, ValidationError, ValueError):
        raise Unauthenticated("The token is not valid.") from None
