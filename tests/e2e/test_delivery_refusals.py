"""Delivery targets the deployment does not allow are refused when the export is created (400
naming the field), and each tenant gets its own webhook signing key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RuntimeFactory
from tests.e2e.http_client import ApiClient

EXPORT = {"dataset": "usage_logs", "format": "csv", "time_range": {"preset": "7d"}}


@pytest.fixture(scope="module")
def runtime(runtime_factory: RuntimeFactory) -> Iterator[Any]:
    # As deployed by default: no private webhook targets, no plain http.
    with runtime_factory(
        {
            "EmailSender": "exports@dataexport.example",
            "EmailAllowedDomains": "example.com",
            "DeliveryBucketArns": "arn:aws:s3:::delivery-dest",
        }
    ) as started:
        yield started


@pytest.mark.parametrize(
    ("delivery", "field"),
    [
        ({"type": "webhook", "url": "http://hooks.example.com/in"}, "delivery.url"),
        ({"type": "webhook", "url": "https://10.0.0.7/in"}, "delivery.url"),
        ({"type": "webhook", "url": "https://127.0.0.1:8443/in"}, "delivery.url"),
        ({"type": "webhook", "url": "https://169.254.169.254/latest/meta-data"}, "delivery.url"),
        ({"type": "webhook", "url": "https://localhost/in"}, "delivery.url"),
        # The same addresses spelled as resolvers also read them
        ({"type": "webhook", "url": "https://2852039166/latest/meta-data"}, "delivery.url"),
        ({"type": "webhook", "url": "https://0xa9fea9fe/latest/meta-data"}, "delivery.url"),
        ({"type": "webhook", "url": "https://0251.0376.0251.0376/latest"}, "delivery.url"),
        ({"type": "webhook", "url": "https://127.1/in"}, "delivery.url"),
        ({"type": "webhook", "url": "https://0x7f.1:8443/in"}, "delivery.url"),
        ({"type": "webhook", "url": "https://[::ffff:169.254.169.254]/latest"}, "delivery.url"),
        ({"type": "webhook", "url": "https://[::ffff:a9fe:a9fe]/latest"}, "delivery.url"),
        ({"type": "webhook", "url": "https://[0:0:0:0:0:ffff:127.0.0.1]/in"}, "delivery.url"),
        ({"type": "webhook", "url": "https://[::1]/in"}, "delivery.url"),
        ({"type": "email", "to": ["ana@example.com", "eve@elsewhere.org"]}, "delivery.to[1]"),
        ({"type": "s3", "bucket": "someone-elses-bucket"}, "delivery.bucket"),
        (
            {"type": "s3", "bucket": "delivery-dest", "key_template": "{dataset}/{owner}/{file}"},
            "delivery.key_template",
        ),
        (
            {"type": "s3", "bucket": "delivery-dest", "key_template": "../{file}"},
            "delivery.key_template",
        ),
        ({"type": "s3", "bucket": "delivery-dest", "prefix": "/etc/"}, "delivery.prefix"),
    ],
)
def test_a_target_the_deployment_does_not_allow_is_a_400_naming_the_field(
    runtime: Any, delivery: dict[str, Any], field: str
) -> None:
    client = ApiClient(runtime.api_url, runtime.token("u_refused", "org_acme", "admin"))
    answer = client.call("POST", "/v1/exports", {**EXPORT, "delivery": delivery})
    assert answer.status == 400, answer.body
    body = answer.json()
    assert body["error_code"] == "VALIDATION_ERROR" and body["detail"]["field"] == field
    # Nothing was created
    listed = client.call("GET", "/v1/exports").json()["items"]
    assert not listed


@pytest.mark.parametrize("host", ["2852039166", "0xa9fea9fe", "127.1", "[::ffff:169.254.169.254]"])
def test_a_schedule_delivering_to_an_address_in_any_spelling_is_refused(
    runtime: Any, host: str
) -> None:
    client = ApiClient(runtime.api_url, runtime.token("u_refused_schedule", "org_acme", "admin"))
    export = {**EXPORT, "delivery": {"type": "webhook", "url": f"https://{host}/in"}}
    body = {"name": "Nightly", "schedule_expression": "cron(0 3 * * ? *)", "export": export}
    answer = client.call("POST", "/v1/schedules", body)
    assert answer.status == 400, answer.body
    assert answer.json()["detail"]["field"] == "export.delivery.url"
    assert client.call("GET", "/v1/schedules").json()["items"] == []


def test_each_tenant_reads_its_own_signing_key_and_operators_none(runtime: Any) -> None:
    def key(sub: str, org: str, role: str, permissions: tuple[str, ...] = ("DATA_EXPORT",)) -> Any:
        token = runtime.token(sub, org, role, permissions)
        return ApiClient(runtime.api_url, token).call("GET", "/v1/webhook-signing-secret")

    member, admin = key("u_1", "org_acme", "member"), key("u_2", "org_acme", "admin")
    other = key("u_3", "org_globex", "member")
    assert member.status == admin.status == other.status == 200
    assert member.json()["secret"] == admin.json()["secret"]
    assert member.json()["secret"] != other.json()["secret"]
    assert member.json()["signature_header"] == "DataExport-Signature"
    assert key("op", "org_acme", "operator").status == 403
    assert key("u_4", "org_acme", "member", permissions=()).status == 403
