"""Whatever a client sends, the answer is a 4xx in the one error shape naming what is wrong.

Each case once answered 500 (or worse, was accepted): bodies that are not UTF-8 or not JSON,
JSON nested thousands deep or with numbers of thousands of digits, timestamps outside the years
1-9999, lone surrogates, forged cursors, decimals PostgreSQL cannot hold, oversized bodies,
methods API Gateway does not take. All over real HTTP against the local runtime.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import pytest

from dataexport_local.runtime import LocalRuntime
from tests.e2e.http_client import ApiClient, HttpAnswer
from tests.e2e.http_client import http as request

ORG = "org_hostile"
EXPORT = {"dataset": "usage_logs", "format": "csv", "fields": ["created_at", "model"]}
SCHEDULE = {"name": "Hostile", "schedule_expression": "cron(0 6 * * ? *)", "export": EXPORT}
DEEP = "[" * 5000 + "]" * 5000
HUGE_INTEGER = "9" * 5000


@pytest.fixture(scope="module")
def member(runtime: LocalRuntime) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("u_hostile", ORG, "member"))


@pytest.fixture(scope="module")
def admin(runtime: LocalRuntime) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("u_hostile_admin", ORG, "admin"))


@pytest.fixture(scope="module")
def operator(runtime: LocalRuntime) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("u_hostile_op", "org_platform", "operator"))


@pytest.fixture(scope="module")
def job_id(member: ApiClient) -> str:
    return str(member.create_export(EXPORT)["id"])


@pytest.fixture(scope="module")
def schedule_id(member: ApiClient) -> str:
    answer = member.call("POST", "/v1/schedules", SCHEDULE)
    assert answer.status == 201, answer.body
    return str(answer.json()["id"])


def assert_refused(answer: HttpAnswer, status: int, code: str, field: str) -> None:
    assert answer.status == status, answer.body
    error = answer.json()
    assert error.keys() == {"error_code", "message", "detail"}, error
    assert error["error_code"] == code, error
    assert error["detail"].get("field") == field, error


def raw_post(client: ApiClient, path: str, body: bytes, content_type: str | None) -> HttpAnswer:
    """POST exactly these bytes with exactly this Content-Type (None: no such header at all,
    which urllib would otherwise fill in)."""
    url = urllib.parse.urlsplit(client.base_url + path)
    headers = {"Authorization": f"Bearer {client.token}", "Content-Length": str(len(body))}
    if content_type is not None:
        headers["Content-Type"] = content_type
    connection = http.client.HTTPConnection(url.netloc, timeout=60)
    try:
        connection.putrequest("POST", url.path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return HttpAnswer(response.status, dict(response.headers), response.read())
    finally:
        connection.close()


def preview(client: ApiClient, **parameters: str) -> HttpAnswer:
    query = urllib.parse.urlencode({"dataset": "usage_logs", **parameters})
    return client.call("GET", f"/v1/exports/preview?{query}")


def history(client: ApiClient) -> list[str]:
    return [job["id"] for job in client.call("GET", "/v1/exports?limit=100").json()["items"]]


# ------------------------------------------------------------------ what the body is


def test_a_body_that_is_not_utf8_is_a_400_naming_the_body(member: ApiClient) -> None:
    body = b'{"dataset": "usage_logs", "format": "\xff\xfe"}'
    answer = raw_post(member, "/v1/exports", body, "application/json")
    assert_refused(answer, 400, "VALIDATION_ERROR", "body")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="dataset"\r\n\r\n'
            b"usage_logs\r\n--xx--\r\n",
        ),
        ("multipart/form-data", b"dataset=usage_logs"),
        ("application/x-www-form-urlencoded", b"dataset=usage_logs"),
        ("text/plain", json.dumps(EXPORT).encode()),
        ("application/json; charset=latin-1", json.dumps(EXPORT).encode()),
        (None, json.dumps(EXPORT).encode()),
    ],
    ids=["multipart", "multipart-no-boundary", "form", "text", "other-charset", "none"],
)
def test_a_body_not_declared_as_json_is_a_415_and_creates_nothing(
    member: ApiClient, content_type: str | None, body: bytes
) -> None:
    before = history(member)
    answer = raw_post(member, "/v1/exports", body, content_type)
    assert_refused(answer, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type")
    assert history(member) == before


def test_every_route_that_takes_a_body_refuses_one_that_is_not_json(
    member: ApiClient, admin: ApiClient, operator: ApiClient, job_id: str, schedule_id: str
) -> None:
    for client, method, path in (
        (member, "POST", "/v1/exports"),
        (admin, "PUT", f"/v1/exports/{job_id}/legal-hold"),
        (member, "POST", "/v1/schedules"),
        (member, "PUT", f"/v1/schedules/{schedule_id}"),
        (admin, "PUT", "/v1/retention-policies"),
        (operator, "POST", "/v1/backups"),
    ):
        answer = request(
            method,
            client.base_url + path,
            client.token,
            b"--b\r\n\r\nx\r\n--b--\r\n",
            {"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert answer.status == 415, (method, path, answer.body)
        assert answer.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_json_with_a_utf8_charset_is_accepted(member: ApiClient) -> None:
    answer = raw_post(
        member, "/v1/exports", json.dumps(EXPORT).encode(), "application/json; charset=UTF-8"
    )
    assert answer.status in (200, 202), answer.body


def test_a_body_over_64_kib_is_a_413_before_it_is_read(member: ApiClient) -> None:
    # Neither JSON nor UTF-8 nor declared as JSON: the size is what is refused first.
    answer = raw_post(member, "/v1/exports", b"\xff" * (64 * 1024 + 1), "text/plain")
    assert_refused(answer, 413, "REQUEST_TOO_LARGE", "body")
    padded = {**EXPORT, "fields": ["model"] * 20_000}
    answer = member.call("POST", "/v1/exports", padded)
    assert_refused(answer, 413, "REQUEST_TOO_LARGE", "body")


# ------------------------------------------------------------------ JSON the parser must survive


def test_json_nested_thousands_deep_is_a_400(member: ApiClient) -> None:
    answer = raw_post(member, "/v1/exports", DEEP.encode(), "application/json")
    assert_refused(answer, 400, "VALIDATION_ERROR", "body")
    nested_filter = '{"dataset": "usage_logs", "filters": [{"value": ' + DEEP + "}]}"
    answer = raw_post(member, "/v1/exports", nested_filter.encode(), "application/json")
    assert_refused(answer, 400, "VALIDATION_ERROR", "body")


@pytest.mark.parametrize("parameter", ["filters", "options", "aggregate"])
def test_json_nested_thousands_deep_in_a_preview_parameter_is_a_400(
    member: ApiClient, parameter: str
) -> None:
    deep = "[" * 2000 + "]" * 2000
    assert_refused(preview(member, **{parameter: deep}), 400, "VALIDATION_ERROR", parameter)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"dataset": "usage_logs", "max_file_size_mb": ' + HUGE_INTEGER + "}", "max_file_size_mb"),
        (
            '{"dataset": "usage_logs", "filters": [{"field": "status_code", "op": "eq", '
            '"value": ' + HUGE_INTEGER + "}]}",
            "filters[0].value",
        ),
        (
            '{"dataset": "usage_logs", "options": {"decimal_places": -' + HUGE_INTEGER + "}}",
            "options.decimal_places",
        ),
        ('{"dataset": "usage_logs", "fields": [1.' + HUGE_INTEGER + "]}", "fields[0]"),
    ],
    ids=["top-level", "filter-value", "option", "float"],
)
def test_numbers_of_thousands_of_digits_are_a_400_naming_the_field(
    member: ApiClient, body: str, field: str
) -> None:
    answer = raw_post(member, "/v1/exports", body.encode(), "application/json")
    assert_refused(answer, 400, "VALIDATION_ERROR", field)


def test_numbers_of_thousands_of_digits_in_a_preview_parameter_are_a_400(
    member: ApiClient,
) -> None:
    filters = '[{"field": "status_code", "op": "eq", "value": ' + HUGE_INTEGER + "}]"
    assert_refused(preview(member, filters=filters), 400, "VALIDATION_ERROR", "filters[0].value")


def test_a_lone_surrogate_in_a_filter_value_is_a_400_naming_it(member: ApiClient) -> None:
    filters = '[{"field": "model", "op": "eq", "value": "\\ud800"}]'
    body = '{"dataset": "usage_logs", "filters": ' + filters + "}"
    answer = raw_post(member, "/v1/exports", body.encode(), "application/json")
    assert_refused(answer, 400, "VALIDATION_ERROR", "filters[0].value")
    assert_refused(preview(member, filters=filters), 400, "VALIDATION_ERROR", "filters[0].value")


# ------------------------------------------------------------------ values the database refuses


@pytest.mark.parametrize(
    "bound",
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"],
    ids=["before-year-1", "after-year-9999"],
)
def test_timestamps_outside_years_1_to_9999_are_a_400_naming_the_field(
    member: ApiClient, admin: ApiClient, bound: str
) -> None:
    for key in ("start", "end"):
        time_range = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", key: bound}
        answer = member.call("POST", "/v1/exports", {**EXPORT, "time_range": time_range})
        assert_refused(answer, 400, "VALIDATION_ERROR", f"time_range.{key}")
        assert_refused(preview(member, **{key: bound}), 400, "VALIDATION_ERROR", key)
    for name in ("from", "to"):
        query = urllib.parse.urlencode({name: bound})
        stats = member.call("GET", f"/v1/exports/stats?{query}")
        assert_refused(stats, 400, "VALIDATION_ERROR", name)
        audit = admin.call("GET", f"/v1/audit-events?{query}")
        assert_refused(audit, 400, "VALIDATION_ERROR", name)


@pytest.mark.parametrize("value", ["1e1000000", "1e-20000"], ids=["too-large", "too-precise"])
def test_decimals_outside_postgresqls_numeric_range_are_a_400_at_every_entry(
    member: ApiClient, schedule_id: str, value: str
) -> None:
    filters = [{"field": "cost_usd", "op": "gte", "value": value}]
    before = history(member)
    answer = member.call("POST", "/v1/exports", {**EXPORT, "filters": filters})
    assert_refused(answer, 400, "VALIDATION_ERROR", "filters[0].value")
    assert history(member) == before
    answer = preview(member, filters=json.dumps(filters))
    assert_refused(answer, 400, "VALIDATION_ERROR", "filters[0].value")
    schedule = {**SCHEDULE, "export": {**EXPORT, "filters": filters}}
    created = member.call("POST", "/v1/schedules", schedule)
    assert_refused(created, 400, "VALIDATION_ERROR", "export.filters[0].value")
    updated = member.call("PUT", f"/v1/schedules/{schedule_id}", schedule)
    assert_refused(updated, 400, "VALIDATION_ERROR", "export.filters[0].value")


# ------------------------------------------------------------------ cursors


def test_forged_or_truncated_cursors_are_a_400_on_every_paged_route(
    member: ApiClient, admin: ApiClient, operator: ApiClient
) -> None:
    for format in ("json", "ndjson"):  # two more jobs, so the history has a second page
        member.create_export({**EXPORT, "format": format})
    for client, path in (
        (member, "/v1/exports"),
        (admin, "/v1/audit-events"),
        (operator, "/v1/backups"),
    ):
        page = client.call("GET", f"{path}?limit=1").json()
        real = page["next_cursor"]
        forged = [
            "eyJvcmdfaWQiOiB7IlMiOiAib3JnX2hvc3RpbGUifX0",  # a bare start key, unsigned
            "not-a-cursor",
            "." * 40,
        ]
        if real:
            forged += [real[:-3], real[:10], real[:-1] + ("A" if real[-1] != "A" else "B")]
        for cursor in forged:
            answer = client.call("GET", f"{path}?limit=1&cursor={urllib.parse.quote(cursor)}")
            assert_refused(answer, 400, "VALIDATION_ERROR", "cursor")
        if real:
            following = client.call("GET", f"{path}?limit=1&cursor={urllib.parse.quote(real)}")
            assert following.status == 200, following.body


# ------------------------------------------------------------------ the gateway itself


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND", "LOCK"])
def test_methods_api_gateway_does_not_take_are_a_405_in_the_error_shape(
    member: ApiClient, method: str
) -> None:
    answer = member.call(method, "/v1/exports")
    assert answer.status == 405, answer.body
    error = answer.json()
    assert error.keys() == {"error_code", "message", "detail"}
    assert error["error_code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in answer.headers["Allow"]


# ------------------------------------------------------------------ one validation rule


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/v1/exports?limit=0", None, "limit"),
        ("GET", "/v1/exports?limit=" + HUGE_INTEGER, None, "limit"),
        ("POST", "/v1/exports", {**EXPORT, "compression": "rar"}, "compression"),
        ("POST", "/v1/exports", {**EXPORT, "max_file_size_mb": 1}, "max_file_size_mb"),
        (
            "POST",
            "/v1/exports",
            {**EXPORT, "options": {"decimal_places": 99}},
            "options.decimal_places",
        ),
        (
            "POST",
            "/v1/exports",
            {"dataset": "usage_logs", "aggregate": {"measures": [{"function": "median"}]}},
            "aggregate.measures[0].function",
        ),
        ("POST", "/v1/exports", {**EXPORT, "filters": [{"field": "model"}]}, "filters[0].op"),
        (
            "POST",
            "/v1/exports",
            {**EXPORT, "format": "json", "options": {"delimiter": ";"}},
            "options.delimiter",
        ),
        (
            "POST",
            "/v1/exports",
            {**EXPORT, "format": "ndjson", "options": {"bom": False}},
            "options.bom",
        ),
    ],
)
def test_every_validation_error_is_a_400_with_one_path_style(
    member: ApiClient, method: str, path: str, body: Any, field: str
) -> None:
    assert_refused(member.call(method, path, body), 400, "VALIDATION_ERROR", field)


def test_retention_days_out_of_range_is_a_400_naming_the_entry(admin: ApiClient) -> None:
    body = {"policies": [{"dataset": "usage_logs", "retention_days": 0}]}
    answer = admin.call("PUT", "/v1/retention-policies", body)
    assert_refused(answer, 400, "VALIDATION_ERROR", "policies[0].retention_days")


def test_an_option_of_another_format_is_refused_at_preview_too(member: ApiClient) -> None:
    answer = preview(member, format="json", options='{"line_ending": "lf"}')
    assert_refused(answer, 400, "VALIDATION_ERROR", "options.line_ending")
    assert preview(member, format="csv", options='{"line_ending": "lf"}').status == 200


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_body_length_the_gateway_cannot_use_is_a_400_in_the_error_shape(
    member: ApiClient, length: str
) -> None:
    url = urllib.parse.urlsplit(member.base_url)
    connection = http.client.HTTPConnection(url.netloc, timeout=30)
    try:
        connection.putrequest("POST", "/v1/exports", skip_accept_encoding=True)
        connection.putheader("Authorization", f"Bearer {member.token}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", length)
        connection.endheaders()
        response = connection.getresponse()
        error = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 400
    assert error.keys() == {"error_code", "message", "detail"}
    assert error["error_code"] == "BAD_REQUEST_BODY"
