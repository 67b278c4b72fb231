"""Privacy profiles end to end: files downloaded through presigned URLs carry HMACs keyed by the
deployment's secret (read back from Secrets Manager), forced profiles, dropped columns, and the
audit trail (rewritten in Python) under the same transforms."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from typing import Any
from urllib.parse import urlencode

import pyarrow.parquet as pq

from dataexport.privacy import anonymize_ip
from tests.e2e.http_client import ApiClient

ORG = "org_acme"
HASHED = ["id", "user_name", "session_id", "model"]


def hashing_secret(runtime: Any) -> str:
    """The name of the template's HashingSecret, as the local runtime created it in moto."""
    (secret,) = [s for s in runtime.template.secrets if s.logical_id == "HashingSecret"]
    return str(secret.name)


def hashing_key(runtime: Any) -> bytes:
    client = runtime.boto3_client("secretsmanager")
    value = client.get_secret_value(SecretId=hashing_secret(runtime))["SecretString"]
    return str(value).encode()


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def ndjson(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def raw_usage(superuser: Any) -> dict[int, tuple[str, str]]:
    rows = superuser.run(
        "SELECT id, user_name, session_id FROM demo.usage_logs WHERE org_id = :org", org=ORG
    )
    return {int(row[0]): (row[1], row[2]) for row in rows}


def test_hash_identifiers_gives_stable_hmacs_of_the_deployment_secret(
    runtime: Any, superuser: Any
) -> None:
    # Given an admin and the deployment's hashing secret, as Secrets Manager holds it
    admin = ApiClient(runtime.api_url, runtime.token("usr_acme_priv1", ORG, "admin"))
    key = hashing_key(runtime)
    body = {"dataset": "usage_logs", "format": "ndjson", "fields": HASHED}
    body["privacy"] = "hash_identifiers"

    # When the usage logs are exported twice with hash_identifiers
    job, first = admin.export(body)
    _, second = admin.export({**body, "options": {"timezone": "Europe/Paris"}})

    # Then user names and session ids are the HMAC-SHA256 of the raw values under that key
    raw = raw_usage(superuser)
    rows = ndjson(first)
    assert len(rows) == len(raw) > 100
    for row in rows:
        user_name, session_id = raw[row["id"]]
        assert row["user_name"] == hmac_hex(key, user_name)
        assert row["session_id"] == (None if session_id is None else hmac_hex(key, session_id))
    # And the same values hash alike in another export: pseudonyms are stable
    assert first == second
    # And the job, its manifest and the job's view say which profile made the file
    assert job["privacy"] == ["hash_identifiers"]
    schema = {column["name"]: column for column in job["manifest"]["schema"]}
    assert job["manifest"]["privacy"] == ["hash_identifiers"]
    assert schema["user_name"]["privacy"] == "hash_identifiers"
    assert schema["user_name"]["type"] == "string" and "privacy" not in schema["model"]


def test_a_different_secret_gives_different_hashes(runtime: Any, superuser: Any) -> None:
    # Given an export hashed with the deployment's secret
    admin = ApiClient(runtime.api_url, runtime.token("usr_acme_priv2", ORG, "admin"))
    body = {
        "dataset": "usage_logs",
        "format": "ndjson",
        "fields": ["id", "user_name"],
        "privacy": ["hash_identifiers"],
    }
    _, before = admin.export(body)
    client = runtime.boto3_client("secretsmanager")
    arn = hashing_secret(runtime)
    original = client.get_secret_value(SecretId=arn)["SecretString"]
    try:
        # When the secret is rotated and the functions' few-minute cache has run out (their
        # warm workers retired: new execution environments read the secret afresh)
        client.put_secret_value(SecretId=arn, SecretString="a-rotated-hashing-key-for-tests")
        runtime.retire_workers()
        _, after = admin.export({**body, "options": {"timezone": "Asia/Tokyo"}})
    finally:
        client.put_secret_value(SecretId=arn, SecretString=original)
        runtime.retire_workers()

    # Then no user hashes as before, and the new hashes are those of the new key
    old = {row["id"]: row["user_name"] for row in ndjson(before)}
    new = {row["id"]: row["user_name"] for row in ndjson(after)}
    assert old.keys() == new.keys()
    assert not set(old.values()) & set(new.values())
    raw = raw_usage(superuser)
    rotated = b"a-rotated-hashing-key-for-tests"
    assert all(new[id_] == hmac_hex(rotated, raw[id_][0]) for id_ in new)


def test_a_member_is_forced_into_the_datasets_profile(runtime: Any, superuser: Any) -> None:
    # Given a dataset that forces hash_identifiers on members
    member = ApiClient(runtime.api_url, runtime.token("usr_acme_01", ORG, "member"))
    admin = ApiClient(runtime.api_url, runtime.token("usr_acme_priv3", ORG, "admin"))
    key = hashing_key(runtime)
    listed = member.call("GET", "/v1/datasets/usage_logs_pseudonymous").json()
    assert listed["privacy"]["forced"] == ["hash_identifiers"]
    assert listed["privacy"]["transforms"]["hash_identifiers"] == ["user_name", "session_id"]

    # When the member exports it as Parquet asking for no profile at all
    body = {"dataset": "usage_logs_pseudonymous", "format": "parquet", "privacy": []}
    job, content = member.export(body)

    # Then their own user name is hashed anyway, as a string column
    table = pq.read_table(io.BytesIO(content))
    assert str(table.schema.field("user_name").type) == "string"
    own = superuser.run(
        "SELECT DISTINCT user_name FROM demo.usage_logs WHERE org_id = :org AND user_id = :user",
        org=ORG,
        user="usr_acme_01",
    )
    assert set(table.column("user_name").to_pylist()) == {hmac_hex(key, name) for (name,) in own}
    assert job["privacy"] == ["hash_identifiers"]
    # And they cannot filter on the hidden column to learn its values
    refused = member.call(
        "POST",
        "/v1/exports",
        {**body, "filters": [{"field": "user_name", "op": "prefix", "value": "A"}]},
    )
    assert refused.status == 400
    assert refused.json()["detail"]["field"] == "filters[0].field"
    # While an admin, on whom nothing is forced, sees the raw names
    preview = admin.call(
        "GET",
        "/v1/exports/preview?"
        + urlencode(
            {"dataset": "usage_logs_pseudonymous", "format": "ndjson", "fields": "user_name"}
        ),
    ).json()
    assert preview["privacy"] == []
    assert "Alice Johnson" in preview["content"] or "Zoë Müller" in preview["content"]


def test_drop_sensitive_leaves_the_sensitive_columns_out(runtime: Any) -> None:
    admin = ApiClient(runtime.api_url, runtime.token("usr_acme_priv4", ORG, "admin"))

    # When the default fields are exported as CSV with drop_sensitive
    job, content = admin.export(
        {
            "dataset": "usage_logs",
            "format": "csv",
            "privacy": "drop_sensitive",
            "options": {"bom": False},
        },
    )

    # Then neither the header nor the manifest's schema has them
    header = content.decode().splitlines()[0].split(",")
    assert "User" not in header and "Session ID" not in header and "Model" in header
    names = [column["name"] for column in job["manifest"]["schema"]]
    assert "user_name" not in names and "session_id" not in names and len(names) == 16
    # And naming one explicitly is a 400 that names it
    refused = admin.call(
        "POST",
        "/v1/exports",
        {"dataset": "usage_logs", "fields": ["model", "session_id"], "privacy": "drop_sensitive"},
    )
    assert refused.status == 400
    assert refused.json()["detail"]["sensitive"] == ["session_id"]


def test_the_audit_trail_is_rewritten_in_python_alike(runtime: Any) -> None:
    # Given a tenant with audit events: an export created and downloaded
    org = "org_privacy_audit"
    admin = ApiClient(runtime.api_url, runtime.token("ada", org, "admin"))
    admin.export({"dataset": "usage_logs", "fields": ["model"]})
    key = hashing_key(runtime)
    fields = ["seq", "actor_id", "source_ip", "type"]

    # When the audit trail is exported raw, and with hash_identifiers and anonymize_ip
    _, raw = admin.export({"dataset": "audit_events", "format": "ndjson", "fields": fields})
    job, private = admin.export(
        {
            "dataset": "audit_events",
            "format": "ndjson",
            "fields": fields,
            "privacy": ["hash_identifiers", "anonymize_ip"],
        },
    )

    # Then each event's actor is the HMAC and its source IP the network, as in PostgreSQL
    raw_rows = {row["seq"]: row for row in ndjson(raw)}
    # (the second export also holds the events recorded after the first)
    private_rows = [row for row in ndjson(private) if row["seq"] in raw_rows]
    assert len(private_rows) == len(raw_rows) >= 2
    for row in private_rows:
        original = raw_rows[row["seq"]]
        assert row["actor_id"] == hmac_hex(key, original["actor_id"])
        assert row["source_ip"] == anonymize_ip(original["source_ip"])
        assert row["type"] == original["type"]
    assert any(row["source_ip"] for row in private_rows)
    assert job["privacy"] == ["anonymize_ip", "hash_identifiers"]
