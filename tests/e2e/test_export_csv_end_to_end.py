"""A user exports usage logs over real HTTP and gets exactly what PostgreSQL holds."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import zstandard

from dataexport.catalog.loader import load_catalog
from tests.e2e.http_client import ApiClient

# The seed's 18 usage-log columns, in its order, as the catalog declares them.
FIELDS = list(load_catalog().get("usage_logs").default_fields)
START, END = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def expected_cell(value: Any, zone: ZoneInfo) -> str:
    """How a spreadsheet user must see a PostgreSQL value in the CSV (derived independently)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat(timespec="microseconds")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return str(value)


def rows_in_postgres(
    superuser: Any,
    org_id: str,
    user_id: str | None,
    codes: list[int] | None,
    fields: list[str] = FIELDS,
) -> list[list[Any]]:
    conditions = ["org_id = :org", "created_at >= :start", "created_at < :end"]
    params: dict[str, Any] = {
        "org": org_id,
        "start": datetime.fromisoformat(START),
        "end": datetime.fromisoformat(END),
    }
    if user_id is not None:
        conditions.append("user_id = :user")
        params["user"] = user_id
    if codes is not None:
        conditions.append("status_code = ANY(:codes)")
        params["codes"] = codes
    sql = (
        f"SELECT {', '.join(fields)} FROM demo.usage_logs WHERE {' AND '.join(conditions)} "
        "ORDER BY created_at DESC, id DESC"
    )
    rows: list[list[Any]] = superuser.run(sql, **params)
    return rows


def read_csv(body: bytes) -> tuple[list[str], list[list[str]]]:
    assert body.startswith(b"\xef\xbb\xbf"), "the CSV starts with a UTF-8 BOM for Excel"
    records = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    return records[0], records[1:]


@pytest.mark.parametrize("role", ["member", "admin"])
def test_export_matches_postgres_cell_by_cell(runtime: Any, superuser: Any, role: str) -> None:
    # Given a user of org_acme (a member sees their own rows, an admin the whole tenant)
    user_id = superuser.run("SELECT min(user_id) FROM demo.usage_logs WHERE org_id = 'org_acme'")[
        0
    ][0]
    client = ApiClient(runtime.api_url, runtime.token(user_id, "org_acme", role))
    zone = ZoneInfo("Europe/Berlin")

    # When they export every column as CSV in their time zone
    job = client.create_export(
        {
            "dataset": "usage_logs",
            "format": "csv",
            "fields": FIELDS,
            "time_range": {"start": START, "end": END},
            "options": {"timezone": "Europe/Berlin"},
        }
    )
    done = client.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    redirect, download = client.download(job["id"])

    # Then the file downloaded through the presigned URL holds exactly PostgreSQL's rows
    assert download.status == 200
    assert (
        job["id"] in redirect.headers["Location"]
        or "X-Amz-Signature" in redirect.headers["Location"]
    )
    assert done["file_name"] in download.headers.get("Content-Disposition", "")
    header, rows = read_csv(download.body)
    assert header[0] == "Time" and len(header) == 18
    expected = rows_in_postgres(superuser, "org_acme", None if role == "admin" else user_id, None)
    assert len(rows) == len(expected) == done["rows_exported"]
    assert rows == [[expected_cell(value, zone) for value in row] for row in expected]
    assert done["bytes"] == len(download.body)


def test_admin_export_carries_the_tricky_values_intact(runtime: Any, superuser: Any) -> None:
    # Given the tenant's rows include commas, quotes, newlines, unicode and formula-like text
    client = ApiClient(runtime.api_url, runtime.token("admin_1", "org_acme", "admin"))

    # When an admin exports them
    job = client.create_export(
        {"dataset": "usage_logs", "format": "csv", "time_range": {"start": START, "end": END}}
    )
    assert client.wait_for(job["id"], {"completed", "failed"})["status"] == "completed"
    _, download = client.download(job["id"])
    _, rows = read_csv(download.body)
    cells = [cell for row in rows for cell in row]

    # Then each survives the round trip, and formulas are neutralised
    assert any("," in cell for cell in cells)
    assert any('"' in cell for cell in cells)
    assert any("\n" in cell for cell in cells)
    assert any(any(ord(char) > 127 for char in cell) for cell in cells)
    assert any(cell.startswith("'=") for cell in cells)
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)


def test_a_filtered_export_counts_what_select_count_counts(runtime: Any, superuser: Any) -> None:
    # Given a member and a filter on error status codes
    user_id = superuser.run("SELECT max(user_id) FROM demo.usage_logs WHERE org_id = 'org_globex'")[
        0
    ][0]
    client = ApiClient(runtime.api_url, runtime.token(user_id, "org_globex", "member"))
    codes = [429, 500, 502]

    # When they export NDJSON of those rows
    job = client.create_export(
        {
            "dataset": "usage_logs",
            "format": "ndjson",
            "fields": ["created_at", "status_code", "cost_usd"],
            "filters": [{"field": "status_code", "op": "in", "value": codes}],
            "time_range": {"start": START, "end": END},
        }
    )
    done = client.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    _, download = client.download(job["id"])

    # Then it has exactly the rows SELECT count(*) finds, all with those codes
    lines = [
        json.loads(line, parse_float=Decimal)
        for line in download.body.decode().splitlines()
        if line
    ]
    expected = rows_in_postgres(
        superuser, "org_globex", user_id, codes, ["created_at", "status_code", "cost_usd"]
    )
    assert len(lines) == len(expected) == done["rows_exported"]
    assert {line["status_code"] for line in lines} <= set(codes)
    assert [line["cost_usd"] for line in lines] == [row[2] for row in expected]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_compressed_export_decompresses_to_the_same_rows(
    runtime: Any, superuser: Any, compression: str
) -> None:
    # Given an admin asking for a compressed CSV
    client = ApiClient(runtime.api_url, runtime.token("usr_acme_admin", "org_acme", "admin"))

    # When it completes and is downloaded through its presigned URL
    job = client.create_export(
        {
            "dataset": "usage_logs",
            "format": "csv",
            "compression": compression,
            "time_range": {"start": START, "end": END},
        }
    )
    done = client.wait_for(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    _, download = client.download(job["id"])

    # Then the file is named for its compression and reads back with the usual tools
    suffix = {"gzip": ".csv.gz", "zstd": ".csv.zst"}[compression]
    assert f'{suffix}"' in download.headers["Content-Disposition"]
    assert hashlib.sha256(download.body).hexdigest() == done["sha256"]
    if compression == "gzip":
        plain = gzip.decompress(download.body)
    else:
        plain = zstandard.ZstdDecompressor().stream_reader(download.body).read()
    header, rows = read_csv(plain)
    assert header == [load_catalog().get("usage_logs").column(name).label for name in FIELDS]
    expected = rows_in_postgres(superuser, "org_acme", None, None)
    zone = ZoneInfo("UTC")
    assert rows == [[expected_cell(value, zone) for value in row] for row in expected]
