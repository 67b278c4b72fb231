"""Local bearer tokens: HS256, the agreed claims, a deterministic key."""

from __future__ import annotations

import jwt
import pytest

from dataexport_local.tokens import DEVELOPMENT_SIGNING_KEY, local_signing_key, mint_token


def test_a_minted_token_carries_the_claims_the_authorizer_requires() -> None:
    token = mint_token(
        "usr_1", "org_1", "admin", ["DATA_EXPORT", "AUDIT"], ttl_seconds=60, now=1000
    )
    claims = jwt.decode(
        token, DEVELOPMENT_SIGNING_KEY, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims == {
        "sub": "usr_1",
        "org": "org_1",
        "role": "admin",
        "permissions": ["DATA_EXPORT", "AUDIT"],
        "iat": 1000,
        "exp": 1060,
    }


def test_the_signing_key_is_the_environment_s_or_the_documented_development_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOCAL_TOKEN_SECRET", raising=False)
    assert local_signing_key() == DEVELOPMENT_SIGNING_KEY
    monkeypatch.setenv("LOCAL_TOKEN_SECRET", "k" * 48)
    assert local_signing_key() == "k" * 48
    token = mint_token("usr_1", "org_1")
    assert jwt.decode(token, "k" * 48, algorithms=["HS256"])["role"] == "member"
