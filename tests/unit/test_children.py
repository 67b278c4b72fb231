"""Child datasets: declarations checked at load, options checked per request, SQL built only
from catalog names with the tenant bound as a parameter."""

from __future__ import annotations

from typing import Any

import pytest

from dataexport.catalog.loader import Catalog, load_catalog
from dataexport.catalog.model import Dataset
from dataexport.errors import InvalidRequest
from dataexport.export_request import ExportRequest, resolve_export
from dataexport.formats import FORMATS
from dataexport.nesting import ChildShape, resolve_nesting
from dataexport.query_builder import RowScope
from dataexport.sql_rendering import SourceType

CATALOG = load_catalog()


def child(**changes: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {
        "name": "lines",
        "title": "Lines",
        "source": "shop.order_lines",
        "tenant_column": "org_id",
        "parent_column": "order_id",
        "key": "id",
        "flatten_prefix": "line_",
        "columns": [
            {"name": "id", "type": "integer", "label": "Line ID"},
            {"name": "sku", "type": "string", "label": "SKU"},
            {"name": "price", "type": "decimal", "label": "Price"},
        ],
    }
    declaration.update(changes)
    return declaration


def orders(*children: dict[str, Any], **changes: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {
        "name": "orders",
        "title": "Orders",
        "source": "shop.orders",
        "tenant_column": "org_id",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "status", "type": "string", "label": "Status"},
        ],
        "children": list(children),
    }
    declaration.update(changes)
    return declaration


def problems_of(declaration: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as raised:
        Dataset.model_validate(declaration)
    return str(raised.value)


def test_the_packaged_audit_runs_declare_their_results() -> None:
    runs = CATALOG.get("audit_runs")
    results = runs.child("results")
    assert (results.source.table, results.parent_column, results.key) == (
        "audit_results",
        "run_id",
        "id",
    )
    assert results.flattened_name("id") == "result_id"
    assert all(not d.children for d in CATALOG.datasets() if d.name != "audit_runs")


def test_the_new_demo_datasets_mark_personal_data_sensitive() -> None:
    users = CATALOG.get("platform_users")
    assert users.column("email").sensitive == "email"
    assert users.column("last_login_ip").sensitive == "ip"
    assert CATALOG.get("device_readings").column("device_ip").sensitive == "ip"
    assert CATALOG.get("invoices").column("customer_email").sensitive == "email"
    assert CATALOG.get("invoices").column("issuing_date").type == "date"
    assert CATALOG.get("device_readings").column("is_on").type == "boolean"
    assert CATALOG.get("platform_users").allows_role("admin")
    assert not CATALOG.get("platform_users").allows_role("member")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": "missing"}, "key: 'missing' is not a declared column"),
        (
            {"columns": [{"name": "id", "type": "float", "label": "ID"}]},
            "a child column must be one of",
        ),
        (
            {
                "columns": [
                    {"name": "id", "type": "integer", "label": "ID"},
                    {"name": "meta", "type": "json", "label": "Meta"},
                ]
            },
            "'meta' is json",
        ),
        ({"parent_column": "org_id"}, "parent_column: must differ from tenant_column"),
        (
            {"columns": [{"name": "id", "type": "integer", "label": "ID", "sensitive": "ip"}]},
            "columns[0].sensitive: ip columns must be string",
        ),
        (
            {
                "columns": [
                    {"name": "id", "type": "integer", "label": "ID"},
                    {"name": "token", "type": "string", "label": "T", "sensitive": "secret"},
                ]
            },
            "columns[1].sensitive: a child column cannot be secret",
        ),
        ({"flatten_prefix": "Bad-"}, "flatten_prefix"),
    ],
)
def test_a_bad_child_declaration_is_refused_by_name(changes: dict[str, Any], message: str) -> None:
    assert message in problems_of(orders(child(**changes)))


def test_a_child_key_is_required() -> None:
    declaration = child()
    del declaration["key"]
    assert "key" in problems_of(orders(declaration))


def test_flattened_names_may_not_clash_with_the_parents_columns() -> None:
    # Without a prefix the child's id would be the parent's id
    problems = problems_of(orders(child(flatten_prefix="")))
    assert "flattened column(s) id clash" in problems
    # The tenant column, even undeclared, is in the same select list
    problems = problems_of(orders(child(flatten_prefix="", columns=[child()["columns"][1]])))
    assert "key" in problems  # the key 'id' is then undeclared too
    assert "'status' is a column" in problems_of(orders(child(name="status")))
    assert "declared more than once" in problems_of(orders(child(), child()))


def test_only_postgres_datasets_have_children() -> None:
    declaration = load_catalog().get("audit_events").model_dump(mode="json")
    declaration["children"] = [child()]
    declaration["source"] = "audit_trail"
    assert "only PostgreSQL datasets have children" in problems_of(declaration)


def request(**options: Any) -> ExportRequest:
    fmt = options.pop("format", "json")
    return ExportRequest.model_validate(
        {"dataset": "audit_runs", "format": fmt, "options": options}
    )


@pytest.mark.parametrize("format_name", ["csv", "xlsx", "parquet"])
def test_formats_that_cannot_nest_refuse_the_option_by_name(format_name: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        resolve_export(request(format=format_name, nested=True), CATALOG)
    assert raised.value.detail["field"] == "options.nested"
    assert format_name in raised.value.message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dataset": "usage_logs", "options": {"flatten": True}}, "options.flatten"),
        (
            {"dataset": "audit_runs", "options": {"nested": True, "flatten": True}},
            "options.flatten",
        ),
        (
            {
                "dataset": "audit_runs",
                "format": "json",
                "options": {"nested": True},
                "aggregate": {"measures": [{"function": "count"}]},
            },
            "options.nested",
        ),
    ],
)
def test_nesting_options_that_do_not_apply_are_refused(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        resolve_export(ExportRequest.model_validate(body), CATALOG)
    assert raised.value.detail["field"] == field


def test_flattened_columns_follow_the_parents_with_their_prefix() -> None:
    resolved = resolve_export(request(format="csv", flatten=True), CATALOG)
    names = resolved.column_names
    parent = CATALOG.get("audit_runs").default_field_names()
    assert names[: len(parent)] == parent
    assert names[len(parent) :] == CATALOG.get("audit_runs").child("results").flattened_names
    labels = [column.label for column in resolved.columns]
    assert "Result ID" in labels and "Submission ID" in labels


def test_nested_rows_add_one_json_member_per_child() -> None:
    resolved = resolve_export(request(format="ndjson", nested=True), CATALOG)
    last = resolved.columns[-1]
    assert (last.name, last.type, last.json_text) == ("results", "json", True)
    nesting = resolve_nesting(
        CATALOG.get("audit_runs"), FORMATS["json"], nested=True, flatten=False, aggregated=False
    )
    assert nesting is not None and nesting.shape is ChildShape.NESTED


def test_child_sql_binds_the_tenant_and_quotes_only_catalog_names() -> None:
    # Given a tenant id that would break out of a string literal
    scope = RowScope(org_id="org'); DROP TABLE x; --")
    nested = resolve_export(request(nested=True), CATALOG)
    sources = [[SourceType.INTEGER] + [SourceType.TEXT] * 11]
    sources[0][3:6] = [SourceType.INTEGER, SourceType.INTEGER, SourceType.NUMERIC]
    sources[0][-1] = SourceType.TIMESTAMPTZ

    # When the nested and flattened queries are built
    queries = [
        nested.select(scope, child_sources=sources),
        resolve_export(request(flatten=True), CATALOG).select(scope),
        resolve_export(request(flatten=True), CATALOG).boundaries(scope, 100),
    ]

    # Then the tenant is a parameter everywhere, children are scoped by it and the parent key
    for query in queries:
        assert "DROP TABLE" not in query.sql
        assert scope.org_id in query.params.values()
        assert '"child_rows"."run_id" = "demo"."audit_runs"."id"' in query.sql
    assert "CROSS JOIN LATERAL" in queries[0].sql and "string_agg(" in queries[0].sql
    assert "LEFT JOIN LATERAL" in queries[1].sql
    assert queries[1].sql.endswith('"child_0"."child key" ASC')


def test_a_nested_select_needs_the_childrens_column_types() -> None:
    nested = resolve_export(request(nested=True), CATALOG)
    with pytest.raises(ValueError, match="column types"):
        nested.select(RowScope("org_acme"))


def test_privacy_reaches_the_children_in_both_shapes() -> None:
    # Flattened under drop_sensitive: the result's user id leaves with the reviewer's
    flattened = resolve_export(
        ExportRequest.model_validate(
            {"dataset": "audit_runs", "options": {"flatten": True}, "privacy": "drop_sensitive"}
        ),
        CATALOG,
    )
    assert "result_user_id" not in flattened.column_names
    assert "result_submission_id" in flattened.column_names
    # Flattened under hash_identifiers: a string column, rewritten where the children are read
    hashed = resolve_export(
        ExportRequest.model_validate(
            {
                "dataset": "audit_runs",
                "format": "parquet",
                "options": {"flatten": True},
                "privacy": ["hash_identifiers"],
            }
        ),
        CATALOG,
    )
    column = next(c for c in hashed.columns if c.name == "result_user_id")
    assert column.type == "string" and hashed.privacy.needs_key
    sql = hashed.select(RowScope(org_id="org_a")).sql
    assert "sha256" in sql and 'AS "result_user_id"' in sql
    # Nested: the array is built with the rewritten value; the key is still needed
    nested = resolve_export(
        ExportRequest.model_validate(
            {
                "dataset": "audit_runs",
                "format": "json",
                "fields": ["id", "code"],
                "options": {"nested": True},
                "privacy": "hash_identifiers",
            }
        ),
        CATALOG,
    )
    assert nested.privacy.rewrites == {} and nested.privacy.needs_key
    natural = {
        "integer": SourceType.INTEGER,
        "decimal": SourceType.NUMERIC,
        "boolean": SourceType.BOOLEAN,
        "timestamp": SourceType.TIMESTAMPTZ,
        "date": SourceType.DATE,
    }
    results = CATALOG.get("audit_runs").child("results")
    sources = [[natural.get(column.type, SourceType.TEXT) for column in results.columns]]
    assert "sha256" in nested.select(RowScope(org_id="org_a"), child_sources=sources).sql


def test_a_child_left_without_columns_is_refused_by_its_option() -> None:
    declaration = orders(
        child(columns=[{"name": "id", "type": "string", "label": "ID", "sensitive": "identifier"}])
    )
    catalog = Catalog({"orders": Dataset.model_validate(declaration)})
    with pytest.raises(InvalidRequest) as raised:
        resolve_export(
            ExportRequest.model_validate(
                {
                    "dataset": "orders",
                    "format": "json",
                    "options": {"nested": True},
                    "privacy": "drop_sensitive",
                }
            ),
            catalog,
        )
    assert raised.value.detail["field"] == "options.nested"
    assert "'lines'" in raised.value.message
