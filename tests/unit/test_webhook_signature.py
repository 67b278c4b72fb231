"""Webhook signatures: per-tenant keys from the deployment secret, Stripe-style headers."""

from __future__ import annotations

import hashlib
import hmac

from dataexport.webhook_signature import (
    signature_header,
    tenant_signing_key,
    verify_signature,
)

SECRET = "deployment-secret-for-tests"


def test_each_tenant_gets_its_own_stable_key() -> None:
    acme = tenant_signing_key(SECRET, "org_acme")
    assert acme == tenant_signing_key(SECRET, "org_acme")
    assert acme.startswith("whsec_") and len(acme) == len("whsec_") + 64
    assert acme != tenant_signing_key(SECRET, "org_globex")
    assert acme != tenant_signing_key("another-deployment", "org_acme")
    # A key is not the secret, nor does it hold it.
    assert SECRET not in acme


def test_the_header_is_hmac_sha256_of_timestamp_dot_body_under_the_tenant_key() -> None:
    key = tenant_signing_key(SECRET, "org_acme")
    body = b'{"id":"dlv_1","type":"export.completed"}'
    header = signature_header(key, 1_767_225_600, body)
    # What a receiver computes from the documentation alone.
    expected = hmac.new(key.encode(), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1767225600,v1={expected}"


def test_verification_refuses_another_body_key_or_an_old_timestamp() -> None:
    key = tenant_signing_key(SECRET, "org_acme")
    body = b'{"id":"dlv_1"}'
    header = signature_header(key, 1_000_000, body)
    assert verify_signature(key, header, body, now=1_000_100)
    assert not verify_signature(key, header, body + b" ", now=1_000_100)
    assert not verify_signature(tenant_signing_key(SECRET, "org_globex"), header, body, 1_000_100)
    assert not verify_signature(key, header, body, now=1_000_000 + 301)
    assert not verify_signature(key, "v1=abc", body, now=1_000_000)
    assert not verify_signature(key, "t=x,v1=abc", body, now=1_000_000)
