"""Where a finished export goes besides the job history: its delivery target and its record.

A request names one target (`link` by default: the job just appears in history). The target is
checked against the deployment's delivery policy when the job is created (a 400 naming the
field), kept on the job, and carried out by the Deliver step once the export has completed or
failed. The job records every attempt (time and status code or error class; never the URL's
query, the body or a signature).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from dataexport.errors import InvalidRequest

MAX_URL_LENGTH: Final = 2048
MAX_RECIPIENTS: Final = 10
MAX_KEY_LENGTH: Final = 1024
# The job keeps the latest attempts only: its record has a size limit.
ATTEMPTS_KEPT: Final = 20
KEY_PLACEHOLDERS: Final = frozenset({"dataset", "yyyy", "mm", "dd", "file", "id", "format"})
_EMAIL = re.compile(r"^[^@\s<>,;\"]{1,64}@([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DeliveryType(StrEnum):
    LINK = "link"
    WEBHOOK = "webhook"
    EMAIL = "email"
    S3 = "s3"


class LinkDelivery(BaseModel):
    """Nothing is sent: the job appears in the history, with its download route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal[DeliveryType.LINK] = DeliveryType.LINK


class WebhookDelivery(BaseModel):
    """A signed POST of the job's summary and a download link to an https URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal[DeliveryType.WEBHOOK]
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)


class EmailDelivery(BaseModel):
    """A message (SES) with a download link, never an attachment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal[DeliveryType.EMAIL]
    to: list[Annotated[str, Field(min_length=3, max_length=254)]] = Field(
        min_length=1, max_length=MAX_RECIPIENTS
    )


class S3Delivery(BaseModel):
    """A server-side copy of the export's file(s) into a bucket the deployment allows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal[DeliveryType.S3]
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field(default="", max_length=512)
    key_template: str = Field(default="{file}", min_length=1, max_length=512)


AnyDelivery = LinkDelivery | WebhookDelivery | EmailDelivery | S3Delivery
DeliveryTarget = Annotated[AnyDelivery, Field(discriminator="type")]
_TARGET: Final = TypeAdapter[AnyDelivery](DeliveryTarget)


def parse_target(data: Any) -> AnyDelivery:
    """A stored target (its JSON form) as the typed target."""
    return _TARGET.validate_python(data)


class DeliveryStatus(StrEnum):
    NOT_REQUIRED = "not_required"  # link, or s3 for a failed export: nothing to send
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


FINAL_STATUSES: Final = frozenset(
    {DeliveryStatus.NOT_REQUIRED, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}
)


class DeliveryAttempt(BaseModel):
    """One try: when, and the receiver's status code or the class of error it met."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    status_code: int | None = None
    error: str | None = None


class DeliveryRecord(BaseModel):
    """Where the job's delivery stands; `event_sent_at` is when its outcome event went out."""

    model_config = ConfigDict(frozen=True)

    status: DeliveryStatus
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    delivered_at: datetime | None = None
    event_sent_at: datetime | None = None

    def with_attempt(self, attempt: DeliveryAttempt) -> DeliveryRecord:
        return self.model_copy(update={"attempts": [*self.attempts, attempt][-ATTEMPTS_KEPT:]})


def initial_record(target: AnyDelivery) -> DeliveryRecord:
    """What a new job's delivery starts as."""
    if isinstance(target, LinkDelivery):
        return DeliveryRecord(status=DeliveryStatus.NOT_REQUIRED)
    return DeliveryRecord(status=DeliveryStatus.PENDING)


def public_target(target: AnyDelivery) -> dict[str, Any]:
    """The target as the job view shows it: a webhook URL without its query (it may hold a
    receiver's token)."""
    shown = target.model_dump(mode="json")
    if isinstance(target, WebhookDelivery):
        parts = urlsplit(target.url)
        shown["url"] = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    return shown


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class DeliveryPolicy:
    """What the deployment allows (template parameters): private webhook targets and plain
    http, the email sender and recipient domains, the destination buckets."""

    allow_private_targets: bool = False
    email_sender: str | None = None
    email_allowed_domains: frozenset[str] = frozenset()
    bucket_names: frozenset[str] = frozenset()

    def check(self, target: AnyDelivery) -> None:
        """Refuse a target the deployment does not allow, naming the field (`delivery.*`)."""
        if isinstance(target, WebhookDelivery):
            check_webhook_url(target.url, self.allow_private_targets)
        elif isinstance(target, EmailDelivery):
            self._check_email(target)
        elif isinstance(target, S3Delivery):
            self.check_bucket(target.bucket)
            check_key_prefix(target.prefix)
            check_key_template(target.key_template)

    def _check_email(self, target: EmailDelivery) -> None:
        if self.email_sender is None:
            raise InvalidRequest(
                "delivery.type", "Email delivery is not configured for this deployment."
            )
        for index, address in enumerate(target.to):
            match = _EMAIL.fullmatch(address)
            field = f"delivery.to[{index}]"
            if match is None:
                raise InvalidRequest(field, f"{address!r} is not an email address.")
            if match.group(1).lower() not in self.email_allowed_domains:
                allowed = ", ".join(sorted(self.email_allowed_domains)) or "no domain"
                raise InvalidRequest(field, f"Email may only go to addresses at {allowed}.")

    def check_bucket(self, bucket: str) -> None:
        if not _BUCKET.fullmatch(bucket) or bucket not in self.bucket_names:
            raise InvalidRequest(
                "delivery.bucket",
                f"Bucket {bucket!r} is not a delivery destination of this deployment.",
            )


# --------------------------------------------------------------------------- webhook addresses


@dataclass(frozen=True)
class WebhookEndpoint:
    """A checked webhook URL: where to connect and what to ask for."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def is_https(self) -> bool:
        return self.scheme == "https"


def check_webhook_url(url: str, allow_private: bool) -> WebhookEndpoint:
    """The URL's endpoint, if it may receive webhooks: https (http only when the deployment
    allows private targets), a host, no credentials; an address literal must be allowed too
    (names are resolved, and their addresses checked, when the webhook is sent)."""
    field = "delivery.url"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRequest(field, "The webhook URL is not a valid URL.") from None
    allowed_schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in allowed_schemes:
        raise InvalidRequest(field, "The webhook URL must use https.")
    host = parts.hostname
    if not host or _CONTROL.search(url) or " " in url:
        raise InvalidRequest(field, "The webhook URL needs a host and no spaces.")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(field, "The webhook URL may not hold credentials.")
    if parts.fragment:
        raise InvalidRequest(field, "The webhook URL may not have a fragment.")
    literal = _address_literal(host)
    if literal is not None and not address_allowed(literal, allow_private):
        raise InvalidRequest(field, "The webhook URL must point to a public address.")
    if literal is None and not allow_private and _is_local_name(host):
        raise InvalidRequest(field, "The webhook URL must point to a public address.")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookEndpoint(
        parts.scheme, host, port or (443 if parts.scheme == "https" else 80), target
    )


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _address_literal(host: str) -> IpAddress | None:
    """The address `host` spells, in any form a resolver reads as one: IPv4 and IPv6 as
    written canonically, and the legacy IPv4 forms inet_aton accepts (2852039166, 0xa9fea9fe,
    0251.0376.0251.0376, 127.1), which getaddrinfo would connect to without a lookup."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith((".localhost", ".local", ".internal"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: IpAddress, allow_private: bool) -> bool:
    """Whether a webhook may be sent to `address`. Public unicast addresses only; with the
    deployment's permission also loopback and private ones. Link-local (the instance metadata
    service, 169.254.169.254), multicast, unspecified and reserved addresses never."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_allowed(embedded, allow_private)
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return False
    if address.is_loopback:  # before is_reserved: ::1 lies in a reserved block
        return allow_private
    if address.is_reserved:
        return False
    if address.is_global:
        return True
    return allow_private and address.is_private


# --------------------------------------------------------------------------- retries


class SendOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # worth another attempt later
    GIVE_UP = "give_up"  # another attempt would get the same answer


def classify_status(status_code: int) -> SendOutcome:
    """2xx delivered; 429 and 5xx retried; anything else (a redirect, which is never followed,
    or a 4xx) is final."""
    if 200 <= status_code < 300:
        return SendOutcome.DELIVERED
    if status_code == 429 or status_code >= 500:
        return SendOutcome.RETRY
    return SendOutcome.GIVE_UP


# --------------------------------------------------------------------------- s3 keys


def check_key_prefix(prefix: str) -> None:
    """A prefix stays inside the destination: no leading '/', no '.' or '..' segment."""
    if prefix and not _key_is_contained(prefix.rstrip("/")):
        raise InvalidRequest(
            "delivery.prefix", "The prefix may not start with '/' or hold '.' or '..' segments."
        )


def check_key_template(template: str) -> None:
    """Only the known placeholders, without format specs; `{file}` is required so that the
    files of a split export (and its manifest) do not overwrite each other."""
    field = "delivery.key_template"
    names = _placeholders(template, field)
    unknown = sorted(names - KEY_PLACEHOLDERS)
    if unknown:
        known = ", ".join("{" + name + "}" for name in sorted(KEY_PLACEHOLDERS))
        raise InvalidRequest(field, f"Unknown placeholder(s) {', '.join(unknown)}; use {known}.")
    if "file" not in names:
        raise InvalidRequest(field, "The key template must contain {file}.")
    if not _key_is_contained(template):
        raise InvalidRequest(
            field, "The key template may not start with '/' or hold '.' or '..' segments."
        )


def _placeholders(template: str, field: str) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise InvalidRequest(field, "The key template has an unbalanced brace.") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not name:
            raise InvalidRequest(field, "Placeholders are plain names such as {dataset}.")
        names.add(name)
    return names


def _key_is_contained(key: str) -> bool:
    if key.startswith("/") or "\\" in key or _CONTROL.search(key):
        return False
    return all(segment not in (".", "..") for segment in key.split("/"))


@dataclass(frozen=True)
class KeyValues:
    """What a key template's placeholders stand for, for one file of one export."""

    dataset: str
    job_id: str
    format: str
    created_at: datetime
    timezone: ZoneInfo


def render_key(prefix: str, template: str, values: KeyValues, file_name: str) -> str:
    """The destination key of one file: the prefix, then the template with its placeholders
    filled (dates: the export's creation day in its time zone). Refuses a key that would leave
    the prefix."""
    check_key_prefix(prefix)
    check_key_template(template)
    local = values.created_at.astimezone(values.timezone)
    rendered = template.format(
        dataset=values.dataset,
        yyyy=f"{local.year:04d}",
        mm=f"{local.month:02d}",
        dd=f"{local.day:02d}",
        file=file_name,
        id=values.job_id,
        format=values.format,
    )
    base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    key = base + rendered
    if not _key_is_contained(key) or len(key.encode()) > MAX_KEY_LENGTH:
        raise InvalidRequest("delivery.key_template", "The rendered key is not a valid key.")
    return key


# Error classes of an attempt that never got an answer; only a refused target is final.
TARGET_REFUSED: Final = "TargetRefused"


@dataclass(frozen=True)
class SendResult:
    """What one attempt got: the receiver's status code, or the class of error it met."""

    status_code: int | None = None
    error: str | None = None
    # An error another attempt would meet again (a refused target, a message SES rejects).
    final: bool = False

    @property
    def outcome(self) -> SendOutcome:
        if self.status_code is not None:
            return classify_status(self.status_code)
        # A timeout or a broken connection may pass; a refused target will not.
        final = self.final or self.error == TARGET_REFUSED
        return SendOutcome.GIVE_UP if final else SendOutcome.RETRY
