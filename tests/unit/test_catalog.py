"""The dataset catalog: the packaged datasets load, bad declarations are refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dataexport.catalog.loader import load_catalog, parse_dataset
from dataexport.catalog.model import ColumnType, Dataset, FilterOperator, SourceRef
from dataexport.errors import CatalogError, DatasetNotFound

SEED_LABELS = [
    "Time",
    "User",
    "Key",
    "Provider",
    "Model",
    "Original Model",
    "Endpoint",
    "Status Code",
    "Input Tokens",
    "Output Tokens",
    "Cache Write 5m",
    "Cache Write 1h",
    "Cache Read",
    "Total Tokens",
    "Cost (USD)",
    "Duration (ms)",
    "Session ID",
    "Retry Count",
]


def valid_declaration(**changes: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {
        "name": "orders",
        "title": "Orders",
        "source": "shop.orders",
        "tenant_column": "org_id",
        "owner_column": "user_id",
        "time_column": "placed_at",
        "key": "id",
        "columns": [
            {"name": "id", "type": "integer", "label": "ID"},
            {"name": "placed_at", "type": "timestamp", "label": "Placed"},
            {"name": "status", "type": "string", "label": "Status"},
            {"name": "paid", "type": "boolean", "label": "Paid"},
            {"name": "payload", "type": "json", "label": "Payload"},
        ],
        "filters": [{"column": "status", "operators": ["eq", "in", "prefix"]}],
        "default_fields": ["placed_at", "status"],
        "default_sort": [{"column": "placed_at", "direction": "desc"}],
    }
    declaration.update(changes)
    return declaration


def write_dataset(directory: Path, file_name: str, declaration: dict[str, Any]) -> Path:
    path = directory / file_name
    path.write_text(yaml.safe_dump(declaration, allow_unicode=True), encoding="utf-8")
    return path


def test_the_packaged_usage_logs_dataset_matches_seed_000() -> None:
    # When the packaged catalog loads
    catalog = load_catalog()
    dataset = catalog.get("usage_logs")

    # Then usage_logs exports the seed's 18 columns, in order, with its labels
    assert [dataset.column(name).label for name in dataset.default_field_names()] == SEED_LABELS
    assert str(dataset.source) == "demo.usage_logs"
    assert dataset.tenant_column == "org_id" and not dataset.has_column("org_id")
    assert dataset.owner_column == "user_id" and dataset.time_column == "created_at"
    assert [(s.column, s.direction.value) for s in dataset.default_sort] == [
        ("created_at", "desc"),
        ("id", "desc"),
    ]
    assert dataset.roles == ["member", "admin"]
    assert dataset.column("cost_usd").type is ColumnType.DECIMAL
    status_filter = dataset.filter_for("status_code")
    assert status_filter is not None and FilterOperator.IN in status_filter.operators
    assert dataset.filter_for("cache_read_tokens") is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Orders-2"}, "name"),
        ({"columns": [{"name": "id", "type": "money", "label": "ID"}]}, "columns[0].type"),
        (
            {"columns": [{"name": 'id"; DROP TABLE x; --', "type": "integer", "label": "ID"}]},
            "columns[0].name",
        ),
        ({"colour": "blue"}, "colour"),
        ({"source": "a.b.c"}, "source"),
        ({"source": "Shop.orders"}, "source.schema_name"),
        ({"roles": ["superuser"]}, "roles[0]"),
        ({"max_span_days": 0}, "max_span_days"),
        ({"time_column": "status"}, "time_column"),
        ({"time_column": "shipped_at"}, "time_column"),
        ({"key": "uuid"}, "key"),
        ({"key": "payload"}, "key"),
        ({"filters": [{"column": "nope", "operators": ["eq"]}]}, "filters[0].column"),
        ({"filters": [{"column": "id", "operators": ["prefix"]}]}, "filters[0].operators"),
        ({"filters": [{"column": "paid", "operators": ["gt"]}]}, "filters[0].operators"),
        ({"filters": [{"column": "payload", "operators": ["eq"]}]}, "filters[0].operators"),
        (
            {"filters": [{"column": "id", "operators": ["between", "like"]}]},
            "filters[0].operators[1]",
        ),
        ({"filters": [{"column": "id", "operators": []}]}, "filters[0].operators"),
        ({"default_fields": ["status", "secret"]}, "default_fields[1]"),
        ({"default_sort": [{"column": "ghost"}]}, "default_sort[0].column"),
        ({"default_sort": [{"column": "payload"}]}, "default_sort[0].column"),
        ({"default_sort": [{"column": "id"}, {"column": "placed_at"}]}, "default_sort"),
        ({"owner_column": "org_id"}, "owner_column"),
        ({"time_column": None, "max_span_days": 7}, "max_span_days"),
    ],
)
def test_a_bad_declaration_names_its_file_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    # Given a deployer's dataset file with one mistake
    write_dataset(tmp_path, "orders.yaml", valid_declaration(**changes))

    # When the catalog loads
    with pytest.raises(CatalogError) as refused:
        load_catalog(tmp_path)

    # Then the error names the file and the field at fault
    assert "orders.yaml" in refused.value.message
    assert f"{field}:" in refused.value.message


def test_duplicate_columns_are_refused(tmp_path: Path) -> None:
    columns = [
        {"name": "id", "type": "integer", "label": "ID"},
        {"name": "placed_at", "type": "timestamp", "label": "Placed"},
        {"name": "id", "type": "string", "label": "Again"},
    ]
    with pytest.raises(CatalogError, match="columns: 'id' is declared more than once"):
        parse_dataset(
            yaml.safe_dump(valid_declaration(columns=columns, filters=[], default_fields=[])),
            "orders.yaml",
        )


def test_scope_columns_need_not_be_exported() -> None:
    # A tenant/owner column that is not declared is used in WHERE only
    dataset = Dataset.model_validate(valid_declaration())
    assert dataset.scope_columns == ["org_id", "user_id"]
    assert not dataset.has_column("org_id")


def test_a_deployer_directory_adds_and_replaces_datasets(tmp_path: Path) -> None:
    # Given a directory with a new dataset and one named like a packaged dataset
    write_dataset(tmp_path, "orders.yaml", valid_declaration())
    replacement = valid_declaration(name="usage_logs", title="Our usage", source="app.usage")
    write_dataset(tmp_path, "usage.yaml", replacement)
    (tmp_path / "notes.txt").write_text("not a dataset")

    # When the catalog loads with it
    catalog = load_catalog(tmp_path)

    # Then both are there, the deployer's version wins, and the list is sorted
    assert catalog.get("usage_logs").title == "Our usage"
    assert str(catalog.get("usage_logs").source) == "app.usage"
    assert [d.name for d in catalog.datasets()] == sorted(d.name for d in catalog.datasets())
    assert "orders" in catalog and len(catalog) >= 2


def test_two_files_declaring_one_name_are_refused(tmp_path: Path) -> None:
    write_dataset(tmp_path, "a.yaml", valid_declaration())
    write_dataset(tmp_path, "b.yaml", valid_declaration())
    with pytest.raises(CatalogError, match=r"b\.yaml: dataset 'orders' is already declared"):
        load_catalog(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("name: [unclosed", "not valid YAML (line 1)"), ("- just\n- a list\n", "a mapping")],
)
def test_unreadable_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "broken.yaml").write_text(text)
    with pytest.raises(CatalogError) as refused:
        load_catalog(tmp_path)
    assert "broken.yaml" in refused.value.message
    assert message in refused.value.message


def test_a_missing_deployer_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "missing")


def test_unknown_datasets_and_roles() -> None:
    catalog = load_catalog()
    with pytest.raises(DatasetNotFound):
        catalog.get("nope")
    assert "usage_logs" in [d.name for d in catalog.visible_to("member")]
    assert "usage_logs" not in [d.name for d in catalog.visible_to("operator")]


def test_an_admin_only_dataset_is_hidden_from_members(tmp_path: Path) -> None:
    write_dataset(tmp_path, "orders.yaml", valid_declaration(roles=["admin"]))
    catalog = load_catalog(tmp_path)
    assert "orders" in [d.name for d in catalog.visible_to("admin")]
    assert "orders" not in [d.name for d in catalog.visible_to("member")]


def test_a_source_without_schema_is_in_public() -> None:
    assert SourceRef.model_validate("usage_logs") == SourceRef(
        schema_name="public", table="usage_logs"
    )
    assert str(SourceRef.model_validate("demo.usage_logs")) == "demo.usage_logs"


def test_models_are_frozen() -> None:
    dataset = Dataset.model_validate(valid_declaration())
    with pytest.raises(ValueError, match="frozen"):
        dataset.name = "other"
