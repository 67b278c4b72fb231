"""Opaque paging cursors over DynamoDB's LastEvaluatedKey, shared by the stores that list."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dataexport.errors import InvalidRequest


def encode_cursor(key: dict[str, Any] | None, returned: int, limit: int) -> str | None:
    """The cursor of the next page; None when this page was the last."""
    if not key or returned < limit:
        return None
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, must_match: dict[str, str]) -> dict[str, Any] | None:
    """Decode a cursor and refuse one made for another caller's listing."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("cursor", "The cursor is not valid.") from exc
    if not isinstance(key, dict) or any(
        not isinstance(key.get(name), dict) or key[name].get("S") != value
        for name, value in must_match.items()
    ):
        raise InvalidRequest("cursor", "The cursor is not valid.")
    return key
