"""The checks every request body passes on the raw API Gateway event, in their order."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from dataexport.api.request_limits import (
    MAX_BODY_BYTES,
    check_request_body,
    is_json_media_type,
)
from dataexport.errors import (
    DataExportError,
    InvalidRequest,
    RequestTooLarge,
    UnsupportedMediaType,
)


def event(body: str | None, content_type: str | None = "application/json", **extra: Any) -> Any:
    headers = {} if content_type is None else {"content-type": content_type}
    return {"body": body, "headers": headers, "isBase64Encoded": False, **extra}


def refusal(raw_event: Any) -> DataExportError:
    with pytest.raises(DataExportError) as refused:
        check_request_body(raw_event)
    return refused.value


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/json;",
    ],
)
def test_json_media_types_are_accepted(content_type: str) -> None:
    assert is_json_media_type(content_type)
    check_request_body(event('{"a": 1}', content_type))


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/jsonp",
        "application/json; boundary=x",
    ],
)
def test_other_media_types_are_a_415(content_type: str | None) -> None:
    error = refusal(event('{"a": 1}', content_type))
    assert isinstance(error, UnsupportedMediaType) and error.http_status == 415


def test_no_body_needs_no_content_type() -> None:
    check_request_body(event(None, None))
    check_request_body(event("", None))


def test_size_comes_first() -> None:
    oversized = base64.b64encode(b"\xff" * (MAX_BODY_BYTES + 1)).decode()
    error = refusal(event(oversized, "text/plain", isBase64Encoded=True))
    assert isinstance(error, RequestTooLarge) and error.http_status == 413
    assert error.detail == {"field": "body", "max_bytes": MAX_BODY_BYTES}


def test_bytes_that_are_not_utf8_are_a_400_on_the_body() -> None:
    body = base64.b64encode(b'{"a": "\xff"}').decode()
    error = refusal(event(body, isBase64Encoded=True))
    assert isinstance(error, InvalidRequest) and error.field == "body"


def test_json_past_the_parsers_limits_is_a_400_naming_the_field() -> None:
    error = refusal(event('{"filters": [{"value": ' + "1" * 5000 + "}]}"))
    assert isinstance(error, InvalidRequest) and error.field == "filters[0].value"
    error = refusal(event("[" * 10_000))
    assert isinstance(error, InvalidRequest) and error.field == "body"
