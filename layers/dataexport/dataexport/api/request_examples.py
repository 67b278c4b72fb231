"""Request examples of the OpenAPI document: real requests against the demo catalog, each one
accepted as it stands (tests/unit/test_openapi_document.py validates them)."""

from __future__ import annotations

from typing import Any, Final

from aws_lambda_powertools.event_handler.openapi.models import Example

CSV_WITH_FILTERS: Final[dict[str, Any]] = {
    "dataset": "usage_logs",
    "format": "csv",
    "fields": ["created_at", "model", "total_tokens", "cost_usd"],
    "filters": [
        {
            "field": "model",
            "op": "in",
            "value": ["gpt-4o-2024-11-20", "claude-sonnet-4-5-20250929"],
        },
        {"field": "status_code", "op": "eq", "value": 200},
    ],
    "time_range": {"preset": "30d"},
    "options": {"delimiter": ";", "timezone": "Europe/Paris"},
}

XLSX: Final[dict[str, Any]] = {
    "dataset": "invoices",
    "format": "xlsx",
    "fields": ["number", "customer_name", "status", "currency", "total_amount", "issuing_date"],
    "filters": [{"field": "status", "op": "eq", "value": "finalized"}],
    "time_range": {"start": "2026-01-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
}

AGGREGATE: Final[dict[str, Any]] = {
    "dataset": "usage_logs",
    "format": "json",
    "time_range": {"preset": "7d"},
    "aggregate": {
        "time_bucket": "day",
        "group_by": ["model"],
        "measures": [
            {"function": "count"},
            {"function": "sum", "field": "total_tokens"},
            {"function": "sum", "field": "cost_usd", "name": "spend"},
        ],
    },
}

NDJSON_GZIP_SPLIT: Final[dict[str, Any]] = {
    "dataset": "usage_logs",
    "format": "ndjson",
    "compression": "gzip",
    "max_file_size_mb": 100,
    "time_range": {"preset": "90d"},
}

SCHEDULE: Final[dict[str, Any]] = {
    "name": "Weekly usage",
    "description": "Last week's usage every Monday at 06:00, Paris time.",
    "schedule_expression": "cron(0 6 ? * MON *)",
    "timezone": "Europe/Paris",
    "export": {"dataset": "usage_logs", "format": "parquet", "time_range": {"preset": "7d"}},
}

EXPORT_REQUEST_EXAMPLES: Final = {
    "csv": Example(summary="CSV with filters over the last 30 days", value=CSV_WITH_FILTERS),
    "xlsx": Example(summary="Excel workbook of a quarter's invoices (admins)", value=XLSX),
    "aggregate": Example(summary="Daily totals by model, as JSON", value=AGGREGATE),
    "ndjson": Example(summary="NDJSON, gzip, in files of 100 MB", value=NDJSON_GZIP_SPLIT),
}

SCHEDULE_EXAMPLES: Final = {
    "weekly": Example(summary="Every Monday, last week's usage as Parquet", value=SCHEDULE),
}
