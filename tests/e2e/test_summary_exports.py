"""KPI summaries through the whole product: seed 003's JSON sections and CSV `Metric,Value`
lines, downloaded through the presigned URL and compared with SQL written here by hand."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from tests.e2e.http_client import ApiClient

ORG, MEMBER, ADMIN = "org_acme", "usr_acme_01", "usr_acme_admin"
ZONE = "Asia/Kolkata"
WINDOW = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
# usage_logs' `kpis`, metric by metric, as this test computes them.
USAGE_KPIS = {
    "request_metrics": {
        "total_requests": "count(*)",
        "successful_requests": "count(*) FILTER (WHERE status_code < 400)",
        "failed_requests": "count(*) FILTER (WHERE status_code >= 400)",
        "blocked_requests": "count(*) FILTER (WHERE provider_name IS NULL)",
        "success_rate": "round(100.0 * count(*) FILTER (WHERE status_code < 400) "
        "/ NULLIF(count(*), 0), 2)",
        "retried_requests": "count(*) FILTER (WHERE retry_count > 0)",
    },
    "user_metrics": {
        "active_users": "count(DISTINCT user_id)",
        "active_keys": "count(DISTINCT key_name)",
        "sessions": "count(DISTINCT session_id)",
    },
    "token_metrics": {
        "input_tokens": "coalesce(sum(input_tokens), 0)",
        "output_tokens": "coalesce(sum(output_tokens), 0)",
        "cache_read_tokens": "coalesce(sum(cache_read_tokens), 0)",
        "total_tokens": "coalesce(sum(total_tokens), 0)",
        "cache_read_share": "round(100.0 * sum(cache_read_tokens) "
        "/ NULLIF(sum(total_tokens), 0), 2)",
    },
    "cost_metrics": {
        "total_cost_usd": "coalesce(sum(cost_usd), 0)",
        "average_cost_usd": "round(avg(cost_usd), 6)",
        "most_expensive_request_usd": "max(cost_usd)",
    },
    "latency_metrics": {
        "average_duration_ms": "round(avg(duration_ms), 1)",
        "fastest_ms": "min(duration_ms)",
        "slowest_ms": "max(duration_ms)",
    },
    "period": {"first_request_at": "min(created_at)", "last_request_at": "max(created_at)"},
}


def client(runtime: Any, user: str, role: str) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token(user, ORG, role))


def expected_kpis(superuser: Any, condition: str = "true", **params: Any) -> dict[str, Any]:
    """{section: {metric: value}} of usage_logs' kpis over the tenant's rows meeting
    `condition`, computed by hand."""
    expressions = [sql for metrics in USAGE_KPIS.values() for sql in metrics.values()]
    (row,) = superuser.run(
        f"SELECT {', '.join(expressions)} FROM demo.usage_logs WHERE org_id = :org AND {condition}",
        org=ORG,
        **params,
    )
    values = iter(row)
    return {
        section: {metric: next(values) for metric in metrics}
        for section, metrics in USAGE_KPIS.items()
    }


def as_json(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat(timespec="microseconds")
    return value


def test_a_json_summary_has_the_metadata_then_a_section_per_group_of_metrics(
    runtime: Any, superuser: Any
) -> None:
    # Given a member, who summarizes only their own requests
    member = client(runtime, MEMBER, "member")

    # When they export the usage KPIs of their requests to one model as JSON
    request = {
        "dataset": "usage_logs",
        "format": "json",
        "summary": "kpis",
        "time_range": WINDOW,
        "filters": [{"field": "model", "op": "eq", "value": "claude-sonnet-4-5-20250929"}],
        "options": {"timezone": ZONE},
    }
    job, body = member.export(request)

    # Then the file is seed 003's document: metadata first, then each section's metrics
    document = json.loads(body, parse_float=Decimal)
    assert list(document) == ["metadata", *USAGE_KPIS]
    metadata = document.pop("metadata")
    assert (metadata["dataset"], metadata["time_range"], metadata["timezone"]) == (
        "usage_logs",
        "custom",
        ZONE,
    )
    assert metadata["start_date"] == "2000-01-01T05:30:00.000000+05:30"
    assert metadata["summary"] == "kpis" and "fields" not in metadata
    # And every value is what PostgreSQL computes for the member's rows of that model
    expected = expected_kpis(
        superuser,
        "user_id = :user AND model = :model",
        user=MEMBER,
        model="claude-sonnet-4-5-20250929",
    )
    zone = ZoneInfo(ZONE)
    assert document == {
        section: {metric: as_json(value, zone) for metric, value in metrics.items()}
        for section, metrics in expected.items()
    }
    assert document["request_metrics"]["total_requests"] > 0
    assert (
        document["request_metrics"]["total_requests"]
        < expected_kpis(superuser)["request_metrics"]["total_requests"]
    )
    # And the job is one row of metrics, named and typed in its manifest
    assert job["rows_exported"] == 1 and job["summary"] == "kpis"
    schema = {column["name"]: column["type"] for column in job["manifest"]["schema"]}
    assert schema["request_metrics.success_rate"] == "decimal"
    assert schema["period.first_request_at"] == "timestamp"
    assert job["file_name"].startswith("usage_logs-kpis-20000101-")


def test_a_csv_summary_is_metric_value_lines_after_the_metadata(
    runtime: Any, superuser: Any
) -> None:
    # Given an admin
    admin = client(runtime, ADMIN, "admin")

    # When they export the billing KPIs of all invoices as CSV with semicolons
    job, body = admin.export(
        {
            "dataset": "invoices",
            "format": "csv",
            "summary": "billing",
            "time_range": {"preset": "all_time"},
            "options": {"delimiter": ";"},
        }
    )

    # Then a spreadsheet reads a Metric;Value header, the metadata, then one line per metric
    assert body.startswith(b"\xef\xbb\xbfMetric;Value\r\n")
    header, *lines = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=";")
    assert header == ["Metric", "Value"]
    values = dict(lines)
    assert values["metadata.dataset"] == "invoices"
    assert values["metadata.time_range"] == "all_time"
    assert values["metadata.start_date"] == ""
    (row,) = superuser.run(
        "SELECT count(*) FILTER (WHERE status <> 'draft'), "
        "count(*) FILTER (WHERE payment_status = 'succeeded'), "
        "round(100.0 * count(*) FILTER (WHERE payment_status = 'succeeded') "
        "/ NULLIF(count(*) FILTER (WHERE status <> 'draft'), 0), 2), "
        "coalesce(sum(total_amount) FILTER (WHERE status = 'finalized'), 0), "
        "max(total_amount), count(DISTINCT customer_id) "
        "FROM demo.invoices WHERE org_id = :org",
        org=ORG,
    )
    issued, succeeded, rate, invoiced, largest, customers = row
    assert values["invoice_metrics.invoices_issued"] == str(issued) != "0"
    assert values["payment_metrics.payments_succeeded"] == str(succeeded)
    assert values["payment_metrics.collection_rate"] == format(rate, "f")
    assert values["financial_metrics.total_invoiced"] == format(invoiced, "f")
    assert values["financial_metrics.largest_invoice"] == format(largest, "f")
    assert values["invoice_metrics.customers_invoiced"] == str(customers)
    assert [name for name in values if not name.startswith("metadata.")] == job["fields"]


def test_a_summary_of_no_rows_counts_zero_and_has_no_ratios(runtime: Any) -> None:
    # Given an admin and a range before any request
    admin = client(runtime, ADMIN, "admin")

    # When they summarize it
    _, body = admin.export(
        {
            "dataset": "usage_logs",
            "format": "json",
            "summary": "kpis",
            "time_range": {"start": "1999-01-01T00:00:00Z", "end": "1999-02-01T00:00:00Z"},
        }
    )

    # Then counts and totals are 0, and what has no rows to measure is null
    document = json.loads(body)
    assert document["request_metrics"]["total_requests"] == 0
    assert document["request_metrics"]["success_rate"] is None
    assert document["token_metrics"]["total_tokens"] == 0
    assert document["latency_metrics"]["fastest_ms"] is None
    assert document["period"] == {"first_request_at": None, "last_request_at": None}


def test_the_preview_is_the_summary_file(runtime: Any) -> None:
    # Given an admin's summary request
    admin = client(runtime, ADMIN, "admin")
    request = {"dataset": "platform_users", "format": "json", "summary": "user_kpis"}

    # When they preview it and then export it
    answer = admin.call(
        "GET",
        "/v1/exports/preview?"
        + urlencode({"dataset": "platform_users", "format": "json", "summary": "user_kpis"}),
    )
    _, body = admin.export(request)

    # Then the preview shows the same metrics (its metadata differs only in its date)
    assert answer.status == 200, answer.body
    preview = answer.json()
    assert (preview["estimated_rows"], preview["estimated_rows_exact"]) == (1, True)
    shown = json.loads(preview["content"], parse_float=Decimal)
    exported = json.loads(body, parse_float=Decimal)
    shown.pop("metadata"), exported.pop("metadata")
    assert shown == exported
    users = exported["user_metrics"]
    assert users["total_users"] >= users["active_users"] + users["suspended_users"] > 0


def test_requests_a_summary_cannot_take_are_refused_by_name(runtime: Any) -> None:
    admin = client(runtime, ADMIN, "admin")
    base = {"dataset": "usage_logs", "summary": "kpis"}
    cases = [
        ({**base, "summary": "nope"}, "summary"),
        ({**base, "format": "parquet"}, "format"),
        ({**base, "fields": ["model"]}, "fields"),
        ({**base, "aggregate": {"measures": [{"function": "count"}]}}, "aggregate"),
        ({**base, "max_file_size_mb": 5}, "max_file_size_mb"),
        ({**base, "format": "json", "options": {"nested": True}}, "options.nested"),
        ({"dataset": "fees", "summary": "kpis"}, "summary"),
    ]
    for body, field in cases:
        answer = admin.call("POST", "/v1/exports", body)
        assert answer.status == 400, (body, answer.body)
        assert answer.json()["detail"]["field"] == field, (body, answer.body)


def test_the_catalog_lists_each_datasets_summaries(runtime: Any) -> None:
    member = client(runtime, MEMBER, "member")
    usage = member.call("GET", "/v1/datasets/usage_logs").json()
    (kpis,) = usage["summaries"]
    assert (kpis["name"], kpis["formats"]) == ("kpis", ["csv", "json"])
    names = [metric["name"] for metric in kpis["metrics"]]
    assert names == [
        f"{section}.{metric}" for section, metrics in USAGE_KPIS.items() for metric in metrics
    ]
