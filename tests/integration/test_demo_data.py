"""The demo schema and its generated data: idempotent, realistic, tricky, read-only for us."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pg8000.native
import pytest
from pg8000.exceptions import DatabaseError

from dataexport_local.demo_data import (
    DEMO_USERS,
    TENANTS,
    TRICKY_ROWS_PER_TENANT,
    apply_schema,
    seed_usage_logs,
)
from tests.integration.conftest import ConnectionFactory, PgEndpoint

READER = "dataexport_reader"
FIXED_NOW = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(
    pg_superuser_conn_factory: ConnectionFactory, pg_scratch_database: str
) -> Iterator[pg8000.native.Connection]:
    conn = pg_superuser_conn_factory(pg_scratch_database)
    try:
        yield conn
    finally:
        conn.close()


def sqlstate(error: DatabaseError) -> str:
    detail = error.args[0]
    return str(detail.get("C")) if isinstance(detail, dict) else ""


def content_digest(conn: pg8000.native.Connection) -> str:
    rows = conn.run(
        "SELECT md5(string_agg(to_jsonb(u)::text, '|' ORDER BY id)) FROM demo.usage_logs AS u"
    )
    return str(rows[0][0])


def test_the_schema_applies_twice_and_seeding_fills_every_tenant(
    demo: pg8000.native.Connection,
) -> None:
    # Given the schema applied twice (the second run must change nothing and fail on nothing)
    apply_schema(demo)
    apply_schema(demo)

    # When 1,000 rows are seeded
    inserted = seed_usage_logs(demo, 1000, now=FIXED_NOW)

    # Then the table holds them plus the tricky rows of every tenant
    assert inserted == 1000 + TRICKY_ROWS_PER_TENANT * len(TENANTS)
    assert demo.run("SELECT count(*) FROM demo.usage_logs")[0][0] == inserted
    tenants = demo.run("SELECT org_id, count(DISTINCT user_id) FROM demo.usage_logs GROUP BY 1")
    assert {org for org, _ in tenants} == set(TENANTS)
    assert all(users >= 3 for _, users in tenants)
    # users belong to one tenant each and keep their names
    known = {(u.org_id, u.user_id) for u in DEMO_USERS}
    pairs = demo.run("SELECT DISTINCT org_id, user_id FROM demo.usage_logs")
    assert {(org, user) for org, user in pairs} <= known
    names = {row[0] for row in demo.run("SELECT DISTINCT user_name FROM demo.usage_logs")}
    assert {"Zoë Müller", "李雷"} <= names

    # And the generated values are consistent
    [[inconsistent_totals]] = demo.run(
        "SELECT count(*) FROM demo.usage_logs WHERE total_tokens IS DISTINCT FROM "
        "input_tokens + output_tokens + cache_creation_5m_tokens + cache_creation_1h_tokens "
        "+ cache_read_tokens AND input_tokens IS NOT NULL"
    )
    assert inconsistent_totals == 0
    [[blocked_with_provider]] = demo.run(
        "SELECT count(*) FROM demo.usage_logs "
        "WHERE provider_name IS NOT NULL AND status_code IN (403, 429)"
    )
    assert blocked_with_provider == 0
    statuses = {row[0] for row in demo.run("SELECT DISTINCT status_code FROM demo.usage_logs")}
    assert {200, 429} <= statuses
    [[oldest, newest]] = demo.run("SELECT min(created_at), max(created_at) FROM demo.usage_logs")
    assert (FIXED_NOW - oldest).days <= 90 and newest <= FIXED_NOW

    # And both export indexes exist
    indexes = {
        row[0] for row in demo.run("SELECT indexname FROM pg_indexes WHERE schemaname = 'demo'")
    }
    assert {"usage_logs_org_time_idx", "usage_logs_org_user_time_idx"} <= indexes


def test_every_tenant_has_the_tricky_rows(demo: pg8000.native.Connection) -> None:
    # Given seeded data
    seed_usage_logs(demo, 100, now=FIXED_NOW)

    for org_id in TENANTS:
        # When the tenant's text cells are collected
        rows = demo.run(
            "SELECT coalesce(user_name, ''), coalesce(key_name, ''), coalesce(model, ''), "
            "coalesce(original_model, ''), coalesce(endpoint, ''), coalesce(session_id, '') "
            "FROM demo.usage_logs WHERE org_id = :org",
            org=org_id,
        )
        cells = [cell for row in rows for cell in row]

        # Then every troublesome kind of value is there
        assert any("," in cell for cell in cells)
        assert any('"' in cell for cell in cells)
        assert any("\n" in cell for cell in cells)
        assert any("\t" in cell for cell in cells)
        assert any("🚀" in cell for cell in cells)
        for start in ("=", "+", "-", "@", "\t", "\r"):
            assert any(cell.startswith(start) for cell in cells), start
        assert any(len(cell) >= 9_990 for cell in cells)
    [[nulls]] = demo.run(
        "SELECT count(*) FROM demo.usage_logs WHERE provider_name IS NULL AND cost_usd IS NULL"
    )
    assert nulls >= len(TENANTS)


def test_the_same_seed_gives_the_same_rows(demo: pg8000.native.Connection) -> None:
    # When the table is seeded twice with the same seed and clock, then with another seed
    seed_usage_logs(demo, 300, seed=7, now=FIXED_NOW)
    first = content_digest(demo)
    seed_usage_logs(demo, 300, seed=7, now=FIXED_NOW)
    second = content_digest(demo)
    seed_usage_logs(demo, 300, seed=8, now=FIXED_NOW)
    other = content_digest(demo)

    # Then the same seed reproduces the data exactly, another seed does not
    assert first == second
    assert other != first


def test_seeding_without_replace_appends(demo: pg8000.native.Connection) -> None:
    before = seed_usage_logs(demo, 50, now=FIXED_NOW)
    added = seed_usage_logs(demo, 20, replace=False, now=FIXED_NOW)
    assert demo.run("SELECT count(*) FROM demo.usage_logs")[0][0] == before + added


def test_the_reader_role_can_read_but_not_write(
    demo: pg8000.native.Connection, pg_endpoint: PgEndpoint, pg_scratch_database: str
) -> None:
    # Given the demo schema and data
    apply_schema(demo)
    seed_usage_logs(demo, 10, now=FIXED_NOW)

    # When dataexport's role reads, it may; when it writes, it may not (no grant)
    demo.run(f"SET ROLE {READER}")
    try:
        assert demo.run("SELECT count(*) FROM demo.usage_logs")[0][0] > 0
        with pytest.raises(DatabaseError) as refused:
            demo.run("DELETE FROM demo.usage_logs")
        assert sqlstate(refused.value) == "42501"  # insufficient_privilege
    finally:
        demo.run("RESET ROLE")

    # And its sessions are read-only by default
    [[settings]] = demo.run(
        "SELECT setconfig FROM pg_db_role_setting JOIN pg_roles ON setrole = pg_roles.oid "
        "WHERE rolname = :role AND setdatabase = 0",
        role=READER,
    )
    assert "default_transaction_read_only=on" in settings


def test_a_reader_login_is_read_only(
    demo: pg8000.native.Connection,
    pg_endpoint: PgEndpoint,
    pg_socket_dir: str,
    pg_scratch_database: str,
) -> None:
    # Given the demo schema (the embedded server trusts local socket logins)
    apply_schema(demo)
    reader = pg_endpoint.connect(database=pg_scratch_database, user=READER)
    try:
        # When the reader logs in, it can read
        assert reader.run("SHOW default_transaction_read_only") == [["on"]]
        reader.run("SELECT count(*) FROM demo.usage_logs")

        # Then any write is refused by the read-only transaction
        with pytest.raises(DatabaseError) as refused:
            reader.run(
                "INSERT INTO demo.usage_logs (org_id, user_id, created_at) VALUES ('o', 'u', now())"
            )
        assert sqlstate(refused.value) == "25006"  # read_only_sql_transaction
    finally:
        reader.close()
