"""Paging cursors: what a listing hands out opens again only for that listing and caller."""

from __future__ import annotations

from dataexport.cursor_seal import CursorSeal
from dataexport.errors import InvalidRequest

SEAL = CursorSeal.from_deployment_secret("deployment-secret")
SCOPE = ("exports", "org_a", "user_1")
INNER = "eyJvcmdfaWQiOiB7IlMiOiAib3JnX2EifX0"


def refused(sealed: str, scope: tuple[str, ...] = SCOPE) -> bool:
    try:
        SEAL.open(sealed, scope)
    except InvalidRequest as error:
        assert error.field == "cursor"
        return True
    return False


def test_a_sealed_cursor_opens_to_the_stores_cursor() -> None:
    sealed = SEAL.seal(INNER, SCOPE)
    assert sealed is not None and sealed != INNER
    assert SEAL.open(sealed, SCOPE) == INNER


def test_no_cursor_stays_no_cursor() -> None:
    assert SEAL.seal(None, SCOPE) is None
    assert SEAL.open(None, SCOPE) is None
    assert SEAL.open("", SCOPE) is None


def test_forged_truncated_or_edited_cursors_are_refused() -> None:
    sealed = SEAL.seal(INNER, SCOPE)
    assert sealed is not None
    inner, _, tag = sealed.rpartition(".")
    for forged in (
        INNER,  # a bare store cursor
        sealed[:-1],
        sealed[: len(sealed) // 2],
        f"{inner}x.{tag}",  # the start key edited, the tag kept
        f"{inner}.",
        f".{tag}",
        "...",
    ):
        assert refused(forged), forged


def test_a_cursor_is_refused_in_another_listing_or_for_another_caller() -> None:
    sealed = SEAL.seal(INNER, SCOPE)
    assert sealed is not None
    assert refused(sealed, ("exports", "org_a", "user_2"))
    assert refused(sealed, ("audit-events", "org_a", "user_1"))
    # The parts are kept apart: moving a character across a boundary is another scope.
    assert refused(sealed, ("exports", "org_au", "ser_1"))


def test_another_deployments_cursor_is_refused() -> None:
    other = CursorSeal.from_deployment_secret("another-secret").seal(INNER, SCOPE)
    assert other is not None and refused(other)
