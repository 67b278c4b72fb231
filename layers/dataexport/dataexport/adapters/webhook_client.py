"""Sends webhooks: one POST, to an address checked when it is sent, redirects never followed.

The host is resolved here and every address it has must be allowed (delivery.address_allowed);
the connection then goes to that address (the TLS check still names the host), so a name that
resolves differently a moment later cannot steer the request elsewhere. Only the host is ever
logged: a URL's path and query may hold a receiver's token.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from typing import Final

from aws_lambda_powertools import Logger

from dataexport.delivery import (
    TARGET_REFUSED,
    IpAddress,
    SendResult,
    WebhookEndpoint,
    address_allowed,
)

logger = Logger(child=True)

CONNECT_TIMEOUT_SECONDS: Final = 5.0
RESPONSE_TIMEOUT_SECONDS: Final = 10.0
# A receiver's answer is not used; a little of it is read so the connection closes cleanly.
RESPONSE_BYTES_READ: Final = 1024
USER_AGENT: Final = "dataexport-webhooks/1"


class WebhookClient:
    """POSTs JSON to webhook endpoints; `allow_private` is the deployment's permission."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._tls = ssl.create_default_context()

    def post(
        self, endpoint: WebhookEndpoint, body: bytes, headers: Mapping[str, str]
    ) -> SendResult:
        """Send once; the status code, or the class of the error met (never raised)."""
        try:
            address = self._resolve(endpoint)
        except (socket.gaierror, UnicodeError):  # UnicodeError: a name IDNA cannot encode
            return self._failed(endpoint, "DnsError")
        if address is None:
            logger.warning("Webhook target refused", extra={"host": endpoint.host})
            return SendResult(error=TARGET_REFUSED)
        connection = self._connection(endpoint, address)
        try:
            connection.request(
                "POST",
                endpoint.target,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    **headers,
                },
            )
            if connection.sock is not None:
                connection.sock.settimeout(RESPONSE_TIMEOUT_SECONDS)
            response = connection.getresponse()
            response.read(RESPONSE_BYTES_READ)
            status = response.status
        except TimeoutError:
            return self._failed(endpoint, "Timeout")
        except ssl.SSLError:
            return self._failed(endpoint, "TlsError")
        except (OSError, http.client.HTTPException):
            return self._failed(endpoint, "ConnectionError")
        finally:
            connection.close()
        logger.info("Webhook answered", extra={"host": endpoint.host, "status_code": status})
        return SendResult(status_code=status)

    def _resolve(self, endpoint: WebhookEndpoint) -> str | None:
        """An address to connect to, or None if any of the host's addresses is not allowed."""
        found = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        addresses: list[IpAddress] = []
        for _, _, _, _, sockaddr in found:
            addresses.append(_ip(str(sockaddr[0])))
        if not addresses or not all(address_allowed(a, self._allow_private) for a in addresses):
            return None
        return str(addresses[0])

    def _connection(self, endpoint: WebhookEndpoint, address: str) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if endpoint.is_https:
            connection = http.client.HTTPSConnection(
                endpoint.host, endpoint.port, timeout=CONNECT_TIMEOUT_SECONDS, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(
                endpoint.host, endpoint.port, timeout=CONNECT_TIMEOUT_SECONDS
            )

        # Connect to the address that was checked, not to whatever the name resolves to next.
        def pinned(
            _: tuple[str, int], timeout: float, source: tuple[str, int] | None = None
        ) -> socket.socket:
            return socket.create_connection((address, endpoint.port), timeout, source)

        connection._create_connection = pinned  # type: ignore[attr-defined]
        return connection

    @staticmethod
    def _failed(endpoint: WebhookEndpoint, error: str) -> SendResult:
        logger.warning("Webhook not answered", extra={"host": endpoint.host, "error": error})
        return SendResult(error=error)


def _ip(text: str) -> IpAddress:
    # getaddrinfo may give an IPv6 scope ("fe80::1%eth0"): the scope is not part of the address.
    return ipaddress.ip_address(text.partition("%")[0])
