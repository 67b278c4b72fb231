"""Bearer token verification: only well-formed, correctly signed, unexpired tokens pass."""

import base64
import json
import time

import jwt
import pytest

from dataexport.auth.tokens import bearer_token, verify_token
from dataexport.errors import Unauthenticated
from dataexport.identity import Caller, Role

KEY = "k" * 64


def token(key: str = KEY, algorithm: str = "HS256", **claims: object) -> str:
    now = int(time.time())
    payload: dict[str, object] = {
        "sub": "u1",
        "org": "org_acme",
        "role": "member",
        "permissions": ["DATA_EXPORT"],
        "iat": now,
        "exp": now + 600,
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm)


def unsigned_token(claims: dict[str, object]) -> str:
    """A token claiming `alg: none`, with no signature at all."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_a_valid_token_names_the_caller() -> None:
    caller = verify_token(token(), KEY)
    assert caller == Caller(
        user_id="u1", org_id="org_acme", role=Role.MEMBER, permissions=frozenset({"DATA_EXPORT"})
    )


@pytest.mark.parametrize(
    "bad",
    [
        token(key="another-key-entirely-another-key-entirely"),
        token(exp=int(time.time()) - 3600),
        token(org=None),
        token(role="superuser"),
        token(permissions="DATA_EXPORT"),
        "not-a-jwt",
        unsigned_token({"sub": "u1", "org": "o", "role": "admin", "exp": 9999999999}),
    ],
    ids=[
        "wrong-key",
        "expired",
        "no-org",
        "unknown-role",
        "permissions-not-list",
        "garbage",
        "alg-none",
    ],
)
def test_bad_tokens_are_refused(bad: str) -> None:
    with pytest.raises(Unauthenticated):
        verify_token(bad, KEY)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "bearer"])
def test_headers_without_a_bearer_token_are_refused(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        bearer_token(header)


def test_the_authorizer_context_round_trips() -> None:
    caller = Caller(
        user_id="u1", org_id="o1", role=Role.ADMIN, permissions=frozenset({"B", "DATA_EXPORT"})
    )
    assert Caller.from_authorizer_context(caller.to_authorizer_context()) == caller
