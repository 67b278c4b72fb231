"""Fixtures of the local runtime's own tests: a tiny stub application with its own template."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dataexport_local.template import StackTemplate, resolve_template

STUB_TEMPLATE = Path(__file__).parent / "stub_app" / "template.yaml"
STUB_DATABASE_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stub-db"
DATABASE_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
# The project's template with every resource on: backups, which run in the database's subnets.
BACKUP_PARAMETERS = {
    "DatabaseSecretArn": DATABASE_SECRET,
    "BackupImageUri": "repo/backup:1",
    "DatabaseSubnetIds": "subnet-1",
    "DatabaseSecurityGroupId": "sg-1",
}


@pytest.fixture(scope="module")
def stub_template() -> StackTemplate:
    """The stub application's template, resolved with the names the local runtime plans."""
    return resolve_template(STUB_TEMPLATE, {"DatabaseSecretArn": STUB_DATABASE_SECRET_ARN})


@contextmanager
def captured_log(name: str) -> Iterator[list[logging.LogRecord]]:
    """Every record the logger `name` emits while the block runs, at every level. A handler of
    its own rather than caplog: the serve command stops the runtime's loggers propagating."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
