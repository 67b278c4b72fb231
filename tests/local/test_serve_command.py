"""`dataexport-local serve` as a newcomer runs it, in a process of its own: its banner, its
log, a second serve on the same port, and `audit verify` finding it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import pytest

from dataexport_local.aws import free_port
from dataexport_local.cli import main
from dataexport_local.postgres import LocalDatabase
from tests.e2e.http_client import ApiClient, http

STARTUP_SECONDS = 120.0
LOG_SECONDS = 60.0


@dataclass
class Output:
    """A stream of the serving process, read line by line in a thread."""

    lines: list[str] = field(default_factory=list)
    arrived: queue.Queue[str] = field(default_factory=queue.Queue)

    def follow(self, stream: IO[str]) -> None:
        def read() -> None:
            for line in stream:
                self.lines.append(line.rstrip("\n"))
                self.arrived.put(line)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared in:\n" + "\n".join(self.lines)
            try:
                self.arrived.get(timeout=remaining)
            except queue.Empty:
                continue


@dataclass(frozen=True)
class Served:
    port: int
    banner: Output
    log: Output
    environment: dict[str, str]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _database_url(database: LocalDatabase) -> str:
    settings = database.admin_settings
    if settings.is_socket:
        return (
            f"postgresql://{settings.username}@localhost:{settings.port}/{settings.dbname}"
            f"?host={settings.host}"
        )
    return settings.describe()


def _serve(environment: dict[str, str], *arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dataexport_local.cli", "serve", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


@pytest.fixture(scope="module")
def served(database: LocalDatabase) -> Iterator[Served]:
    """A serve on the shared database (already seeded: it seeds nothing), found by PORT."""
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": _database_url(database), "PORT": str(port)}
    environment.pop("LOCAL_TOKEN_SECRET", None)
    process = _serve(environment, "--parameter", "AllowPrivateDeliveryTargets=true")
    assert process.stdout is not None and process.stderr is not None
    banner, log = Output(), Output()
    banner.follow(process.stdout)
    log.follow(process.stderr)
    try:
        banner.wait_for("Ctrl-C to stop.", STARTUP_SECONDS)
        yield Served(port, banner, log, environment)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_banner_says_how_long_tokens_live_and_how_to_raise_the_hourly_limit(
    served: Served,
) -> None:
    text = "\n".join(served.banner.lines)
    assert f"dataexport API   {served.api_url}/v1" in text
    assert "these tokens live 60 minutes" in text
    assert "--ttl" in text
    assert "each user may create 10 exports an hour" in text
    assert "dataexport-local serve --parameter ExportsPerHour=1000" in text


def test_a_second_serve_on_the_same_port_names_it_and_starts_nothing(
    served: Served, database: LocalDatabase
) -> None:
    # Given the demo data as the first serve left it
    connection = database.connect()
    try:
        before = connection.run("SELECT count(*) FROM demo.usage_logs")[0][0]
    finally:
        connection.close()

    # When another serve is started on its port, asked to reseed
    second = _serve(served.environment, "--seed-rows", "7")
    out, err = second.communicate(timeout=60)

    # Then it exits non-zero at once, naming the port, having seeded and started nothing
    assert second.returncode != 0
    assert f"port {served.port} is already in use" in err
    assert "--port" in err
    assert "dataexport API" not in out and "seeding" not in out
    connection = database.connect()
    try:
        assert connection.run("SELECT count(*) FROM demo.usage_logs")[0][0] == before
    finally:
        connection.close()


@pytest.mark.parametrize("form", ["PORT", "{url}", "{url}/v1", "{url}/v1/", "{url}/dev/v1"])
def test_audit_verify_finds_the_running_server(
    served: Served, form: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LOCAL_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("PORT", str(served.port))
    options = [] if form == "PORT" else ["--api-url", form.format(url=served.api_url)]
    status = main(["audit", "verify", "--org", "org_acme", *options])
    assert status == 0, capsys.readouterr().err
    assert "org_acme: audit chain OK" in capsys.readouterr().out


def test_the_log_has_one_line_per_request_and_no_traceback_below_5xx(served: Served) -> None:
    # Given a member's token from the banner
    lines = served.banner.lines
    member_token = lines[lines.index(next(line for line in lines if "member token" in line)) + 1]
    member = ApiClient(served.api_url, member_token)

    # When a newcomer sends a bad token, a query with a secret in it, and an export whose
    # webhook cannot be reached (so the Deliver step is retried)
    assert http("GET", f"{served.api_url}/v1/exports", "not-a-token").status == 401
    assert member.call("GET", "/v1/exports?limit=1&cursor=secret-cursor-value").status == 400
    answer = member.call(
        "POST",
        "/v1/exports",
        {
            "dataset": "usage_logs",
            "fields": ["model"],
            "delivery": {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"},
        },
    )
    assert answer.status == 202, answer.body
    served.log.wait_for("ExportDeliverFunction raised DeliveryFailed", LOG_SECONDS)

    # Then each request is one line: method, path without its query, status, duration
    log = "\n".join(served.log.lines)
    assert "GET /v1/exports -> 401 (" in log
    assert "GET /v1/exports -> 400 (" in log
    assert "POST /v1/exports -> 202 (" in log
    assert "secret-cursor-value" not in log and member_token not in log
    # and neither the refused token nor the retried delivery left a traceback
    assert "Traceback" not in log
    assert "AuthorizerFunction" not in log
