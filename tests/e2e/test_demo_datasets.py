"""The demo datasets beside usage logs, through the whole product: each exported over HTTP,
downloaded through its presigned URL, read back with csv/json and compared with what PostgreSQL
holds; audit runs also nested (a results array per run) and flattened (a row per result)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataexport.catalog.loader import load_catalog
from dataexport.catalog.model import Dataset
from tests.e2e.http_client import ApiClient
from tests.e2e.test_export_csv_end_to_end import expected_cell
from tests.e2e.test_privacy_exports import hashing_key, hmac_hex

CATALOG = load_catalog()
TENANT, MEMBER, ADMIN = "org_acme", "usr_acme_01", "usr_acme_admin"
ZONE = "Europe/Berlin"
# Every dataset's whole history, except device readings: at most a year per export.
ALL_TIME = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
_TOMORROW = datetime.now(UTC) + timedelta(days=1)
LAST_YEAR = (_TOMORROW - timedelta(days=365), _TOMORROW)


@pytest.fixture(scope="module")
def runtime(runtime_factory: Any) -> Iterator[Any]:
    with runtime_factory({"ExportsPerHour": "100"}) as started:
        yield started


def client(runtime: Any, role: str) -> ApiClient:
    return ApiClient(
        runtime.api_url, runtime.token(MEMBER if role == "member" else ADMIN, TENANT, role)
    )


def window_of(name: str) -> tuple[str, str]:
    if CATALOG.get(name).max_span_days is None:
        return ALL_TIME
    return LAST_YEAR[0].isoformat(), LAST_YEAR[1].isoformat()


def exported(api: ApiClient, body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    job = api.create_export(body)
    done = api.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    _, download = api.download(job["id"])
    assert download.status == 200
    assert done["bytes"] == len(download.body)
    return done, download.body


def rows_in_postgres(
    superuser: Any,
    dataset: Dataset,
    fields: list[str],
    owner: str | None,
    window: tuple[str, str],
) -> list[list[Any]]:
    """The dataset's rows for the tenant (and owner), in its declared order: the test's own SQL."""
    conditions = [f"{dataset.tenant_column} = :org"]
    params: dict[str, Any] = {"org": TENANT}
    if owner is not None and dataset.owner_column is not None:
        conditions.append(f"{dataset.owner_column} = :owner")
        params["owner"] = owner
    if dataset.time_column is not None:
        conditions += [f"{dataset.time_column} >= :start", f"{dataset.time_column} < :end"]
        params.update(
            start=datetime.fromisoformat(window[0]), end=datetime.fromisoformat(window[1])
        )
    order = ", ".join(f"{spec.column} {spec.direction.value}" for spec in dataset.default_sort)
    rows: list[list[Any]] = superuser.run(
        f"SELECT {', '.join(fields)} FROM {dataset.source} "
        f"WHERE {' AND '.join(conditions)} ORDER BY {order}",
        **params,
    )
    return rows


def csv_cell(value: Any, zone: ZoneInfo) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return expected_cell(value, zone)


def json_value(value: Any, zone: ZoneInfo) -> Any:
    """A PostgreSQL value as the JSON export must hold it (read back with Decimal floats)."""
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Decimal) and value.is_nan():
        return None
    return value


def read_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def read_json(body: bytes) -> Any:
    return json.loads(body, parse_float=Decimal)


CASES = [
    ("invoices", "admin"),
    ("fees", "admin"),
    ("credit_notes", "admin"),
    ("device_readings", "member"),
    ("platform_users", "admin"),
    ("audit_runs", "member"),
]


@pytest.mark.parametrize(("name", "role"), CASES)
def test_each_demo_dataset_exports_as_csv_cell_by_cell(
    runtime: Any, superuser: Any, name: str, role: str
) -> None:
    # Given a caller who may export the dataset, and its default fields
    dataset = CATALOG.get(name)
    fields = dataset.default_field_names()
    window = window_of(name)

    # When they export it as CSV in Berlin time
    done, body = exported(
        client(runtime, role),
        {
            "dataset": name,
            "format": "csv",
            "time_range": {"start": window[0], "end": window[1]},
            "options": {"timezone": ZONE},
        },
    )

    # Then the file holds PostgreSQL's rows, labelled as the catalog says
    header, *rows = read_csv(body)
    assert header == [dataset.column(field).label for field in fields]
    expected = rows_in_postgres(
        superuser, dataset, fields, MEMBER if role == "member" else None, window
    )
    assert len(rows) == len(expected) == done["rows_exported"] > 0
    zone = ZoneInfo(ZONE)
    assert rows == [[csv_cell(value, zone) for value in row] for row in expected]


@pytest.mark.parametrize(("name", "role"), CASES)
def test_each_demo_dataset_exports_as_json_value_by_value(
    runtime: Any, superuser: Any, name: str, role: str
) -> None:
    # Given every declared column of the dataset
    dataset = CATALOG.get(name)
    fields = dataset.column_names
    window = window_of(name)

    # When it is exported as JSON
    done, body = exported(
        client(runtime, role),
        {
            "dataset": name,
            "format": "json",
            "fields": fields,
            "time_range": {"start": window[0], "end": window[1]},
            "options": {"timezone": ZONE},
        },
    )

    # Then every object holds exactly PostgreSQL's values: decimals exact, floats round-trip
    objects = read_json(body)
    expected = rows_in_postgres(
        superuser, dataset, fields, MEMBER if role == "member" else None, window
    )
    zone = ZoneInfo(ZONE)
    assert len(objects) == len(expected) == done["rows_exported"]
    assert objects == [
        {field: json_value(value, zone) for field, value in zip(fields, row, strict=True)}
        for row in expected
    ]


def runs_with_results(superuser: Any, owner: str | None) -> list[dict[str, Any]]:
    """Each run of the tenant (newest first) with its results in id order, from PostgreSQL."""
    runs = CATALOG.get("audit_runs")
    results = runs.child("results")
    zone = ZoneInfo(ZONE)
    parents = rows_in_postgres(superuser, runs, runs.default_field_names(), owner, ALL_TIME)
    children: dict[int, list[dict[str, Any]]] = {}
    names = [column.name for column in results.columns]
    for row in superuser.run(
        f"SELECT run_id, {', '.join(names)} FROM demo.audit_results WHERE org_id = :org "
        "ORDER BY run_id, id",
        org=TENANT,
    ):
        children.setdefault(row[0], []).append(
            {name: json_value(value, zone) for name, value in zip(names, row[1:], strict=True)}
        )
    fields = runs.default_field_names()
    return [
        {
            **{field: json_value(value, zone) for field, value in zip(fields, row, strict=True)},
            "results": children.get(row[fields.index("id")], []),
        }
        for row in parents
    ]


@pytest.mark.parametrize("format_name", ["json", "ndjson"])
def test_audit_runs_nest_their_results(runtime: Any, superuser: Any, format_name: str) -> None:
    # Given a member who reviewed some runs, one of them still running (no results yet)
    api = client(runtime, "member")

    # When they export their runs with the results nested
    done, body = exported(api, all_runs(format_name, nested=True))

    # Then each run carries a "results" array equal to its rows in PostgreSQL, in order
    text = body.decode()
    runs = (
        read_json(body)
        if format_name == "json"
        else [read_json(x.encode()) for x in text.split("\n") if x]
    )
    expected = runs_with_results(superuser, MEMBER)
    assert done["rows_exported"] == len(runs) == len(expected) > 0
    assert runs == expected
    assert any(run["results"] == [] for run in runs) or all(
        run["status"] != "running" for run in runs
    )
    assert any(len(run["results"]) > 1 for run in runs)


def test_audit_runs_flatten_into_one_csv_row_per_result(runtime: Any, superuser: Any) -> None:
    # Given an admin
    api = client(runtime, "admin")
    runs = CATALOG.get("audit_runs")
    results = runs.child("results")
    parent_fields = runs.default_field_names()

    # When they export the runs flattened as CSV
    done, body = exported(api, all_runs("csv", flatten=True))

    # Then each result is a row with its run's columns first; a run without results is one row
    header, *rows = read_csv(body)
    assert header == [runs.column(f).label for f in parent_fields] + [
        c.label for c in results.columns
    ]
    parents = ", ".join(f"r.{name}" for name in parent_fields)
    children = ", ".join(f"c.{column.name}" for column in results.columns)
    expected = flattened_in_postgres(superuser, f"{parents}, {children}")
    zone = ZoneInfo(ZONE)
    assert len(rows) == len(expected) == done["rows_exported"]
    assert rows == [[csv_cell(value, zone) for value in row] for row in expected]
    assert any(row[len(parent_fields)] == "" for row in rows), "a running run has no results"


def test_nested_children_are_hashed_with_their_parents(runtime: Any, superuser: Any) -> None:
    # Given an admin and the deployment's hashing secret
    api = client(runtime, "admin")
    key = hashing_key(runtime)

    # When they export the runs with results nested under hash_identifiers
    done, body = exported(api, {**all_runs("json", nested=True), "privacy": "hash_identifiers"})

    # Then reviewers and the results' users are HMACs of PostgreSQL's values, the rest as stored
    expected = runs_with_results(superuser, None)
    for run in expected:
        run["reviewer_id"] = hmac_hex(key, run["reviewer_id"])
        for result in run["results"]:
            result["user_id"] = (
                None if result["user_id"] is None else hmac_hex(key, result["user_id"])
            )
    runs = read_json(body)
    assert runs == expected
    assert sum(len(run["results"]) for run in runs) > 10
    assert done["privacy"] == ["hash_identifiers"]


def test_flattened_children_lose_their_sensitive_columns_or_hash_them(
    runtime: Any, superuser: Any
) -> None:
    # Given an admin
    api = client(runtime, "admin")
    key = hashing_key(runtime)
    body = all_runs("csv", flatten=True)

    # When the flattened runs are exported without sensitive columns, and hashed as Parquet
    dropped, csv_body = exported(api, {**body, "privacy": "drop_sensitive"})
    hashed, parquet_body = exported(
        api, {**body, "format": "parquet", "privacy": "hash_identifiers"}
    )

    # Then the CSV has neither the reviewer nor the result's user, and as many rows
    header, *rows = read_csv(csv_body)
    assert "Reviewer ID" not in header and "User ID" not in header
    assert "Result ID" in header and "Reviewer" in header
    assert [c["name"] for c in dropped["manifest"]["schema"]] == [
        name for name in (runs_flattened_names()) if name not in ("reviewer_id", "result_user_id")
    ]
    # And the Parquet file's user ids are strings: the HMACs of the stored ids, in result order
    table = pq.read_table(io.BytesIO(parquet_body))
    assert table.schema.field("result_user_id").type == pa.string()
    stored = flattened_in_postgres(superuser, "c.user_id")
    assert table.column("result_user_id").to_pylist() == [
        None if user is None else hmac_hex(key, user) for (user,) in stored
    ]
    assert len(rows) == len(stored) == hashed["rows_exported"]
    schema = {column["name"]: column for column in hashed["manifest"]["schema"]}
    assert schema["result_user_id"]["privacy"] == "hash_identifiers"


def all_runs(format_name: str, **options: Any) -> dict[str, Any]:
    """A request for every audit run of the tenant, in ZONE, with `options`."""
    return {
        "dataset": "audit_runs",
        "format": format_name,
        "time_range": {"start": ALL_TIME[0], "end": ALL_TIME[1]},
        "options": {"timezone": ZONE, **options},
    }


def flattened_in_postgres(superuser: Any, columns: str) -> list[list[Any]]:
    """`columns` of runs (r) left-joined with their results (c), in the export's order."""
    rows: list[list[Any]] = superuser.run(
        f"SELECT {columns} FROM demo.audit_runs AS r "
        "LEFT JOIN demo.audit_results AS c ON c.run_id = r.id AND c.org_id = r.org_id "
        "WHERE r.org_id = :org ORDER BY r.started_at DESC, r.id DESC, c.id",
        org=TENANT,
    )
    return rows


def runs_flattened_names() -> list[str]:
    runs = CATALOG.get("audit_runs")
    results = runs.child("results")
    return runs.default_field_names() + results.flattened_names


def test_formats_that_cannot_nest_answer_400_naming_the_option(runtime: Any) -> None:
    api = client(runtime, "admin")
    for format_name in ("csv", "xlsx", "parquet"):
        answer = api.call(
            "POST",
            "/v1/exports",
            {"dataset": "audit_runs", "format": format_name, "options": {"nested": True}},
        )
        assert answer.status == 400, answer.body
        assert answer.json()["detail"]["field"] == "options.nested"
    answer = api.call("POST", "/v1/exports", {"dataset": "invoices", "options": {"flatten": True}})
    assert (answer.status, answer.json()["detail"]["field"]) == (400, "options.flatten")


def test_the_catalog_shows_children_and_hides_admin_datasets_from_members(runtime: Any) -> None:
    member = client(runtime, "member")
    runs = member.call("GET", "/v1/datasets/audit_runs").json()
    (results,) = runs["children"]
    assert results["name"] == "results"
    assert {"name": "id", "flattened_name": "result_id"}.items() <= results["fields"][0].items()
    assert member.call("GET", "/v1/datasets/platform_users").status == 404
    names = {
        item["name"]
        for item in client(runtime, "admin").call("GET", "/v1/datasets").json()["items"]
    }
    assert {
        "invoices",
        "fees",
        "credit_notes",
        "device_readings",
        "platform_users",
        "audit_runs",
    } <= names
    formats = {item["name"]: item for item in member.call("GET", "/v1/formats").json()["items"]}
    assert {"nested", "flatten"} <= set(formats["json"]["options"])
    assert "nested" not in formats["csv"]["options"] and "flatten" in formats["csv"]["options"]


def test_device_readings_across_the_clock_changes_show_both_offsets(runtime: Any) -> None:
    # Given readings every half hour through the nights Berlin's clocks changed in 2025
    api = client(runtime, "member")

    # When they are exported in Berlin time
    _, body = exported(
        api,
        {
            "dataset": "device_readings",
            "format": "csv",
            "fields": ["recorded_at", "sensor", "value"],
            "filters": [{"field": "sensor", "op": "eq", "value": "temperature"}],
            "time_range": {"start": "2025-03-01T00:00:00Z", "end": "2025-11-01T00:00:00Z"},
            "options": {"timezone": ZONE},
        },
    )

    # Then the instants keep their order and the local times show the jumps: 02:00 never
    # happens in March, and 02:30 happens twice in October, once per offset
    times = [row[0] for row in read_csv(body)[1:]]
    assert times == sorted(times, key=datetime.fromisoformat)
    assert not any(t.startswith("2025-03-30T02:") for t in times)
    assert {"2025-10-26T02:30:00.000000+02:00", "2025-10-26T02:30:00.000000+01:00"} <= set(times)
