"""Datasets read from DynamoDB: the audit_events declaration, the rules such a declaration
follows, and filters evaluated on rows with PostgreSQL's meaning."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from dataexport.catalog.loader import load_catalog, parse_dataset
from dataexport.catalog.model import FilterOperator, SourceKind
from dataexport.errors import CatalogError
from dataexport.filters import FilterClause, TimeWindow
from dataexport.row_filter import clause_matches, row_matches


def audit_declaration(**changes: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {
        "name": "audit_copy",
        "title": "Audit copy",
        "source": "audit_trail",
        "source_kind": "dynamodb",
        "tenant_column": "org_id",
        "time_column": "at",
        "key": "seq",
        "roles": ["admin"],
        "columns": [
            {"name": "seq", "type": "integer", "label": "Seq"},
            {"name": "at", "type": "timestamp", "label": "Time"},
            {"name": "type", "type": "string", "label": "Event"},
        ],
    }
    declaration.update(changes)
    return declaration


def parse(declaration: dict[str, Any]) -> Any:
    return parse_dataset(yaml.safe_dump(declaration), "audit_copy.yaml")


def test_the_audit_events_dataset_reads_dynamodb_and_only_admins_see_it() -> None:
    catalog = load_catalog(None)
    audit_events = catalog.get("audit_events")
    assert audit_events.source_kind is SourceKind.DYNAMODB
    assert (audit_events.tenant_column, audit_events.key) == ("org_id", "seq")
    assert "audit_events" in [d.name for d in catalog.visible_to("admin")]
    assert "audit_events" not in [d.name for d in catalog.visible_to("member")]


def test_datasets_read_postgresql_unless_they_say_otherwise() -> None:
    assert load_catalog(None).get("usage_logs").source_kind is SourceKind.POSTGRES


def test_a_valid_dynamodb_declaration_loads() -> None:
    assert parse(audit_declaration()).source_kind is SourceKind.DYNAMODB


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": "orders"}, "not a DynamoDB source"),
        ({"source": "demo.audit_trail"}, "not a DynamoDB source"),
        ({"tenant_column": "actor_id"}, "partition key"),
        (
            {"key": "at", "columns": [{"name": "at", "type": "timestamp", "label": "T"}]},
            "sort key",
        ),
        ({"owner_column": "actor_id"}, "by tenant only"),
        (
            {
                "columns": [
                    {"name": "seq", "type": "integer", "label": "S"},
                    {"name": "password", "type": "string", "label": "P"},
                ]
            },
            "not an attribute",
        ),
        (
            {"columns": [{"name": "seq", "type": "string", "label": "S"}], "time_column": None},
            "has type integer",
        ),
        ({"default_sort": [{"column": "seq", "direction": "desc"}]}, "ascending 'seq'"),
    ],
)
def test_a_dynamodb_declaration_must_match_its_source(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        parse(audit_declaration(**changes))


@pytest.mark.parametrize(
    ("value", "op", "wanted", "passes"),
    [
        ("a", FilterOperator.EQ, "a", True),
        (None, FilterOperator.EQ, "a", False),
        (None, FilterOperator.NE, "a", True),  # IS DISTINCT FROM
        ("a", FilterOperator.NE, "a", False),
        (None, FilterOperator.NOT_IN, ["a"], True),
        ("b", FilterOperator.NOT_IN, ["a"], True),
        ("a", FilterOperator.IN, ["a", "b"], True),
        (None, FilterOperator.IN, ["a"], False),
        (5, FilterOperator.BETWEEN, (1, 5), True),
        (6, FilterOperator.BETWEEN, (1, 5), False),
        (None, FilterOperator.GT, 1, False),
        (2, FilterOperator.GTE, 2, True),
        (2, FilterOperator.LT, 2, False),
        (None, FilterOperator.IS_NULL, True, True),
        ("x", FilterOperator.IS_NULL, False, True),
        ("DATA_EXPORT", FilterOperator.PREFIX, "DATA_", True),
    ],
)
def test_filters_on_rows_mean_what_they_mean_in_sql(
    value: Any, op: FilterOperator, wanted: Any, passes: bool
) -> None:
    assert clause_matches(value, FilterClause("c", op, wanted)) is passes


def test_the_time_window_is_half_open() -> None:
    window = TimeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert row_matches({"at": datetime(2026, 1, 1, tzinfo=UTC)}, [], window, "at")
    assert not row_matches({"at": datetime(2026, 1, 2, tzinfo=UTC)}, [], window, "at")
    assert not row_matches({"at": None}, [], window, "at")
