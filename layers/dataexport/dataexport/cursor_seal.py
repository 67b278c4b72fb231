"""Paging cursors as clients hold them: opaque and tamper-evident.

A store's cursor (its encoded DynamoDB start key) goes out sealed with an HMAC tag, under a key
derived from the deployment's secret and bound to the listing and caller it was made for. A
cursor that was forged, truncated, edited or made for another listing is refused as a 400 on
`cursor` before any store reads it, so no invented start key ever reaches DynamoDB.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from dataexport.errors import InvalidRequest

# Derives the cursor key from the deployment secret, apart from every other key derived from it.
_KEY_LABEL = b"dataexport paging cursor v1\x00"
_TAG_BYTES = 18
_SEPARATOR = "."


@dataclass(frozen=True)
class CursorSeal:
    key: bytes

    @classmethod
    def from_deployment_secret(cls, secret: str) -> CursorSeal:
        return cls(hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest())

    def seal(self, cursor: str | None, scope: Sequence[str]) -> str | None:
        """`cursor` as the client gets it (None stays None: the last page)."""
        if cursor is None:
            return None
        return f"{cursor}{_SEPARATOR}{self._tag(cursor, scope)}"

    def open(self, sealed: str | None, scope: Sequence[str]) -> str | None:
        """The store's cursor inside `sealed`; InvalidRequest on `cursor` unless this seal made
        it for this `scope`."""
        if not sealed:
            return None
        cursor, _, tag = sealed.rpartition(_SEPARATOR)
        if not cursor or not hmac.compare_digest(tag, self._tag(cursor, scope)):
            raise InvalidRequest(
                "cursor",
                "The cursor is not valid: pass next_cursor exactly as the same listing "
                "returned it.",
            )
        return cursor

    def _tag(self, cursor: str, scope: Sequence[str]) -> str:
        # JSON keeps the parts apart: no two (scope, cursor) pairs sign the same message.
        message = json.dumps([*scope, cursor]).encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()[:_TAG_BYTES]
        return base64.urlsafe_b64encode(digest).decode()
