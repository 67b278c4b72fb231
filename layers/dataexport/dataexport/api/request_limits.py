"""What every request body must be before any route, model or parser sees it.

API Gateway hands the function the raw body; Powertools would parse it (JSON, forms, multipart)
inside its validation, before any middleware of ours runs. So the body is checked here, on the
raw event, in this order: at most 64 KiB (413), declared as JSON (415), UTF-8 text (400), JSON
within the parser's limits (400, see client_json).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from dataexport.client_json import load_client_json
from dataexport.errors import InvalidRequest, RequestTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 64 * 1024
JSON_MEDIA_TYPE = "application/json"


def check_request_body(event: Mapping[str, Any]) -> None:
    """Raise the domain error that refuses this request's body; nothing for no body."""
    body = event.get("body")
    if not body:
        return
    raw = _body_bytes(body, base64_encoded=bool(event.get("isBase64Encoded")))
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge(len(raw), MAX_BODY_BYTES)
    content_type = _header(event, "Content-Type")
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType(content_type)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("body", "The request body is not UTF-8 text.") from None
    load_client_json(text)


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json`, with no parameter but `charset=utf-8` (any case, maybe quoted)."""
    if content_type is None:
        return False
    media_type, *parameters = content_type.split(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return False
    for parameter in filter(str.strip, parameters):
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _body_bytes(body: str, *, base64_encoded: bool) -> bytes:
    if not base64_encoded:
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise InvalidRequest("body", "The request body is not valid base64.") from None


def _header(event: Mapping[str, Any], name: str) -> str | None:
    wanted = name.lower()
    headers = event.get("headers") or {}
    return next((str(v) for k, v in headers.items() if str(k).lower() == wanted), None)
