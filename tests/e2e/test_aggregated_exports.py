"""Aggregated exports through the whole product: one row per group, computed by PostgreSQL,
downloaded through the presigned URL and compared with a GROUP BY written here by hand."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq

from dataexport.formats.csv_writer import neutralise_formula
from dataexport_local.postgres import LocalDatabase
from tests.e2e.http_client import ApiClient

ZONE = "America/New_York"
REQUEST: dict[str, Any] = {
    "dataset": "usage_logs",
    "time_range": {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
    "options": {"timezone": ZONE},
    "aggregate": {
        "time_bucket": "day",
        "group_by": ["model"],
        "measures": [
            {"function": "count"},
            {"function": "sum", "field": "total_tokens"},
            {"function": "sum", "field": "cost_usd", "name": "spend"},
            {"function": "count_distinct", "field": "user_id"},
        ],
    },
}
# The same groups, by hand: days cut in the export's zone.
EXPECTED_SQL = """
SELECT to_char(date_trunc('day', created_at, :zone) AT TIME ZONE :zone, 'YYYY-MM-DD'), model,
       count(*), sum(total_tokens), sum(cost_usd), count(DISTINCT user_id)
FROM demo.usage_logs WHERE org_id = 'org_acme'
GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST
"""


def admin(runtime: Any) -> ApiClient:
    return ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))


def expected_groups(database: LocalDatabase) -> list[list[Any]]:
    connection = database.connect()
    try:
        return [list(row) for row in connection.run(EXPECTED_SQL, zone=ZONE)]
    finally:
        connection.close()


def test_an_aggregated_csv_export_holds_one_row_per_group(
    runtime: Any, database: LocalDatabase
) -> None:
    expected = expected_groups(database)
    assert len(expected) > 1

    done, body = admin(runtime).export({**REQUEST, "format": "csv", "options": {"timezone": ZONE}})

    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == [
        "Day",
        "Model",
        "Rows",
        "Sum of Total Tokens",
        "Sum of Cost (USD)",
        "Distinct User ID",
    ]
    assert done["rows_exported"] == len(expected) == len(rows) - 1
    assert done["fields"] == [
        "day",
        "model",
        "count",
        "sum_total_tokens",
        "spend",
        "count_distinct_user_id",
    ]
    assert done["aggregate"]["time_bucket"] == "day"
    for row, want in zip(rows[1:], expected, strict=True):
        day, model, count, tokens, spend, users = row
        assert day.startswith(want[0] + "T00:00:00")  # local midnight, with its offset
        assert day[-6:] in ("-05:00", "-04:00")
        wanted_model = None if want[1] is None else neutralise_formula(want[1])
        assert (model or None, int(count), int(tokens), Decimal(spend), int(users)) == (
            wanted_model,
            want[2],
            want[3],
            want[4],
            want[5],
        )


def test_an_aggregated_json_export_and_its_preview_agree(
    runtime: Any, database: LocalDatabase
) -> None:
    expected = expected_groups(database)
    _, body = admin(runtime).export({**REQUEST, "format": "json"})
    objects = json.loads(body)
    assert len(objects) == len(expected)
    assert [(item["model"], item["count"]) for item in objects] == [
        (want[1], want[2]) for want in expected
    ]
    assert all(isinstance(item["spend"], (int, float)) for item in objects)

    query = {
        "dataset": "usage_logs",
        "format": "json",
        "start": REQUEST["time_range"]["start"],
        "end": REQUEST["time_range"]["end"],
        "options": json.dumps(REQUEST["options"]),
        "aggregate": json.dumps(REQUEST["aggregate"]),
    }
    answer = admin(runtime).call("GET", "/v1/exports/preview?" + urlencode(query))
    assert answer.status == 200, answer.body
    preview = answer.json()
    assert preview["estimated_rows"] == len(expected)
    assert json.loads(preview["content"]) == objects[: preview["rows"]]


def test_aggregate_requests_outside_the_catalog_are_refused_naming_the_part(
    runtime: Any,
) -> None:
    client = admin(runtime)
    aggregate: dict[str, Any] = REQUEST["aggregate"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"group_by": ["cost_usd"]}, "aggregate.group_by"),
        ({"measures": [{"function": "sum", "field": "model"}]}, "aggregate.measures[0].field"),
        ({"measures": [{"function": "avg"}]}, "aggregate.measures[0].field"),
        (
            {"measures": [{"function": "count"}, {"function": "count"}]},
            "aggregate",
        ),
        ({"measures": [{"function": "count", "name": "Bad Name"}]}, "aggregate.measures[0].name"),
    ]
    for change, field in cases:
        answer = client.call(
            "POST", "/v1/exports", {**REQUEST, "aggregate": {**aggregate, **change}}
        )
        assert answer.status == 400, (change, answer.body)
        assert answer.json()["detail"]["field"] == field, answer.body
    with_fields = client.call("POST", "/v1/exports", {**REQUEST, "fields": ["model"]})
    assert with_fields.status == 400 and with_fields.json()["detail"]["field"] == "fields"
    not_offered = client.call(
        "POST", "/v1/exports", {"dataset": "audit_events", "aggregate": aggregate}
    )
    assert not_offered.status in (400, 403)
    dataset = client.call("GET", "/v1/datasets/usage_logs").json()
    assert "model" in dataset["aggregations"]["group_by"]
    assert {"function": "sum", "field": "cost_usd"} in dataset["aggregations"]["measures"]


def test_aggregated_parquet_and_xlsx_exports_are_typed(
    runtime: Any, database: LocalDatabase
) -> None:
    expected = expected_groups(database)
    _, body = admin(runtime).export({**REQUEST, "format": "parquet"})
    table = pq.read_table(pa.BufferReader(body))
    assert table.column_names[:3] == ["day", "model", "count"]
    assert str(table.schema.field("day").type) == f"timestamp[us, tz={ZONE}]"
    assert table.column("count").to_pylist() == [want[2] for want in expected]
    assert table.column("sum_total_tokens").to_pylist() == [want[3] for want in expected]
    assert table.column("spend").to_pylist() == [want[4] for want in expected]

    _, body = admin(runtime).export({**REQUEST, "format": "xlsx"})
    (sheet,) = openpyxl.load_workbook(io.BytesIO(body), read_only=True).worksheets
    rows = list(sheet.iter_rows(values_only=True))
    assert [row[2] for row in rows[1:]] == [want[2] for want in expected]
    assert [row[3] for row in rows[1:]] == [want[3] for want in expected]
