"""The webhook client on real sockets: names are resolved and checked when sending, redirects
are never followed, and a receiver that does not answer is a timeout or connection error."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dataexport.adapters.webhook_client import WebhookClient
from dataexport.delivery import TARGET_REFUSED, SendOutcome, WebhookEndpoint, check_webhook_url


class _Server:
    def __init__(self, status: int, location: str | None = None) -> None:
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.paths.append(self.path)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/in?team=7"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def elsewhere() -> Iterator[_Server]:
    server = _Server(200)
    yield server
    server.close()


def test_a_redirect_is_not_followed(elsewhere: _Server) -> None:
    redirecting = _Server(302, location=elsewhere.url)
    try:
        endpoint = check_webhook_url(redirecting.url, allow_private=True)
        result = WebhookClient(allow_private=True).post(endpoint, b"{}", {})
    finally:
        redirecting.close()
    assert result.status_code == 302 and result.outcome is SendOutcome.GIVE_UP
    assert redirecting.paths == ["/in?team=7"] and elsewhere.paths == []


def test_a_name_resolving_to_loopback_is_refused_at_send_time(elsewhere: _Server) -> None:
    # "localhost" passes no literal check here: the client resolves it and refuses 127.0.0.1.
    port = elsewhere.http.server_address[1]
    endpoint = WebhookEndpoint("http", "localhost", port, "/in")
    result = WebhookClient(allow_private=False).post(endpoint, b"{}", {})
    assert result.error == TARGET_REFUSED and result.outcome is SendOutcome.GIVE_UP
    assert elsewhere.paths == []


def test_nobody_listening_is_a_connection_error_worth_retrying() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = check_webhook_url(f"http://127.0.0.1:{port}/in", allow_private=True)
    result = WebhookClient(allow_private=True).post(endpoint, b"{}", {})
    assert result.error == "ConnectionError" and result.outcome is SendOutcome.RETRY
