"""The SQL the builder writes: quoted catalog identifiers only, every value bound."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dataexport.catalog.loader import load_catalog
from dataexport.catalog.model import Dataset, FilterOperator
from dataexport.errors import InvalidRequest
from dataexport.filters import FilterClause, TimeWindow, parse_filters
from dataexport.query_builder import (
    BoundQuery,
    RowScope,
    build_count,
    build_select,
    escape_like,
    quote_identifier,
)

USAGE_LOGS = load_catalog().get("usage_logs")
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
INJECTION = "x'; DROP TABLE demo.usage_logs; --"


def simple_dataset(**changes: Any) -> Dataset:
    declaration: dict[str, Any] = {
        "name": "events",
        "title": "Events",
        "source": "events",
        "tenant_column": "tenant",
        "key": "event_id",
        "columns": [
            {"name": "event_id", "type": "string", "label": "Event"},
            {"name": "kind", "type": "string", "label": "Kind"},
        ],
        "filters": [{"column": "kind", "operators": ["eq", "prefix"]}],
    }
    declaration.update(changes)
    return Dataset.model_validate(declaration)


def test_a_member_export_selects_quoted_columns_of_its_own_rows() -> None:
    # When a member's export of two fields in a time window is built
    query = build_select(
        USAGE_LOGS,
        ["created_at", "cost_usd"],
        RowScope("org_acme", "usr_1"),
        [FilterClause("status_code", FilterOperator.IN, [500, 502])],
        TimeWindow(START, END),
    )

    # Then it is exactly this statement, with every value bound
    assert query == BoundQuery(
        'SELECT "created_at", "cost_usd" FROM "demo"."usage_logs" '
        'WHERE "org_id" = :p0 AND "user_id" = :p1 '
        'AND "created_at" >= :p2 AND "created_at" < :p3 '
        'AND "status_code" = ANY(:p4) '
        'ORDER BY "demo"."usage_logs"."created_at" DESC, "demo"."usage_logs"."id" DESC',
        {"p0": "org_acme", "p1": "usr_1", "p2": START, "p3": END, "p4": [500, 502]},
    )


def test_an_admin_export_covers_the_tenant_without_a_window() -> None:
    query = build_select(USAGE_LOGS, ["id"], RowScope("org_acme"), [], TimeWindow())
    assert query.sql == (
        'SELECT "id" FROM "demo"."usage_logs" WHERE "org_id" = :p0 '
        'ORDER BY "demo"."usage_logs"."created_at" DESC, "demo"."usage_logs"."id" DESC'
    )
    assert query.params == {"p0": "org_acme"}


def test_count_uses_the_same_conditions() -> None:
    filters = parse_filters([{"field": "model", "op": "prefix", "value": "claude"}], USAGE_LOGS)
    scope = RowScope("org_acme", "usr_1")
    count = build_count(USAGE_LOGS, scope, filters, TimeWindow(START, None))
    select = build_select(USAGE_LOGS, ["id"], scope, filters, TimeWindow(START, None))
    assert count.sql.startswith('SELECT count(*) FROM "demo"."usage_logs" WHERE ')
    assert "ORDER BY" not in count.sql
    assert count.sql.split(" WHERE ")[1] == select.sql.split(" WHERE ")[1].split(" ORDER BY")[0]
    assert count.params == select.params


@pytest.mark.parametrize(
    ("op", "value", "condition", "params"),
    [
        (FilterOperator.EQ, "a", '"kind" = :p1', ["a"]),
        (FilterOperator.NE, "a", '"kind" IS DISTINCT FROM :p1', ["a"]),
        (FilterOperator.IN, ["a", "b"], '"kind" = ANY(:p1)', [["a", "b"]]),
        (FilterOperator.NOT_IN, ["a"], '("kind" IS NULL OR "kind" <> ALL(:p1))', [["a"]]),
        (FilterOperator.GT, "a", '"kind" > :p1', ["a"]),
        (FilterOperator.GTE, "a", '"kind" >= :p1', ["a"]),
        (FilterOperator.LT, "a", '"kind" < :p1', ["a"]),
        (FilterOperator.LTE, "a", '"kind" <= :p1', ["a"]),
        (FilterOperator.BETWEEN, ("a", "m"), '"kind" BETWEEN :p1 AND :p2', ["a", "m"]),
        (FilterOperator.IS_NULL, True, '"kind" IS NULL', []),
        (FilterOperator.IS_NULL, False, '"kind" IS NOT NULL', []),
        (FilterOperator.PREFIX, "50%_a\\b", "\"kind\" LIKE :p1 ESCAPE '\\'", ["50\\%\\_a\\\\b%"]),
    ],
)
def test_each_operator_binds_its_values(
    op: FilterOperator, value: Any, condition: str, params: list[Any]
) -> None:
    every = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null", "prefix"]
    dataset = simple_dataset(filters=[{"column": "kind", "operators": every}])
    query = build_select(
        dataset, ["kind"], RowScope("t"), [FilterClause("kind", op, value)], TimeWindow()
    )
    assert query.sql == (
        f'SELECT "kind" FROM "public"."events" WHERE "tenant" = :p0 AND {condition} '
        'ORDER BY "public"."events"."event_id" ASC'
    )
    assert list(query.params.values()) == ["t", *params]


def test_values_never_reach_the_sql_text() -> None:
    filters = parse_filters(
        [
            {"field": "model", "op": "eq", "value": INJECTION},
            {"field": "endpoint", "op": "in", "value": [INJECTION, '"; --']},
            {"field": "key_name", "op": "prefix", "value": INJECTION},
        ],
        USAGE_LOGS,
    )
    query = build_select(
        USAGE_LOGS, ["model"], RowScope(INJECTION, INJECTION), filters, TimeWindow()
    )
    assert "DROP" not in query.sql and "'; " not in query.sql
    assert query.params["p0"] == INJECTION and query.params["p1"] == INJECTION


@pytest.mark.parametrize(
    "field",
    ['id"; DROP TABLE x; --', "org_id", "ID", "created_at desc", "*", "", "user_name, user_id"],
)
def test_fields_outside_the_catalog_are_refused_by_name(field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        build_select(USAGE_LOGS, ["created_at", field], RowScope("o"), [], TimeWindow())
    assert refused.value.field == "fields"
    assert repr(field) in refused.value.message
    assert refused.value.detail["unknown"] == [field]


def test_no_fields_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="at least one field"):
        build_select(USAGE_LOGS, [], RowScope("o"), [], TimeWindow())


@pytest.mark.parametrize(
    ("clause", "field"),
    [
        (FilterClause('id" OR 1=1 --', FilterOperator.EQ, 1), "filters[0].field"),
        (FilterClause("cache_read_tokens", FilterOperator.EQ, 1), "filters[0].field"),
        (FilterClause("session_id", FilterOperator.GT, "a"), "filters[0].op"),
    ],
)
def test_forged_filter_clauses_are_refused(clause: FilterClause, field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        build_select(USAGE_LOGS, ["id"], RowScope("o"), [clause], TimeWindow())
    assert refused.value.field == field


def test_the_key_breaks_ties_in_the_last_sort_direction() -> None:
    dataset = simple_dataset(default_sort=[{"column": "kind", "direction": "desc"}])
    query = build_select(dataset, ["kind"], RowScope("t"), [], TimeWindow())
    assert query.sql.endswith(
        'ORDER BY "public"."events"."kind" DESC, "public"."events"."event_id" DESC'
    )


def test_a_window_on_a_dataset_without_time_column_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        build_count(simple_dataset(), RowScope("t"), [], TimeWindow(START, END))
    assert refused.value.field == "time_range"


def test_owner_scope_applies_only_where_the_dataset_has_an_owner() -> None:
    query = build_select(simple_dataset(), ["kind"], RowScope("t", "someone"), [], TimeWindow())
    assert query.params == {"p0": "t"}


@pytest.mark.parametrize("name", ['a"b', "A", "1a", "a b", "", "a" * 64, "ä"])
def test_only_catalog_shaped_identifiers_can_be_quoted(name: str) -> None:
    with pytest.raises(ValueError, match="not a catalog identifier"):
        quote_identifier(name)


def test_identifiers_are_double_quoted() -> None:
    assert quote_identifier("select") == '"select"'


def test_like_wildcards_are_escaped() -> None:
    assert escape_like("a%b_c\\d") == "a\\%b\\_c\\\\d"


def test_a_row_scope_needs_a_tenant() -> None:
    with pytest.raises(ValueError, match="tenant"):
        RowScope("")
    with pytest.raises(ValueError, match="owner_id"):
        RowScope("t", "")
