"""A LocalRuntime leaves the process as it found it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataexport_local.postgres import EmbeddedPostgres
from dataexport_local.runtime import LocalRuntime
from tests.local.conftest import STUB_TEMPLATE


def test_closing_a_runtime_restores_the_environment_and_stops_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a real AWS profile in the environment
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    before = dict(os.environ)
    database = EmbeddedPostgres(tmp_path / "pg")

    # When a runtime starts
    with LocalRuntime(template_path=STUB_TEMPLATE, database=database) as runtime:
        # Then no real profile is visible while it runs, and it starts in a few seconds
        assert "AWS_PROFILE" not in os.environ
        assert os.environ["AWS_ENDPOINT_URL"] == runtime.aws_endpoint
        assert runtime.startup_seconds is not None and runtime.startup_seconds < 10
        database.connect().close()

    # And when it stops, the environment is exactly as before
    assert dict(os.environ) == before
    database.stop()
