"""The expiry handed to the Wait state: whole seconds, never before the real expiry."""

from datetime import UTC, datetime, timedelta, timezone

from dataexport.services.export_steps import state_machine_timestamp


def test_a_fraction_of_a_second_rounds_up_so_the_wait_never_ends_early() -> None:
    expires_at = datetime(2026, 11, 29, 10, 0, 0, 1, tzinfo=UTC)
    assert state_machine_timestamp(expires_at) == "2026-11-29T10:00:01Z"


def test_a_whole_second_stays_as_it_is_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert state_machine_timestamp(datetime(2026, 11, 29, 11, 0, tzinfo=paris)) == (
        "2026-11-29T10:00:00Z"
    )
