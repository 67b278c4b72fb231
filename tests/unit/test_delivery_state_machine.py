"""The export state machine's delivery states, read from the ASL itself: retry schedule, where
a given-up delivery goes, and that the fail path still ends in ExportFailed."""

from __future__ import annotations

from typing import Any

from dataexport_local.cfn_yaml import read_uploaded_document
from dataexport_local.template import REPOSITORY_ROOT

ASL = REPOSITORY_ROOT / "statemachines" / "export.asl.yaml"


def states() -> dict[str, Any]:
    definition = read_uploaded_document(ASL)
    found: dict[str, Any] = definition["States"]
    return found


def retry_waits(retrier: dict[str, Any]) -> list[float]:
    """The waits before each retry, as Step Functions computes them."""
    interval, rate = retrier["IntervalSeconds"], retrier["BackoffRate"]
    return [interval * rate**attempt for attempt in range(retrier["MaxAttempts"])]


def test_delivery_is_retried_with_backoff_on_delivery_failed_only() -> None:
    for name in ("Deliver", "NotifyFailure"):
        state = states()[name]
        (retrier,) = [r for r in state["Retry"] if "DeliveryFailed" in r["ErrorEquals"]]
        assert retrier["ErrorEquals"] == ["DeliveryFailed"]
        assert retry_waits(retrier) == [5, 10, 20, 40, 80]
        # Six attempts in all, spread over about two and a half minutes.
        assert sum(retry_waits(retrier)) == 155


def test_a_completed_export_is_delivered_then_waits_for_expiry_whatever_the_delivery_does() -> None:
    machine = states()
    assert machine["Upload"]["Next"] == "Deliver"
    deliver = machine["Deliver"]
    assert deliver["Next"] == "WaitUntilExpiry"
    # The Upload output (expires_at) must survive for the Wait state.
    assert deliver["ResultPath"] is None
    (catch,) = deliver["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "DeliveryGivenUp"
    given_up = machine["DeliveryGivenUp"]
    assert given_up["Parameters"]["give_up"] is True and given_up["ResultPath"] is None
    assert given_up["Next"] == "WaitUntilExpiry"
    assert given_up["Catch"][0]["Next"] == "WaitUntilExpiry"


def test_the_fail_path_notifies_then_still_ends_in_export_failed() -> None:
    machine = states()
    assert machine["MarkFailed"]["Next"] == "NotifyFailure"
    assert machine["NotifyFailure"]["Next"] == "ExportFailed"
    assert machine["NotifyFailure"]["Catch"][0]["Next"] == "FailureNotificationGivenUp"
    assert machine["FailureNotificationGivenUp"]["Next"] == "ExportFailed"
    assert machine["FailureNotificationGivenUp"]["Catch"][0]["Next"] == "ExportFailed"
    assert machine["ExportFailed"]["Type"] == "Fail"
