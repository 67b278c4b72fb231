"""Delivery targets: which webhook addresses are allowed, retry classification, S3 keys, and
the deployment's policy for email and buckets."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dataexport.delivery import (
    TARGET_REFUSED,
    DeliveryPolicy,
    DeliveryType,
    EmailDelivery,
    KeyValues,
    S3Delivery,
    SendOutcome,
    SendResult,
    WebhookDelivery,
    address_allowed,
    check_webhook_url,
    classify_status,
    public_target,
    render_key,
)
from dataexport.errors import InvalidRequest


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",  # the instance metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a00:1::",  # 6to4 of 10.0.0.1
    ],
)
def test_private_and_special_addresses_are_refused_by_default(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), allow_private=False)


def test_the_deployment_may_allow_loopback_and_private_but_never_link_local_or_multicast() -> None:
    def allowed(text: str) -> bool:
        return address_allowed(ipaddress.ip_address(text), allow_private=True)

    assert allowed("127.0.0.1") and allowed("10.1.2.3") and allowed("::1")
    assert not allowed("169.254.169.254") and not allowed("fe80::1")
    assert not allowed("224.0.0.1") and not allowed("0.0.0.0")  # noqa: S104


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/x", "https"),
        ("ftp://hooks.example.com/x", "https"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("https://10.0.0.5/hook", "public address"),
        ("https://[::1]/hook", "public address"),
        ("https://169.254.169.254/latest/meta-data", "public address"),
        ("https://localhost/hook", "public address"),
        ("https:///hook", "host"),
        ("https://hooks.example.com/x#frag", "fragment"),
    ],
)
def test_webhook_urls_are_refused_naming_the_field(url: str, reason: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_webhook_url(url, allow_private=False)
    assert refused.value.field == "delivery.url"
    assert reason in refused.value.message


@pytest.mark.parametrize(
    "host",
    [
        "2852039166",  # 169.254.169.254 as one decimal number
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "169.16689662",
        "127.1",
        "0x7f.0.0.1",
        "0",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[0:0:0:0:0:ffff:7f00:1]",
    ],
)
def test_an_address_in_any_spelling_a_resolver_reads_is_checked_as_that_address(
    host: str,
) -> None:
    for allow_private in (False, True):
        if allow_private and host in {"127.1", "0x7f.0.0.1", "[0:0:0:0:0:ffff:7f00:1]"}:
            continue  # loopback, which the deployment may allow
        with pytest.raises(InvalidRequest) as refused:
            check_webhook_url(f"https://{host}/hook", allow_private=allow_private)
        assert "public address" in refused.value.message


def test_a_public_address_in_a_legacy_spelling_and_names_that_look_numeric_pass() -> None:
    assert check_webhook_url("https://134744072/hook", allow_private=False).host == "134744072"
    for name in ("1e100.net", "0x.example.com", "123.example"):
        assert check_webhook_url(f"https://{name}/hook", allow_private=False).host == name


def test_a_webhook_url_gives_its_endpoint() -> None:
    endpoint = check_webhook_url("https://hooks.example.com:8443/in?team=7", allow_private=False)
    assert (endpoint.host, endpoint.port, endpoint.target) == (
        "hooks.example.com",
        8443,
        "/in?team=7",
    )
    assert endpoint.is_https
    local = check_webhook_url("http://127.0.0.1:9000", allow_private=True)
    assert (local.port, local.target, local.is_https) == (9000, "/", False)
    with pytest.raises(InvalidRequest):
        check_webhook_url("http://169.254.169.254/", allow_private=True)


def test_the_job_view_shows_a_webhook_url_without_its_query_or_credentials() -> None:
    target = WebhookDelivery(
        type=DeliveryType.WEBHOOK, url="https://hooks.example.com/in?token=s3cr3t"
    )
    assert public_target(target) == {"type": "webhook", "url": "https://hooks.example.com/in"}


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, SendOutcome.DELIVERED),
        (204, SendOutcome.DELIVERED),
        (500, SendOutcome.RETRY),
        (503, SendOutcome.RETRY),
        (429, SendOutcome.RETRY),
        (400, SendOutcome.GIVE_UP),
        (404, SendOutcome.GIVE_UP),
        (410, SendOutcome.GIVE_UP),
        (301, SendOutcome.GIVE_UP),  # redirects are never followed
    ],
)
def test_status_codes_are_delivered_retried_or_final(status: int, outcome: SendOutcome) -> None:
    assert classify_status(status) is outcome
    assert SendResult(status_code=status).outcome is outcome


def test_timeouts_and_broken_connections_are_retried_but_a_refused_target_is_not() -> None:
    assert SendResult(error="Timeout").outcome is SendOutcome.RETRY
    assert SendResult(error="ConnectionError").outcome is SendOutcome.RETRY
    assert SendResult(error=TARGET_REFUSED).outcome is SendOutcome.GIVE_UP
    assert SendResult(error="MessageRejected", final=True).outcome is SendOutcome.GIVE_UP


# --------------------------------------------------------------------------- s3 keys

VALUES = KeyValues(
    dataset="usage_logs",
    job_id="exp_01JTESTTESTTESTTESTTESTTES",
    format="csv",
    # 23:30 UTC on 31 January is already 1 February in Berlin.
    created_at=datetime(2026, 1, 31, 23, 30, tzinfo=UTC),
    timezone=ZoneInfo("Europe/Berlin"),
)


def test_a_key_template_is_rendered_with_dates_in_the_export_s_zone() -> None:
    key = render_key("reports/", "{dataset}/{yyyy}/{mm}/{dd}/{id}.{format}/{file}", VALUES, "a.csv")
    assert key == "reports/usage_logs/2026/02/01/exp_01JTESTTESTTESTTESTTESTTES.csv/a.csv"


def test_a_prefix_without_a_slash_is_a_folder_and_no_prefix_is_the_bucket_root() -> None:
    assert render_key("reports", "{file}", VALUES, "a.csv") == "reports/a.csv"
    assert render_key("", "{file}", VALUES, "a.csv") == "a.csv"


@pytest.mark.parametrize(
    ("prefix", "template", "field"),
    [
        ("", "{dataset}/{file}/{user}", "delivery.key_template"),
        ("", "{dataset}", "delivery.key_template"),  # {file} is required
        ("", "{file!r}", "delivery.key_template"),
        ("", "{file:>20}", "delivery.key_template"),
        ("", "{file", "delivery.key_template"),
        ("", "../{file}", "delivery.key_template"),
        ("", "/{file}", "delivery.key_template"),
        ("", "a/./{file}", "delivery.key_template"),
        ("../elsewhere/", "{file}", "delivery.prefix"),
        ("/root/", "{file}", "delivery.prefix"),
        ("a/../../b/", "{file}", "delivery.prefix"),
    ],
)
def test_keys_that_could_escape_the_prefix_are_refused(
    prefix: str, template: str, field: str
) -> None:
    policy = DeliveryPolicy(bucket_names=frozenset({"reports-bucket"}))
    target = S3Delivery(
        type=DeliveryType.S3, bucket="reports-bucket", prefix=prefix, key_template=template
    )
    with pytest.raises(InvalidRequest) as refused:
        policy.check(target)
    assert refused.value.field == field


# --------------------------------------------------------------------------- policy


def test_buckets_must_be_listed_by_the_deployment() -> None:
    policy = DeliveryPolicy(bucket_names=frozenset({"reports-bucket"}))
    policy.check(S3Delivery(type=DeliveryType.S3, bucket="reports-bucket"))
    with pytest.raises(InvalidRequest) as refused:
        policy.check(S3Delivery(type=DeliveryType.S3, bucket="someone-elses-bucket"))
    assert refused.value.field == "delivery.bucket"


def test_email_needs_a_sender_and_recipients_in_the_allowed_domains() -> None:
    target = EmailDelivery(type=DeliveryType.EMAIL, to=["ana@example.com", "bo@EXAMPLE.org"])
    with pytest.raises(InvalidRequest) as unconfigured:
        DeliveryPolicy().check(target)
    assert unconfigured.value.field == "delivery.type"

    policy = DeliveryPolicy(
        email_sender="exports@example.com", email_allowed_domains=frozenset({"example.com"})
    )
    with pytest.raises(InvalidRequest) as outside:
        policy.check(target)
    assert outside.value.field == "delivery.to[1]"
    with pytest.raises(InvalidRequest) as malformed:
        policy.check(EmailDelivery(type=DeliveryType.EMAIL, to=["not an address"]))
    assert malformed.value.field == "delivery.to[0]"
    # A subdomain is another domain.
    with pytest.raises(InvalidRequest):
        policy.check(EmailDelivery(type=DeliveryType.EMAIL, to=["x@mail.example.com"]))
    policy.check(EmailDelivery(type=DeliveryType.EMAIL, to=["Ana@Example.com"]))
