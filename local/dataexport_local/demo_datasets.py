"""Generated rows of the demo datasets besides usage logs: billing, device readings, audit runs
with their results, platform users.

Every table is filled by INSERT ... SELECT over generate_series inside PostgreSQL, so seeding
takes well under a second. Values come from `unit_random(text)`, a hash of the row's number
(not random()), so the same clock gives the same rows whatever the plan or the server. Sizes are
fixed (a few thousand rows per table): `seed --rows` sizes the usage logs only.

The data carries what breaks exporters, as it would occur: NULLs (drafts without an issuing date,
devices that did not answer, users who never logged in), unicode and formula-like names, long
notes with commas, quotes and line breaks, decimals with twelve places, floats with seventeen
significant digits, and readings every half hour across the nights Europe's clocks change.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Any

import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

from dataexport_local.demo_data import DEMO_USERS, TENANTS

# Tables this module fills, children before parents (the order TRUNCATE needs).
DEMO_DATASET_TABLES = (
    "demo.audit_results",
    "demo.audit_runs",
    "demo.credit_notes",
    "demo.fees",
    "demo.invoices",
    "demo.device_readings",
    "demo.platform_users",
)
INVOICES = 900
RUNS_PER_TENANT = 20
PLATFORM_USERS_PER_TENANT = 100
READING_DAYS = 30
READING_EVERY_HOURS = 3

_UNIT_RANDOM_SQL = """
CREATE OR REPLACE FUNCTION pg_temp.unit_random(seed text) RETURNS double precision
LANGUAGE sql IMMUTABLE AS
$$ SELECT CAST(CAST(CAST('x' || substr(md5(seed), 1, 12) AS bit(48)) AS bigint)
       AS double precision) / 281474976710656 $$
"""

CUSTOMER_NAMES = (
    "Acme Corporation",
    "Müller & Söhne GmbH",
    "株式会社サンプル",
    'Café "Le Zinc"',
    "O'Reilly Media, Inc.",
    "Ørsted A/S",
    "Иванов и партнёры",
    '=HYPERLINK("https://evil.example","pay here")',
    "Łódź Software S.A.",
    "São Paulo Importações Ltda.",
    "Zoë's Bakery 🧁",
    "Northwind Traders",
)
CURRENCIES = ("USD", "EUR", "GBP", "JPY")

_INVOICES_SQL = """
INSERT INTO demo.invoices (id, org_id, number, customer_id, customer_name, customer_email, status,
    payment_status, currency, subtotal_amount, taxes_amount, total_amount, issuing_date,
    payment_due_date, paid_at, created_at, updated_at)
SELECT g, org_id,
    upper(substr(org_id, 5)) || '-' || to_char(created_at AT TIME ZONE 'UTC', 'YYYYMM') || '-'
        || lpad(CAST(g AS text), 6, '0'),
    'cus_' || substr(org_id, 5) || '_' || lpad(CAST(customer AS text), 3, '0'),
    CASE WHEN customer % 17 = 0 THEN NULL
         ELSE (CAST(:customer_names AS text[]))[1 + customer % :customer_count] END,
    CASE WHEN customer % 11 = 0 THEN NULL
         ELSE 'billing+' || customer || '@' || substr(org_id, 5) || '.example' END,
    status,
    CASE WHEN status <> 'finalized' THEN 'pending'
         WHEN r_pay < 0.82 THEN 'succeeded' WHEN r_pay < 0.95 THEN 'pending' ELSE 'failed' END,
    (CAST(:currencies AS text[]))[1 + customer % 4],
    0, 0, 0,  -- the sums of the invoice's fees, set once the fees exist
    CASE WHEN status = 'draft' THEN NULL ELSE CAST(created_at AT TIME ZONE 'UTC' AS date) END,
    CASE WHEN status = 'draft' THEN NULL
         ELSE CAST(created_at AT TIME ZONE 'UTC' AS date) + 30 END,
    CASE WHEN status = 'finalized' AND r_pay < 0.82
         THEN least(CAST(:now AS timestamptz), created_at + r_paid_after * interval '20 days')
    END,
    created_at,
    created_at
FROM (
    SELECT g,
        (CAST(:tenants AS text[]))[1 + g % :tenant_count] AS org_id,
        1 + (g / :tenant_count) % 40 AS customer,
        CASE WHEN pg_temp.unit_random('inv:status:' || g) < 0.05 THEN 'draft'
             WHEN pg_temp.unit_random('inv:status:' || g) < 0.08 THEN 'voided'
             WHEN pg_temp.unit_random('inv:status:' || g) < 0.10 THEN 'failed'
             ELSE 'finalized' END AS status,
        pg_temp.unit_random('inv:pay:' || g) AS r_pay,
        pg_temp.unit_random('inv:paid:' || g) AS r_paid_after,
        date_trunc('second', CAST(:now AS timestamptz) - interval '365 days'
            + (g - 1 + pg_temp.unit_random('inv:time:' || g)) / :invoices * interval '365 days')
            AS created_at
    FROM generate_series(1, :invoices) AS g
) AS drawn
"""

FEE_ITEMS = (
    ("subscription", "plan_startup", "Startup plan (monthly)"),
    ("charge", "api_calls", "API calls"),
    ("charge", "storage_gb", "Storage (GB-month)"),
    ("charge", "egress_gb", "Data transfer out, per GB"),
    ("add_on", "support_premium", "Premium support — 24/7"),
    ("credit", "prepaid_credits", "Prepaid credits"),
)

# One to four fees per invoice, then a few not yet invoiced (pay in advance).
_FEES_SQL = """
INSERT INTO demo.fees (id, org_id, invoice_id, fee_type, item_code, item_name, units,
    unit_amount, amount, taxes_amount, currency, payment_status, created_at, succeeded_at)
SELECT row_number() OVER (ORDER BY invoice_id NULLS LAST, n, created_at),
    org_id, invoice_id,
    (CAST(:fee_types AS text[]))[item], (CAST(:item_codes AS text[]))[item],
    (CAST(:item_names AS text[]))[item],
    units, unit_amount, round(units * unit_amount, 6), round(units * unit_amount * tax_rate, 6),
    currency,
    CASE WHEN invoice_payment = 'succeeded' AND r_refund < 0.03 THEN 'refunded'
         ELSE invoice_payment END,
    created_at,
    CASE WHEN invoice_payment = 'succeeded' THEN paid_at END
FROM (
    SELECT i.id AS invoice_id, i.org_id, i.currency, i.payment_status AS invoice_payment,
        i.paid_at, n,
        i.created_at - interval '1 minute' * n AS created_at,
        1 + floor(pg_temp.unit_random('fee:item:' || i.id || ':' || n) * 6)::int AS item,
        round(CAST(1 + pg_temp.unit_random('fee:units:' || i.id || ':' || n) * 50000 AS numeric),
            CASE WHEN n = 1 THEN 0 ELSE 6 END) AS units,
        round(CAST(pg_temp.unit_random('fee:price:' || i.id || ':' || n) AS numeric)
            * CASE WHEN i.currency = 'JPY' THEN 3 ELSE 0.02 END, 12) AS unit_amount,
        (ARRAY[0, 0.07, 0.19, 0.2])[1 + i.id % 4] AS tax_rate,
        pg_temp.unit_random('fee:refund:' || i.id || ':' || n) AS r_refund
    FROM demo.invoices AS i,
        generate_series(1, 1 + floor(pg_temp.unit_random('fee:n:' || i.id) * 4)::int) AS n
    UNION ALL
    SELECT NULL, (CAST(:tenants AS text[]))[1 + g % :tenant_count], 'USD', 'pending', NULL, g,
        CAST(:now AS timestamptz) - interval '90 minutes' * g,
        6, 1000 * g, 0.001, 0, 0
    FROM generate_series(1, 12) AS g
) AS fee
"""

_INVOICE_TOTALS_SQL = """
UPDATE demo.invoices AS i
SET subtotal_amount = f.subtotal, taxes_amount = f.taxes, total_amount = f.subtotal + f.taxes
FROM (
    SELECT invoice_id, sum(amount) AS subtotal, sum(taxes_amount) AS taxes
    FROM demo.fees WHERE invoice_id IS NOT NULL GROUP BY invoice_id
) AS f
WHERE i.id = f.invoice_id
"""

CREDIT_REASONS = (
    "duplicated_charge",
    "product_unsatisfactory",
    "order_change",
    "order_cancellation",
    "fraudulent_charge",
    "other",
)
LONG_DESCRIPTION = (
    'Credited after review, see ticket #4711; customer wrote: "the invoice,\nonce again, '
    'double-counted storage". ' * 40
)

# About one finalized invoice in twelve gets a credit note for part or all of its total.
_CREDIT_NOTES_SQL = """
INSERT INTO demo.credit_notes (id, org_id, invoice_id, number, customer_id, reason,
    credit_status, refund_status, currency, credit_amount, refund_amount, total_amount,
    description, issuing_date, created_at)
SELECT row_number() OVER (ORDER BY id), org_id, id,
    'CN-' || number, customer_id,
    (CAST(:reasons AS text[]))[1 + id % 6],
    CASE WHEN r_status < 0.6 THEN 'available' WHEN r_status < 0.9 THEN 'consumed'
         ELSE 'voided' END,
    CASE WHEN payment_status = 'succeeded' THEN
        CASE WHEN r_status < 0.5 THEN 'succeeded' WHEN r_status < 0.8 THEN 'pending'
             ELSE 'failed' END
    END,
    currency,
    round(total_amount * share, 6) - CASE WHEN payment_status = 'succeeded'
        THEN round(total_amount * share / 3, 6) ELSE 0 END,
    CASE WHEN payment_status = 'succeeded' THEN round(total_amount * share / 3, 6) ELSE 0 END,
    round(total_amount * share, 6),
    CASE WHEN id % 5 = 0 THEN NULL WHEN id % 7 = 0 THEN :long_description
         ELSE 'Partial credit: ' || round(share * 100) || '% of ' || number END,
    CAST(created_at AT TIME ZONE 'UTC' AS date) + 3,
    created_at + interval '3 days 2 hours'
FROM (
    SELECT i.*, pg_temp.unit_random('cn:status:' || i.id) AS r_status,
        CAST(0.1 + 0.9 * pg_temp.unit_random('cn:share:' || i.id) AS numeric) AS share
    FROM demo.invoices AS i
    WHERE i.status = 'finalized' AND pg_temp.unit_random('cn:' || i.id) < 0.085
) AS credited
"""

DEVICE_NAMES = (
    "Living Room Lamp",
    "Küche Kühlschrank",
    "寝室のエアコン",
    'Garage "Workshop" Strip',
    "Office, Desk Fan",
    "Salle de bain — chauffe-serviette",
)
DEVICE_TYPES = ("bulb", "plug", "plug", "strip", "plug", "plug")
LOCATIONS = ("Home", "Ferienhaus am See", "Büro 2.OG", None)

# Two devices per demo user, each reporting power and energy every few hours; a value is NULL
# when the device did not answer, and the first device of each tenant also reports every half
# hour across the last spring-forward and fall-back nights of Central Europe (2025).
_DEVICE_READINGS_SQL = """
INSERT INTO demo.device_readings (id, org_id, user_id, device_id, device_ip, device_name,
    device_type, sensor, value, unit, is_on, location, recorded_at)
SELECT row_number() OVER (ORDER BY recorded_at, device_id, sensor),
    org_id, user_id, device_id, device_ip, device_name, device_type, sensor,
    CASE WHEN r_missing < 0.01 THEN NULL
         WHEN sensor = 'power' THEN CASE WHEN is_on THEN 2 + r_value * 1800 ELSE 0.3 END
         WHEN sensor = 'energy' THEN r_value * 45.5 + hour_index * 0.0125
         ELSE 18.5 + r_value * 4 END,
    CASE sensor WHEN 'power' THEN 'W' WHEN 'energy' THEN 'kWh' ELSE '°C' END,
    CASE WHEN r_missing < 0.01 THEN NULL ELSE is_on END,
    location, recorded_at
FROM (
    SELECT d.*, s.sensor, t.recorded_at, t.hour_index,
        pg_temp.unit_random('dr:v:' || d.device_id || ':' || s.sensor || ':' || t.hour_index)
            AS r_value,
        pg_temp.unit_random('dr:m:' || d.device_id || ':' || s.sensor || ':' || t.hour_index)
            AS r_missing,
        pg_temp.unit_random('dr:on:' || d.device_id || ':' || t.hour_index) < 0.6 AS is_on
    FROM (
        SELECT u.ordinality AS user_index, u.org_id, u.user_id, k AS device_number,
            'dev_' || substr(u.user_id, 5) || '_' || k AS device_id,
            '192.168.' || u.ordinality || '.' || (100 + k) AS device_ip,
            (CAST(:device_names AS text[]))[1 + (u.ordinality * 2 + k) % 6] AS device_name,
            (CAST(:device_types AS text[]))[1 + (u.ordinality * 2 + k) % 6] AS device_type,
            (CAST(:locations AS text[]))[1 + u.ordinality % 4] AS location
        FROM unnest(CAST(:org_ids AS text[]), CAST(:user_ids AS text[]))
            WITH ORDINALITY AS u(org_id, user_id, ordinality),
            generate_series(1, 2) AS k
    ) AS d
    CROSS JOIN (VALUES ('power'), ('energy')) AS s(sensor)
    CROSS JOIN LATERAL (
        SELECT h AS hour_index,
            date_trunc('hour', CAST(:now AS timestamptz)) - interval '1 hour' * h AS recorded_at
        FROM generate_series(0, :reading_days * 24 - 1, :reading_every) AS h
    ) AS t
    UNION ALL
    SELECT d.*, 'temperature', t.at, 0,
        pg_temp.unit_random('dr:dst:' || d.device_id || ':' || t.at), 1, true
    FROM (
        SELECT DISTINCT ON (org_id) 0, org_id, user_id, 1,
            'dev_' || substr(user_id, 5) || '_1', '192.168.0.100', 'Thermostat Flur', 'meter',
            'Home'
        FROM unnest(CAST(:org_ids AS text[]), CAST(:user_ids AS text[])) AS u(org_id, user_id)
        ORDER BY org_id, user_id
    ) AS d(user_index, org_id, user_id, device_number, device_id, device_ip, device_name,
        device_type, location)
    CROSS JOIN (
        SELECT generate_series(TIMESTAMPTZ '2025-03-29 23:00+00', TIMESTAMPTZ '2025-03-30 03:00+00',
            interval '30 minutes')
        UNION ALL
        SELECT generate_series(TIMESTAMPTZ '2025-10-25 23:00+00', TIMESTAMPTZ '2025-10-26 03:00+00',
            interval '30 minutes')
    ) AS t(at)
) AS reading
"""

TASKS = (
    ("Build a responsive navigation bar", "frontend", "medium"),
    ("Implement a rate limiter in Redis", "backend", "hard"),
    ("Write a SQL report of monthly revenue", "data", "easy"),
    ("Design a fault-tolerant job queue", "architecture", "expert"),
    ("Übersetze die Fehlermeldungen (i18n) — 日本語 too", "frontend", "easy"),
)
RESULT_NOTES = (
    "Code quality exceeds AI assessment",
    "Critical deviation requires manual review",
    'Reviewer said: "looks fine, but tests, docs and types are missing"',
    "Line one of the note\nline two, after a line break",
    "=1+1 (a note that looks like a formula)",
    "Très bien — アクセシビリティも良い 👍",
)

# Twenty runs per tenant, by its users in turn; each tenant's newest run is still running (no
# results yet) and one has failed. A finished run has 3 to 15 results, and its totals are those
# of its results (set after they exist).
_AUDIT_RUNS_SQL = """
INSERT INTO demo.audit_runs (id, org_id, reviewer_id, code, reviewer_name, task_title,
    task_difficulty, skill_area, status, total_submissions, average_deviation, critical_flags,
    started_at, completed_at)
SELECT g, org_id, reviewer_id,
    'run-' || lpad(CAST(g AS text), 4, '0'), reviewer_name,
    (CAST(:task_titles AS text[]))[task], (CAST(:task_difficulties AS text[]))[task],
    (CAST(:skill_areas AS text[]))[task],
    status, 0, NULL, 0, started_at,
    CASE WHEN status <> 'running'
         THEN started_at + interval '1 minute' * (20 + floor(r_duration * 200)) END
FROM (
    SELECT g, t.org_id,
        (array_agg(u.user_id ORDER BY u.user_id))[CAST(1 + (g / :tenant_count) % count(*) AS int)]
            AS reviewer_id,
        (array_agg(u.name ORDER BY u.user_id))[CAST(1 + (g / :tenant_count) % count(*) AS int)]
            AS reviewer_name,
        1 + g % 5 AS task,
        CASE WHEN g > :runs - :tenant_count THEN 'running'
             WHEN g % 9 = 4 THEN 'failed' ELSE 'completed' END AS status,
        pg_temp.unit_random('run:d:' || g) AS r_duration,
        date_trunc('second', CAST(:now AS timestamptz) - interval '36 hours' * (:runs - g)
            - interval '1 second' * floor(pg_temp.unit_random('run:t:' || g) * 3600))
            AS started_at
    FROM generate_series(1, :runs) AS g
    CROSS JOIN LATERAL (SELECT (CAST(:tenants AS text[]))[1 + g % :tenant_count] AS org_id) AS t
    JOIN unnest(CAST(:org_ids AS text[]), CAST(:user_ids AS text[]), CAST(:user_names AS text[]))
        AS u(org_id, user_id, name) ON u.org_id = t.org_id
    GROUP BY g, t.org_id
) AS drawn
"""

_AUDIT_RESULTS_SQL = """
INSERT INTO demo.audit_results (id, org_id, run_id, submission_id, user_id, user_score,
    ai_score, deviation, deviation_type, suggested_action, action_taken, reviewer, notes,
    recorded_at)
SELECT row_number() OVER (ORDER BY run_id, n), org_id, run_id,
    'sub-' || lpad(CAST(run_id AS text), 4, '0') || '-' || lpad(CAST(n AS text), 2, '0'),
    'user-' || (100 + floor(r_user * 900)),
    user_score, ai_score, deviation,
    CASE WHEN deviation < 5 THEN 'none' WHEN deviation < 15 THEN 'minor'
         WHEN deviation < 30 THEN 'major' ELSE 'critical' END,
    CASE WHEN deviation < 5 THEN 'allow' WHEN deviation < 15 THEN 'flag_for_review'
         WHEN deviation < 30 THEN 'escalate' ELSE 'override' END,
    CASE WHEN r_action < 0.4 THEN NULL WHEN r_action < 0.8 THEN 'allow' ELSE 'override' END,
    CASE WHEN r_action < 0.4 THEN NULL ELSE reviewer_name END,
    CASE WHEN r_note < 0.5 THEN NULL
         ELSE (CAST(:notes AS text[]))[1 + floor((r_note - 0.5) * 2 * 6)::int] END,
    started_at + interval '7 minutes' * n
FROM (
    SELECT r.id AS run_id, r.org_id, r.reviewer_name, r.started_at, n,
        pg_temp.unit_random('res:u:' || r.id || ':' || n) AS r_user,
        pg_temp.unit_random('res:a:' || r.id || ':' || n) AS r_action,
        pg_temp.unit_random('res:n:' || r.id || ':' || n) AS r_note,
        40 + floor(pg_temp.unit_random('res:s:' || r.id || ':' || n) * 61)::int AS user_score,
        greatest(0, least(100, 40 + floor(pg_temp.unit_random('res:s:' || r.id || ':' || n) * 61)
            + floor((pg_temp.unit_random('res:g:' || r.id || ':' || n) - 0.5) * 70)))::int
            AS ai_score,
        round(CAST(pg_temp.unit_random('res:f:' || r.id || ':' || n) AS numeric), 3) AS fraction
    FROM demo.audit_runs AS r,
        generate_series(1, 3 + floor(pg_temp.unit_random('res:count:' || r.id) * 13)::int) AS n
    WHERE r.status <> 'running'
) AS scored
CROSS JOIN LATERAL (SELECT abs(user_score - ai_score) + fraction AS deviation) AS d
"""

_AUDIT_RUN_TOTALS_SQL = """
UPDATE demo.audit_runs AS r
SET total_submissions = t.submissions, average_deviation = t.average, critical_flags = t.critical
FROM (
    SELECT run_id, count(*) AS submissions, round(avg(deviation), 3) AS average,
        count(*) FILTER (WHERE deviation_type = 'critical') AS critical
    FROM demo.audit_results GROUP BY run_id
) AS t
WHERE r.id = t.run_id
"""

FIRST_NAMES = ("Ada", "Björn", "Chloé", "Dmitri", "Émile", "Fatima", "Grace", "Hiroshi", "Inés")
LAST_NAMES = ("Lovelace", "Järvinen", "Dubois", "Иванов", "Zola", "Al-Sayed", "Hopper", "田中")
COUNTRIES = ("US", "DE", "FR", "JP", "BR", "GB", "IN", "NG", None)

# The demo users first (so a token's user is a platform user), then generated ones; signups
# spread over two years (several clock changes), some never logged in.
_PLATFORM_USERS_SQL = """
INSERT INTO demo.platform_users (id, org_id, user_id, username, display_name, email, role, plan,
    status, country, email_verified, marketing_opt_in, reputation_score, total_contracts,
    total_earned, wallet_address, signup_at, last_login_at, last_login_ip)
SELECT row_number() OVER (ORDER BY signup_at, user_id), org_id, user_id, username, display_name,
    CASE WHEN r_email < 0.04 THEN NULL
         ELSE lower(username) || '@' || substr(org_id, 5) || '.example' END,
    CASE WHEN r_role < 0.08 THEN 'admin' WHEN r_role < 0.1 THEN 'owner' ELSE 'member' END,
    CASE WHEN r_plan < 0.6 THEN 'free' WHEN r_plan < 0.9 THEN 'pro' ELSE 'enterprise' END,
    CASE WHEN r_status < 0.92 THEN 'active' WHEN r_status < 0.98 THEN 'suspended' ELSE 'banned'
    END,
    (CAST(:countries AS text[]))[1 + floor(r_country * :country_count)::int],
    r_email >= 0.15,
    CASE WHEN r_opt_in < 0.3 THEN NULL ELSE r_opt_in >= 0.65 END,
    CASE WHEN r_plan < 0.05 THEN NULL ELSE round(CAST(r_status * 100 AS numeric), 2) END,
    floor(r_contracts * 60)::int,
    round(CAST(r_contracts * r_contracts * 250000 AS numeric), 2),
    CASE WHEN r_plan < 0.3 THEN NULL ELSE '0x' || substr(md5('wallet:' || user_id), 1, 32)
        || substr(md5('wallet2:' || user_id), 1, 8) END,
    signup_at,
    CASE WHEN r_login < 0.1 THEN NULL
         ELSE signup_at + (CAST(:now AS timestamptz) - signup_at) * r_login END,
    CASE WHEN r_login < 0.1 THEN NULL
         WHEN r_login < 0.7 THEN '203.0.113.' || floor(r_email * 254 + 1)
         ELSE '2001:db8:' || to_hex(floor(r_role * 65535)::int) || '::'
             || to_hex(floor(r_plan * 4095)::int) END
FROM (
    SELECT org_id, user_id, username, display_name, signup_at,
        pg_temp.unit_random('pu:email:' || user_id) AS r_email,
        pg_temp.unit_random('pu:role:' || user_id) AS r_role,
        pg_temp.unit_random('pu:plan:' || user_id) AS r_plan,
        pg_temp.unit_random('pu:status:' || user_id) AS r_status,
        pg_temp.unit_random('pu:country:' || user_id) AS r_country,
        pg_temp.unit_random('pu:opt:' || user_id) AS r_opt_in,
        pg_temp.unit_random('pu:contracts:' || user_id) AS r_contracts,
        pg_temp.unit_random('pu:login:' || user_id) AS r_login
    FROM (
        SELECT u.org_id, u.user_id, replace(u.user_id, 'usr_', '') AS username, u.name,
            date_trunc('second', CAST(:now AS timestamptz) - interval '730 days'
                + interval '1 day' * u.ordinality)
        FROM unnest(CAST(:org_ids AS text[]), CAST(:user_ids AS text[]),
            CAST(:user_names AS text[])) WITH ORDINALITY AS u(org_id, user_id, name, ordinality)
        UNION ALL
        SELECT t.org_id, 'usr_' || substr(t.org_id, 5) || '_g' || lpad(CAST(g AS text), 4, '0'),
            lower(f.first) || '.' || g,
            CASE WHEN g % 23 = 0 THEN NULL ELSE f.first || ' ' || l.last END,
            date_trunc('second', CAST(:now AS timestamptz) - interval '730 days'
                + (g + pg_temp.unit_random('pu:t:' || g)) / :generated * interval '730 days')
        FROM generate_series(1, :generated) AS g
        CROSS JOIN LATERAL (SELECT (CAST(:tenants AS text[]))[1 + g % :tenant_count] AS org_id)
            AS t
        CROSS JOIN LATERAL (SELECT (CAST(:first_names AS text[]))[1 + g % :first_count] AS first)
            AS f
        CROSS JOIN LATERAL (SELECT (CAST(:last_names AS text[]))[1 + (g / 3) % :last_count] AS last)
            AS l
    ) AS people(org_id, user_id, username, display_name, signup_at)
) AS drawn
"""


def _params(now: datetime) -> dict[str, Any]:
    return {
        "now": now,
        "tenants": list(TENANTS),
        "tenant_count": len(TENANTS),
        "org_ids": [user.org_id for user in DEMO_USERS],
        "user_ids": [user.user_id for user in DEMO_USERS],
        "user_names": [user.name for user in DEMO_USERS],
    }


def _statements(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Each generating statement with the parameters it uses (pg8000 refuses unused ones)."""
    common = _params(now)

    def using(sql: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        params = {**common, **extra}
        return sql, {name: value for name, value in params.items() if f":{name}" in sql}

    return [
        using(
            _INVOICES_SQL,
            customer_names=list(CUSTOMER_NAMES),
            customer_count=len(CUSTOMER_NAMES),
            currencies=list(CURRENCIES),
            invoices=INVOICES,
        ),
        using(
            _FEES_SQL,
            fee_types=[item[0] for item in FEE_ITEMS],
            item_codes=[item[1] for item in FEE_ITEMS],
            item_names=[item[2] for item in FEE_ITEMS],
        ),
        using(_INVOICE_TOTALS_SQL),
        using(_CREDIT_NOTES_SQL, reasons=list(CREDIT_REASONS), long_description=LONG_DESCRIPTION),
        using(
            _DEVICE_READINGS_SQL,
            device_names=list(DEVICE_NAMES),
            device_types=list(DEVICE_TYPES),
            locations=list(LOCATIONS),
            reading_days=READING_DAYS,
            reading_every=READING_EVERY_HOURS,
        ),
        using(
            _AUDIT_RUNS_SQL,
            runs=RUNS_PER_TENANT * len(TENANTS),
            task_titles=[task[0] for task in TASKS],
            skill_areas=[task[1] for task in TASKS],
            task_difficulties=[task[2] for task in TASKS],
        ),
        using(_AUDIT_RESULTS_SQL, notes=list(RESULT_NOTES)),
        using(_AUDIT_RUN_TOTALS_SQL),
        using(
            _PLATFORM_USERS_SQL,
            countries=list(COUNTRIES),
            country_count=len(COUNTRIES),
            first_names=list(FIRST_NAMES),
            first_count=len(FIRST_NAMES),
            last_names=list(LAST_NAMES),
            last_count=len(LAST_NAMES),
            generated=PLATFORM_USERS_PER_TENANT * len(TENANTS),
        ),
    ]


def seed_demo_datasets(conn: pg8000.native.Connection, now: datetime) -> dict[str, int]:
    """Replace the rows of every DEMO_DATASET_TABLES table with generated ones, in one
    transaction; returns the rows each table holds afterwards."""
    conn.run("BEGIN")
    try:
        conn.run(_UNIT_RANDOM_SQL)
        conn.run(f"TRUNCATE {', '.join(DEMO_DATASET_TABLES)}")
        for sql, params in _statements(now):
            conn.run(sql, **params)
        conn.run("COMMIT")
    except BaseException:
        # A failed ROLLBACK (connection gone) must not hide the error that caused it.
        with suppress(InterfaceError, DatabaseError):
            conn.run("ROLLBACK")
        raise
    counts: dict[str, int] = {}
    for table in DEMO_DATASET_TABLES:
        conn.run(f"ANALYZE {table}")
        counts[table] = int(conn.run(f"SELECT count(*) FROM {table}")[0][0])
    return counts
