"""boto3 clients, created on first use and cached per process (never at import time)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_ses import SESClient
    from mypy_boto3_stepfunctions import SFNClient

# Short connect timeouts: a function in a VPC without a route to a service (no endpoint, no
# NAT) fails in seconds, inside API Gateway's 29 s, rather than after boto's 60 s per attempt.
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 15
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    signature_version="s3v4",
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
)
# No per-part checksums beyond what S3 requires: TLS guards the bytes in transit, and the sink
# computes the sha256 of every object it writes (the export's checksum, in the job and the
# manifest). A SHA-256 of every part for the signature or a CRC32 of it would only cost CPU on
# every byte exported.
_S3_CONFIG = _CONFIG.merge(
    Config(
        # Completing a multipart upload of many parts can take S3 a while to answer.
        read_timeout=60,
        s3={"payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
)


@cache
def s3_client(region: str) -> S3Client:
    return boto3.client("s3", region_name=region, config=_S3_CONFIG)


@cache
def sfn_client(region: str) -> SFNClient:
    return boto3.client("stepfunctions", region_name=region, config=_CONFIG)


@cache
def scheduler_client(region: str) -> EventBridgeSchedulerClient:
    return boto3.client("scheduler", region_name=region, config=_CONFIG)


@cache
def ses_client(region: str) -> SESClient:
    return boto3.client("ses", region_name=region, config=_CONFIG)


@cache
def events_client(region: str) -> EventBridgeClient:
    return boto3.client("events", region_name=region, config=_CONFIG)


@cache
def secrets_provider() -> SecretsProvider:
    """Powertools' Secrets Manager provider (its cache keeps values for their max_age), with the
    same timeouts as every other client."""
    return SecretsProvider(boto_config=_CONFIG)


def secret_string(secret_arn: str, max_age: int) -> str:
    return str(secrets_provider().get(secret_arn, max_age=max_age))
