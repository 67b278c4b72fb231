"""The parts of the OpenAPI document that are pure logic: where the routes are, what every
operation answers, and request examples that are valid requests."""

from __future__ import annotations

import pytest

from dataexport.api.openapi_document import answers, server_url_of
from dataexport.api.request_examples import EXPORT_REQUEST_EXAMPLES, SCHEDULE_EXAMPLES
from dataexport.api.response_models import ErrorBody, ExportJobView
from dataexport.export_request import ExportRequest
from dataexport.export_schedule import ScheduleInput


@pytest.mark.parametrize(
    ("seen_path", "expected"),
    [
        ("/Prod/v1/openapi.json", "/Prod"),  # the execute-api URL of stage Prod
        ("/dev/v1/openapi.json", "/dev"),
        ("/exports-api/v1/openapi.json", "/exports-api"),  # a custom domain's base path
        ("/v1/openapi.json", "/"),  # a custom domain mapped at its root
        (None, "/"),
    ],
)
def test_the_server_is_where_api_gateway_saw_the_request(
    seen_path: str | None, expected: str
) -> None:
    context = {} if seen_path is None else {"path": seen_path}
    assert server_url_of(context, "/v1/openapi.json") == expected


def test_every_operation_answers_401_403_and_429_in_the_error_shape() -> None:
    documented = answers({200: ("The job", ExportJobView)}, 404, (409, "Busy."))
    assert sorted(documented) == [200, 401, 403, 404, 409, 429]
    assert documented[409]["description"] == "Busy."
    for status in (401, 403, 404, 409, 429):
        assert documented[status]["content"]["application/json"] == {"model": ErrorBody}
    assert "Retry-After" in documented[429]["headers"]


@pytest.mark.parametrize("name", sorted(EXPORT_REQUEST_EXAMPLES))
def test_export_examples_are_valid_requests(name: str) -> None:
    ExportRequest.model_validate(EXPORT_REQUEST_EXAMPLES[name].value)


@pytest.mark.parametrize("name", sorted(SCHEDULE_EXAMPLES))
def test_schedule_examples_are_valid_requests(name: str) -> None:
    ScheduleInput.model_validate(SCHEDULE_EXAMPLES[name].value)
