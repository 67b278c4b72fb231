"""Stub export step: fails with SourceUnavailable when asked to, else reports its configuration."""

from __future__ import annotations

import os
from typing import Any

from dataexport.errors import DataExportError

INVOCATIONS = 0


class SourceUnavailable(DataExportError):
    """Named like the real step error that the state machine's Catch matches."""


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS  # noqa: PLW0603 - counts invocations of this one module instance
    INVOCATIONS += 1
    if event.get("fail"):
        raise SourceUnavailable("database down")
    return {
        "worked": True,
        "table": os.environ.get("RECORDS_TABLE_NAME"),
        "invocations": INVOCATIONS,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
