"""Stub Catch target: reports the error the failed state handed over."""

from __future__ import annotations

import json
from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    error = event["error"]
    return {"recovered": error["Error"], "message": json.loads(error["Cause"])["errorMessage"]}
