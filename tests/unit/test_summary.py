"""KPI summaries: declarations checked when the catalog loads, requests resolved into one row
of typed metrics, the SQL built from catalog names with every value bound, and seed 003's two
layouts written by the summary writers."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dataexport.catalog.loader import load_catalog, parse_dataset
from dataexport.catalog.model import ColumnType, Dataset
from dataexport.errors import CatalogError, InvalidRequest
from dataexport.export_request import ExportRequest, resolve_export
from dataexport.formats.summary_writers import SummaryCsvWriter, SummaryJsonWriter
from dataexport.formats.writer import FormatOptions, OutputColumn
from dataexport.query_builder import RowScope
from dataexport.summary import resolve_summary

CATALOG = load_catalog()


def orders(**metrics: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "title": "Orders",
        "source": "shop.orders",
        "tenant_column": "org_id",
        "time_column": "placed_at",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "placed_at", "type": "timestamp", "label": "Placed"},
            {"name": "status", "type": "string", "label": "Status"},
            {"name": "amount", "type": "decimal", "label": "Amount"},
            {"name": "email", "type": "string", "label": "Email", "sensitive": "email"},
        ],
        "filters": [
            {"column": "status", "operators": ["eq", "in"]},
            {"column": "amount", "operators": ["gt"]},
            {"column": "email", "operators": ["eq", "is_null"]},
        ],
        "summaries": {"kpis": {"title": "KPIs", "sections": {"orders": metrics}}},
    }


def problems_of(declaration: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as raised:
        Dataset.model_validate(declaration)
    return str(raised.value)


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ({"function": "sum"}, "function sum needs a field"),
        ({"function": "sum", "field": "status"}, "sum is not valid for string column 'status'"),
        ({"function": "avg", "field": "nope"}, "'nope' is not a declared column"),
        ({}, "give a function"),
        ({"function": "max", "field": "email"}, "'email' is sensitive; it can only be counted"),
        (
            {"function": "count", "where": [{"field": "placed_at", "op": "eq", "value": 1}]},
            "where[0].field: 'placed_at' is not filterable",
        ),
        (
            {"function": "count", "where": [{"field": "status", "op": "gt", "value": "a"}]},
            "where[0].op: 'gt' is not allowed on 'status'",
        ),
        (
            {"function": "count", "where": [{"field": "email", "op": "eq", "value": "a@b.c"}]},
            "'email' is sensitive; only is_null",
        ),
        ({"ratio": {"numerator": "paid", "denominator": "all"}}, "'paid' is not a measure"),
        (
            {"function": "count", "ratio": {"numerator": "a", "denominator": "b"}},
            "a ratio takes no function",
        ),
    ],
)
def test_a_bad_metric_is_refused_with_its_place(metric: dict[str, Any], message: str) -> None:
    problems = problems_of(orders(bad=metric))
    assert "summaries.kpis.sections.orders.bad" in problems
    assert message in problems


def test_metric_names_are_unique_across_sections() -> None:
    declaration = orders(total={"function": "count"})
    declaration["summaries"]["kpis"]["sections"]["more"] = {"total": {"function": "count"}}
    assert "metric 'total' is declared in more than one section" in problems_of(declaration)


def test_only_postgres_datasets_have_summaries() -> None:
    declaration = CATALOG.get("audit_events").model_dump(mode="json")
    declaration["summaries"] = orders(n={"function": "count"})["summaries"]
    declaration["source"] = "audit_trail"
    assert "only PostgreSQL datasets are summarized" in problems_of(declaration)


def test_a_condition_value_of_the_wrong_type_stops_the_catalog_from_loading() -> None:
    # Given a metric counting orders above an amount that is not a number
    declaration = orders(
        big={"function": "count", "where": [{"field": "amount", "op": "gt", "value": "x"}]}
    )

    # When the file is loaded, then the error names the file and the condition's value
    with pytest.raises(CatalogError) as raised:
        parse_dataset(json.dumps(declaration), "datasets/orders.yaml")
    assert raised.value.message.startswith(
        "datasets/orders.yaml: summaries.kpis.sections.orders.big.where[0].value"
    )
    (error,) = raised.value.detail["errors"]
    assert error["field"] == "summaries.kpis.sections.orders.big.where[0].value"


def test_rounding_is_asked_only_of_numbers() -> None:
    declaration = orders(n={"function": "count", "decimal_places": 2})
    with pytest.raises(CatalogError, match="decimal_places: the metric is integer"):
        parse_dataset(json.dumps(declaration), "orders.yaml")


def test_metrics_are_typed_by_what_they_measure() -> None:
    dataset = Dataset.model_validate(
        orders(
            n={"function": "count"},
            paid={"function": "count", "where": [{"field": "status", "op": "eq", "value": "paid"}]},
            total={"function": "sum", "field": "amount"},
            mean={"function": "avg", "field": "id", "decimal_places": 1},
            first={"function": "min", "field": "placed_at"},
            rate={"ratio": {"numerator": "paid", "denominator": "n", "percent": True}},
        )
    )
    summary = resolve_summary(dataset, "kpis")
    assert [(m.path, m.type) for m in summary.metrics] == [
        ("orders.n", ColumnType.INTEGER),
        ("orders.paid", ColumnType.INTEGER),
        ("orders.total", ColumnType.DECIMAL),
        ("orders.mean", ColumnType.DECIMAL),
        ("orders.first", ColumnType.TIMESTAMP),
        ("orders.rate", ColumnType.DECIMAL),
    ]
    assert summary.metrics[0].label == "N"


def test_the_summary_sql_binds_every_value_and_reads_the_rows_once() -> None:
    resolved = resolve_export(
        ExportRequest.model_validate(
            {
                "dataset": "invoices",
                "summary": "billing",
                "filters": [{"field": "currency", "op": "eq", "value": "EUR'; --"}],
            }
        ),
        CATALOG,
    )
    query = resolved.select(RowScope(org_id="org'); DROP TABLE x; --"))
    assert "DROP" not in query.sql and "EUR" not in query.sql and "'draft'" not in query.sql
    assert "org'); DROP TABLE x; --" in query.params.values()
    assert query.sql.count(' FROM "') == 1 and "GROUP BY" not in query.sql
    assert query.sql.count(' AS "metric_') == len(resolved.columns)
    assert resolved.count(RowScope("org_a")).sql == "SELECT 1"
    assert not resolved.splittable


def test_a_member_may_summarize_only_datasets_their_role_may_export() -> None:
    with pytest.raises(InvalidRequest) as raised:
        resolve_export(
            ExportRequest.model_validate({"dataset": "usage_logs", "summary": "billing"}),
            CATALOG,
        )
    assert raised.value.detail["field"] == "summary"
    assert "summaries: kpis" in raised.value.message


COLUMNS = [
    OutputColumn("sales.orders", "Orders", ColumnType.INTEGER),
    OutputColumn("sales.revenue", "Revenue", ColumnType.DECIMAL),
    OutputColumn("sales.best_rate", "Best", ColumnType.DECIMAL),
    OutputColumn("time.first", "First", ColumnType.TIMESTAMP),
]
ROW = [1523, Decimal("6265.005"), None, datetime(2025, 10, 8, 8, 30, tzinfo=UTC)]
METADATA = {"export_date": "2025-10-08T10:30:00", "time_range": "7d", "start_date": None}


def test_the_json_layout_is_the_metadata_then_one_object_per_section() -> None:
    options = FormatOptions(timezone=ZoneInfo("Europe/Paris"), metadata=METADATA)
    text = SummaryJsonWriter.whole_file(COLUMNS, options, [ROW]).decode()
    assert json.loads(text, parse_float=Decimal) == {
        "metadata": METADATA,
        "sales": {"orders": 1523, "revenue": Decimal("6265.005"), "best_rate": None},
        "time": {"first": "2025-10-08T10:30:00.000000+02:00"},
    }
    assert text.startswith('{\n  "metadata": {\n    "export_date"')
    assert text.endswith("\n  }\n}\n")


def test_the_csv_layout_follows_the_csv_options() -> None:
    options = FormatOptions(
        bom=False, delimiter=";", line_ending="\n", decimal_places=2, metadata=METADATA
    )
    text = SummaryCsvWriter.whole_file(COLUMNS, options, [ROW]).decode()
    assert text.splitlines()[0] == "Metric;Value" and "\r" not in text
    assert list(csv.reader(io.StringIO(text), delimiter=";"))[1:] == [
        ["metadata.export_date", "2025-10-08T10:30:00"],
        ["metadata.time_range", "7d"],
        ["metadata.start_date", ""],
        ["sales.orders", "1523"],
        ["sales.revenue", "6265.01"],
        ["sales.best_rate", ""],
        ["time.first", "2025-10-08T08:30:00.000000+00:00"],
    ]
