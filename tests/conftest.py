"""Fixtures shared by the end-to-end tests: one embedded PostgreSQL, local runtimes on it.

The e2e tests talk to the product exactly as users do: real HTTP to the local API Gateway, the
real authorizer and API function, moto's Step Functions executing the real state machine, and
presigned URLs downloaded over HTTP.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from dataexport_local.postgres import LocalDatabase, database_from_environment, seed_demo_data
from dataexport_local.runtime import LocalRuntime

E2E_SEED_ROWS = 5_000
TEST_DATASETS = Path(__file__).parent / "e2e" / "datasets"

WORKER_SETUP = Path(__file__).parent / "e2e" / "worker_setup"


class RuntimeFactory(Protocol):
    def __call__(
        self, parameters: Mapping[str, str] | None, *, worker_setup_files: Sequence[Path] = ()
    ) -> LocalRuntime: ...


@pytest.fixture(scope="session")
def database() -> Iterator[LocalDatabase]:
    """DATABASE_URL's server if set, else an embedded PostgreSQL in a short temporary path."""
    with tempfile.TemporaryDirectory(prefix="dxpg", dir="/tmp") as data_dir:
        started = database_from_environment(data_dir=Path(data_dir) / "pg")
        started.start()
        seed_demo_data(started, E2E_SEED_ROWS)
        yield started
        started.stop()


@pytest.fixture(scope="session")
def runtime_factory(database: LocalDatabase) -> RuntimeFactory:
    """Starts a local runtime on the shared database, with the test-only datasets loaded."""

    def start(
        parameters: Mapping[str, str] | None = None, *, worker_setup_files: Sequence[Path] = ()
    ) -> LocalRuntime:
        return LocalRuntime(
            parameters,
            database=database,
            environment={"DATASETS_DIR": str(TEST_DATASETS)},
            worker_setup_files=worker_setup_files,
        )

    return start


@pytest.fixture(scope="module")
def runtime(runtime_factory: RuntimeFactory) -> Iterator[LocalRuntime]:
    with runtime_factory(None) as started:
        yield started


@pytest.fixture
def superuser(database: LocalDatabase) -> Iterator[Any]:
    """A superuser connection to check exports against what PostgreSQL holds."""
    connection = database.connect()
    yield connection
    connection.close()


@pytest.fixture
def as_format_function(runtime: LocalRuntime) -> Iterator[None]:
    """os.environ as the Format function's workers have it, for tests that call the product's
    code directly (the test process has no function's environment of its own)."""
    with runtime.as_function("ExportFormatFunction"):
        yield
