"""Stub export step: fails with SourceUnavailable when asked to, sleeps when asked to, else
reports its configuration, its process and its environment's names."""

from __future__ import annotations

import os
import time
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
    time.sleep(float(event.get("sleep", 0)))
    return {
        "worked": True,
        "table": os.environ.get("RECORDS_TABLE_NAME"),
        "pid": os.getpid(),
        "environment": dict(os.environ),
        "context": {
            "function_name": context.function_name,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
        },
        "invocations": INVOCATIONS,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
