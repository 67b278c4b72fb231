"""Privacy profiles: the Python transforms, HMAC key padding, and how a request's profile is
resolved against the catalog (forced transforms, dropped and secret fields, filters)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from dataexport.catalog.loader import Catalog
from dataexport.catalog.model import ColumnType, Dataset, PrivacyTransform
from dataexport.errors import InvalidRequest
from dataexport.export_request import ExportRequest, ResolvedExport, resolve_export
from dataexport.identity import Caller, Role
from dataexport.privacy import HashingKey, anonymize_ip, effective_profile, mask_email
from dataexport.privacy_sql import hashing_settings
from dataexport.query_builder import RowScope
from tests.unit.privacy_samples import people_dataset

MEMBER = Caller(user_id="u1", org_id="org_a", role=Role.MEMBER)
ADMIN = Caller(user_id="a1", org_id="org_a", role=Role.ADMIN)


def catalog_of(dataset: Dataset) -> Catalog:
    return Catalog(by_name={dataset.name: dataset})


def resolve(
    body: dict[str, Any], caller: Caller | None = ADMIN, dataset: Dataset | None = None
) -> ResolvedExport:
    dataset = dataset or people_dataset()
    return resolve_export(
        ExportRequest.model_validate({"dataset": dataset.name, **body}),
        catalog_of(dataset),
        caller,
    )


# ------------------------------------------------------------------ the transforms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.33", "192.0.2.0"),
        ("255.255.255.255", "255.255.255.0"),
        ("2001:db8:1:2::5", "2001:db8:1::"),
        ("2001:DB8:ABCD:12:0:0:0:1", "2001:db8:abcd::"),
        ("::1", "::"),
        ("::ffff:192.0.2.33", "::ffff:192.0.2.0"),
        ("::FFFF:c000:221", "::ffff:192.0.2.0"),
        ("::1.2.3.4", "::"),
        (None, None),
        ("", None),
        ("fe80::1%eth0", None),
        ("192.0.2.0/24", None),
        (" 192.0.2.1", None),
        ("192.168.01.1", None),
        ("10.1", None),
        ("not an address", None),
    ],
)
def test_an_ip_address_keeps_only_its_network(text: str | None, expected: str | None) -> None:
    assert anonymize_ip(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jane@example.com", "j***@example.com"),
        ("a@b@example.com", "a***@example.com"),
        ("élodie@bücher.de", "é***@bücher.de"),
        ("j@x", "j***@x"),
        (None, None),
        ("", None),
        ("@example.com", None),
        ("jane@", None),
        ("no-at-sign", None),
    ],
)
def test_an_email_keeps_its_first_character_and_domain(
    text: str | None, expected: str | None
) -> None:
    assert mask_email(text) == expected


@pytest.mark.parametrize("key", [b"k", b"k" * 64, b"k" * 65, bytes(range(256)) * 3])
def test_the_padded_key_blocks_give_the_hmac_of_rfc_2104(key: bytes) -> None:
    # Given a key shorter than, as long as, or longer than SHA-256's block
    inner, outer = HashingKey(key).pads()
    message = "user_42 ✓".encode()

    # When HMAC is computed from the pads as PostgreSQL does, with plain sha256
    built = hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).hexdigest()

    # Then it is the hmac module's HMAC-SHA256, which the Python path uses
    assert len(inner) == len(outer) == 64
    assert built == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert built == HashingKey(key).digest("user_42 ✓")


def test_hashing_is_stable_per_key_and_differs_across_keys() -> None:
    first, again, other = HashingKey(b"one"), HashingKey(b"one"), HashingKey(b"two")
    assert first.digest("alice") == again.digest("alice")
    assert first.digest("alice") != other.digest("alice")
    assert first.digest("alice") != first.digest("bob")


def test_key_material_never_shows_in_a_repr() -> None:
    key = HashingKey.from_secret_string("s3cr3t-value")
    inner, _ = key.pads()
    assert "s3cr3t" not in repr(key)
    assert inner.hex() not in repr(hashing_settings(key))


# ------------------------------------------------------------------ resolving a request


def test_a_profile_is_one_name_or_a_list_and_forced_transforms_are_added() -> None:
    dataset = people_dataset()
    assert ExportRequest.model_validate({"dataset": "people", "privacy": "mask_email"}).privacy == [
        PrivacyTransform.MASK_EMAIL
    ]
    profile = effective_profile(dataset, [PrivacyTransform.MASK_EMAIL], "member")
    assert profile == {PrivacyTransform.MASK_EMAIL, PrivacyTransform.HASH_IDENTIFIERS}
    assert effective_profile(dataset, [], "admin") == frozenset()


def test_a_member_cannot_ask_the_forced_profile_away() -> None:
    # When a member of a dataset forcing hash_identifiers asks for no profile
    resolved = resolve({"fields": ["id", "user_name", "account", "email"]}, MEMBER)

    # Then the identifiers are still rewritten, and become strings
    assert resolved.privacy.names() == ["hash_identifiers"]
    assert resolved.privacy.rewrites == {
        "user_name": PrivacyTransform.HASH_IDENTIFIERS,
        "account": PrivacyTransform.HASH_IDENTIFIERS,
    }
    types = {column.name: column.type for column in resolved.columns}
    assert types == {
        "id": ColumnType.INTEGER,
        "user_name": ColumnType.STRING,
        "account": ColumnType.STRING,
        "email": ColumnType.STRING,
    }
    assert resolved.privacy.needs_key


def test_drop_sensitive_removes_default_fields_and_refuses_named_ones() -> None:
    resolved = resolve({"privacy": ["drop_sensitive"]})
    assert resolved.fields == ["id", "note"]
    assert resolved.privacy.rewrites == {}

    with pytest.raises(InvalidRequest) as refused:
        resolve({"privacy": ["drop_sensitive"], "fields": ["id", "email", "ip"]})
    assert refused.value.detail["sensitive"] == ["email", "ip"]
    assert refused.value.detail["field"] == "fields"


def test_secret_columns_go_only_to_admins_without_a_profile() -> None:
    # Never a default field
    assert "api_key" not in resolve({}).fields
    # An admin naming one without a profile gets it raw
    assert resolve({"fields": ["id", "api_key"]}).privacy.rewrites == {}
    # A member, or anyone under a profile, is refused with the field named
    with pytest.raises(InvalidRequest, match="api_key"):
        resolve({"fields": ["id", "api_key"]}, MEMBER)
    with pytest.raises(InvalidRequest, match="api_key"):
        resolve({"fields": ["id", "api_key"], "privacy": "anonymize_ip"})


def test_filters_on_hidden_columns_are_refused_except_is_null() -> None:
    hashed = {"privacy": ["hash_identifiers"], "fields": ["id", "note"]}
    with pytest.raises(InvalidRequest) as refused:
        resolve({**hashed, "filters": [{"field": "user_name", "op": "prefix", "value": "a"}]})
    assert refused.value.detail == {"field": "filters[0].field", "sensitive": ["user_name"]}

    assert resolve({**hashed, "filters": [{"field": "user_name", "op": "is_null", "value": True}]})
    assert resolve({**hashed, "filters": [{"field": "note", "op": "eq", "value": "x"}]})
    # Without the profile the same filter is fine
    assert resolve({"filters": [{"field": "user_name", "op": "prefix", "value": "a"}]})
    # A secret is hidden under any profile
    with pytest.raises(InvalidRequest):
        resolve(
            {"privacy": "mask_email", "filters": [{"field": "api_key", "op": "eq", "value": "k"}]}
        )


def test_the_sql_rewrites_only_the_columns_the_profile_covers() -> None:
    resolved = resolve({"fields": ["id", "email", "ip", "user_name"], "privacy": "mask_email"})
    query = resolved.select(RowScope(org_id="org_a"))
    assert "'***@'" in query.sql
    assert "inet" not in query.sql and "sha256" not in query.sql
    assert '"user_name"' in query.sql


def test_aggregations_rewrite_dimensions_and_only_count_hidden_columns() -> None:
    dataset = people_dataset(
        aggregations={
            "dimensions": ["user_name", "email"],
            "measures": {"account": ["count_distinct", "max"]},
        }
    )
    grouped = {
        "aggregate": {
            "group_by": ["user_name"],
            "measures": [{"function": "count_distinct", "field": "account"}],
        },
        "privacy": ["hash_identifiers"],
    }
    resolved = resolve(grouped, dataset=dataset)
    assert resolved.privacy.rewrites == {"user_name": PrivacyTransform.HASH_IDENTIFIERS}

    with pytest.raises(InvalidRequest) as refused:
        resolve(
            {
                **grouped,
                "aggregate": {"measures": [{"function": "max", "field": "account"}]},
            },
            dataset=dataset,
        )
    assert refused.value.detail["field"] == "aggregate.measures[0].field"
    with pytest.raises(InvalidRequest):
        resolve({**grouped, "privacy": ["drop_sensitive"]}, dataset=dataset)


def test_the_catalog_refuses_sensitive_marks_that_cannot_apply() -> None:
    columns = [
        {"name": "id", "type": "integer", "label": "ID"},
        {"name": "ip", "type": "integer", "label": "IP", "sensitive": "ip"},
    ]
    with pytest.raises(ValueError, match="ip columns must be string"):
        people_dataset(columns=columns, filters=[])
    with pytest.raises(ValueError, match=r"privacy\.operator"):
        people_dataset(privacy={"operator": ["drop_sensitive"]})
    with pytest.raises(ValueError, match="secret column"):
        people_dataset(default_fields=["id", "api_key"])
