"""Bearer tokens for the local authorizer: HS256 JWTs signed with the local signing key.

The key is deterministic so that a token minted by `dataexport-local token` in one process is
valid for `dataexport-local serve` in another: it is LOCAL_TOKEN_SECRET when set, else the fixed
development key below. The local runtime stores the same key in the template's TokenSigningSecret.
Never use either outside a laptop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jwt

SIGNING_KEY_ENV: Final = "LOCAL_TOKEN_SECRET"
DEVELOPMENT_SIGNING_KEY: Final = "dataexport-local-development-signing-key-not-a-secret-0001"
TOKEN_SECRET_LOGICAL_ID: Final = "TokenSigningSecret"  # noqa: S105 - a logical id, not a secret
DEFAULT_TTL_SECONDS: Final = 3600
DEFAULT_PERMISSIONS: Final = ("DATA_EXPORT",)
ALGORITHM: Final = "HS256"


def local_signing_key(environ: Mapping[str, str] | None = None) -> str:
    """LOCAL_TOKEN_SECRET if set, else the documented development key."""
    return (environ if environ is not None else os.environ).get(
        SIGNING_KEY_ENV
    ) or DEVELOPMENT_SIGNING_KEY


def mint_token(
    sub: str,
    org: str,
    role: str = "member",
    permissions: Iterable[str] = DEFAULT_PERMISSIONS,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    signing_key: str | None = None,
    now: float | None = None,
) -> str:
    """A signed token with claims sub, org, role, permissions, iat and exp (iat + ttl)."""
    issued_at = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "org": org,
        "role": role,
        "permissions": list(permissions),
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
    }
    return jwt.encode(claims, signing_key or local_signing_key(), algorithm=ALGORITHM)
