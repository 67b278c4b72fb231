"""Fixtures of the local runtime's own tests: a tiny stub application with its own template."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataexport_local.template import SamTemplate, resolve_template

STUB_TEMPLATE = Path(__file__).parent / "stub_app" / "template.yaml"
STUB_DATABASE_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stub-db"


@pytest.fixture(scope="module")
def stub_template() -> SamTemplate:
    """The stub application's template, resolved with the names the local runtime plans."""
    return resolve_template(STUB_TEMPLATE, {"DatabaseSecretArn": STUB_DATABASE_SECRET_ARN})
