"""A preview's estimated_bytes is the size of the file the export will write: the same for
every `limit` of the same request, and within 25% of the real file in every format, compressed
or not."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from dataexport_local.runtime import LocalRuntime
from tests.e2e.http_client import ApiClient

START, END = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
FIELDS = ["created_at", "user_name", "model", "endpoint", "status_code", "cost_usd"]
TOLERANCE = 0.25
MIN_ROWS = 2_000  # "a few thousand": well beyond the sample the estimate renders


@pytest.mark.parametrize(
    ("file_format", "compression"),
    [
        ("csv", "none"),
        ("csv", "gzip"),
        ("csv", "zstd"),
        ("json", "none"),
        ("json", "gzip"),
        ("ndjson", "none"),
        ("ndjson", "zstd"),
        ("xlsx", "none"),
        ("parquet", "none"),
    ],
)
def test_the_estimate_is_close_to_the_real_file_and_independent_of_the_limit(
    runtime: LocalRuntime, file_format: str, compression: str
) -> None:
    # Given an admin's request for a few thousand rows
    admin = ApiClient(runtime.api_url, runtime.token("usr_size", "org_acme", "admin"))
    request = {
        "dataset": "usage_logs",
        "format": file_format,
        "compression": compression,
        "fields": FIELDS,
        "time_range": {"start": START, "end": END},
        # A zone of its own keeps the export from folding into another test's identical one.
        "options": {"timezone": "Europe/Lisbon"},
    }
    query = {
        "dataset": "usage_logs",
        "format": file_format,
        "compression": compression,
        "fields": ",".join(FIELDS),
        "start": START,
        "end": END,
        "options": json.dumps(request["options"]),
    }

    # When it is previewed with limits 1, 10 and 100
    estimates = set()
    for limit in (1, 10, 100):
        answer = admin.call("GET", "/v1/exports/preview?" + urlencode({**query, "limit": limit}))
        assert answer.status == 200, answer.body
        shown = answer.json()
        assert shown["rows"] == limit
        estimates.add(shown["estimated_bytes"])

    # Then the estimate is the same each time
    (estimate,) = estimates

    # And when it is exported, the file is within 25% of it
    done, body = admin.export(request)
    assert done["rows_exported"] >= MIN_ROWS
    assert done["bytes"] == len(body)
    assert abs(estimate - len(body)) <= TOLERANCE * len(body), (estimate, len(body))


def test_a_small_export_is_estimated_exactly(runtime: LocalRuntime) -> None:
    # Given a request for fewer rows than the estimate's sample
    admin = ApiClient(runtime.api_url, runtime.token("usr_size", "org_acme", "admin"))
    request: dict[str, Any] = {
        "dataset": "usage_logs",
        "format": "csv",
        "fields": ["model"],
        "filters": [{"field": "status_code", "op": "eq", "value": 500}],
        "options": {"timezone": "Africa/Lagos"},
        "time_range": {"start": START, "end": END},
    }
    query = {
        "dataset": "usage_logs",
        "fields": "model",
        "filters": json.dumps(request["filters"]),
        "options": json.dumps(request["options"]),
        "start": START,
        "end": END,
    }
    shown = admin.call("GET", "/v1/exports/preview?" + urlencode(query)).json()

    # When it is exported, the estimate was its size to the byte
    done, body = admin.export(request)
    assert 0 < done["rows_exported"] < 1_000
    assert shown["estimated_bytes"] == len(body)
