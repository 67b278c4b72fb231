"""Store keys: no two different identities (or tuples of key parts) ever share a key.

Claims are whatever a token issuer says, so the parts are generated: any text, weighted
towards the characters that separate parts (`#`, `/`), escape them (`%`) or step out of an S3
folder (`.`). The older keys joined claims with `#`, so org `org_fuzz#x` with sub `u1` and org
`org_fuzz` with sub `x#u1` shared one rate bucket; regrouping the same pieces must now always
give different keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import unquote

from hypothesis import assume, given
from hypothesis import strategies as st

from dataexport.adapters.dynamodb_models import sortable_utc
from dataexport.store_keys import (
    composite_key,
    export_prefix,
    idempotency_key,
    job_owner_key,
    key_prefix,
    live_request_key,
    object_prefix,
    principal_key,
    rate_bucket_key,
    retention_key,
    run_key,
    running_slots_key,
    slot_key,
)

# Any character, with the separators, the escape and dots drawn often.
tricky_text = st.text(
    alphabet=st.one_of(st.sampled_from("#/%.2F3E5"), st.characters()), max_size=12
)
claim = tricky_text.filter(bool)
parts = st.lists(tricky_text, max_size=5)
TWO_CLAIM_KEYS = [rate_bucket_key, live_request_key, job_owner_key, export_prefix]


def split_key(key: str, separator: str = "#") -> list[str]:
    """Read a key back into its parts: proof that nothing else maps to the same key."""
    return [unquote(part) for part in key.split(separator)]


def test_the_reported_collision_is_gone() -> None:
    first, second = ("org_fuzz#x", "u1"), ("org_fuzz", "x#u1")
    for key in TWO_CLAIM_KEYS:
        assert key(*first) != key(*second), key.__name__
    assert rate_bucket_key(*first) == "rate#org_fuzz%23x#u1"
    assert rate_bucket_key(*second) == "rate#org_fuzz#x%23u1"


def test_plain_ids_keep_the_keys_they_always_had() -> None:
    # Ids without `#`, `/` or `%` (every id seen so far) find the items stored before.
    assert rate_bucket_key("org_acme", "usr_acme_01") == "rate#org_acme#usr_acme_01"
    assert job_owner_key("org_acme", "mia") == "org_acme#mia"
    assert retention_key("org_acme") == "retention#org_acme"
    assert export_prefix("org_acme", "exp_1") == "exports/org_acme/exp_1/"


@given(parts)
def test_a_key_reads_back_into_exactly_its_parts(values: list[str]) -> None:
    assume(values)
    assert split_key(composite_key(*values)) == values
    assert split_key(object_prefix(*values), "/")[:-1] == values


@given(parts, parts)
def test_different_parts_never_share_a_key(first: list[str], second: list[str]) -> None:
    assume(first and second and first != second)
    assert composite_key(*first) != composite_key(*second)
    assert object_prefix(*first) != object_prefix(*second)


@given(st.lists(claim, min_size=2, max_size=6), st.data())
def test_regrouping_the_same_pieces_never_gives_the_same_key(
    pieces: list[str], data: st.DataObject
) -> None:
    # Given two identities whose org and sub, joined with `#`, spell the same text
    first_cut = data.draw(st.integers(1, len(pieces) - 1))
    second_cut = data.draw(st.integers(1, len(pieces) - 1).filter(lambda cut: cut != first_cut))
    first = ("#".join(pieces[:first_cut]), "#".join(pieces[first_cut:]))
    second = ("#".join(pieces[:second_cut]), "#".join(pieces[second_cut:]))
    assert first != second
    # Then no key built from them is shared
    for key in TWO_CLAIM_KEYS:
        assert key(*first) != key(*second), key.__name__
    assert idempotency_key(*first, "k") != idempotency_key(*second, "k")


@given(st.tuples(claim, claim), st.tuples(claim, claim), tricky_text, tricky_text)
def test_distinct_identities_share_no_key(
    first: tuple[str, str], second: tuple[str, str], key: str, other_key: str
) -> None:
    assume(first != second)
    for build in TWO_CLAIM_KEYS:
        assert build(*first) != build(*second), build.__name__
    assert idempotency_key(*first, key) != idempotency_key(*second, other_key)
    if first[0] != second[0]:
        for build_one in (running_slots_key, principal_key, retention_key):
            assert build_one(first[0]) != build_one(second[0])


@given(claim, claim)
def test_keys_of_different_kinds_never_meet(org: str, user: str) -> None:
    # They share the ControlTable: a rate bucket is never some tenant's live requests, etc.
    keys = [
        rate_bucket_key(org, user),
        live_request_key(org, user),
        running_slots_key(org),
        principal_key(org),
        retention_key(org),
        running_slots_key(user),
        principal_key(user),
        retention_key(user),
    ]
    assert len(set(keys[:5])) == 5
    assert len(set(keys[:2] + keys[5:])) == 5


@given(st.lists(tricky_text, min_size=1, max_size=5), st.data())
def test_a_prefix_begins_exactly_the_keys_with_those_leading_parts(
    values: list[str], data: st.DataObject
) -> None:
    # Leading parts of the key itself, or any others (often the same pieces regrouped)
    leading = data.draw(
        st.one_of(
            st.integers(1, len(values)).map(lambda count: values[:count]),
            st.lists(tricky_text, min_size=1, max_size=5),
            st.just(["#".join(values[:2]), *values[2:]]),
        )
    )
    is_leading = len(leading) < len(values) and values[: len(leading)] == leading
    assert composite_key(*values).startswith(key_prefix(*leading)) == is_leading
    assert object_prefix(*values).startswith(object_prefix(*leading)) == (
        len(leading) <= len(values) and values[: len(leading)] == leading
    )


@given(claim, claim)
def test_no_tenant_folder_holds_another_tenants_exports(org: str, other_org: str) -> None:
    # S3 is read and deleted by prefix: exports of org `a/exp_1` must not lie under org `a`'s
    # job `exp_1`, and `..` must not read as a step out of the folder.
    assume(org != other_org)
    assert not export_prefix(other_org, "exp_2").startswith(export_prefix(org, "exp_1"))
    assert not export_prefix(other_org, "exp_2").startswith(object_prefix("exports", org))
    assert all(segment not in {".", ".."} for segment in export_prefix(org, "exp_1").split("/"))


@given(
    st.datetimes(datetime(1970, 1, 1), timezones=st.just(UTC)),
    st.datetimes(datetime(1970, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["schedule", "manual"]),
    st.sampled_from(["schedule", "manual"]),
)
def test_run_keys_sort_by_the_time_they_were_scheduled_for(
    earlier: datetime, later: datetime, trigger: str, other_trigger: str
) -> None:
    assume(earlier < later)
    assert run_key(sortable_utc(earlier), trigger) < run_key(sortable_utc(later), other_trigger)
    assert run_key(sortable_utc(earlier), trigger).startswith(key_prefix("run"))


def test_slot_keys_sort_by_their_number() -> None:
    keys = [slot_key(index) for index in range(0, 10_000, 7)]
    assert keys == sorted(keys)
