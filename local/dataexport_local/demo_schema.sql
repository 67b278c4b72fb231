-- The demo application's schema: what dataexport reads in `make demo` and in the tests.
-- Idempotent: safe to run again on a database that already has it.

CREATE SCHEMA IF NOT EXISTS demo;

-- One row per API request of a gateway (seed 000's usage logs).
CREATE TABLE IF NOT EXISTS demo.usage_logs (
    id                       bigserial PRIMARY KEY,
    org_id                   text        NOT NULL,
    user_id                  text        NOT NULL,
    created_at               timestamptz NOT NULL,
    user_name                text,
    key_name                 text,
    provider_name            text,          -- NULL: the request was blocked before any provider
    model                    text,
    original_model           text,          -- the model asked for, before redirection
    endpoint                 text,
    status_code              integer,
    input_tokens             bigint,
    output_tokens            bigint,
    cache_creation_5m_tokens bigint,
    cache_creation_1h_tokens bigint,
    cache_read_tokens        bigint,
    total_tokens             bigint,
    cost_usd                 numeric(14, 8),
    duration_ms              integer,
    session_id               text,
    retry_count              integer
);

-- The export queries: a tenant's rows in time order, and one user's (members see their own).
CREATE INDEX IF NOT EXISTS usage_logs_org_time_idx
    ON demo.usage_logs (org_id, created_at, id);
CREATE INDEX IF NOT EXISTS usage_logs_org_user_time_idx
    ON demo.usage_logs (org_id, user_id, created_at, id);

-- Billing (seed 004, Lago-style): invoices, their fees and the credit notes against them.
-- Amounts are numeric in the invoice's currency (never float); dates are calendar dates.
CREATE TABLE IF NOT EXISTS demo.invoices (
    id               bigint      PRIMARY KEY,
    org_id           text        NOT NULL,
    number           text        NOT NULL,
    customer_id      text        NOT NULL,
    customer_name    text,
    customer_email   text,
    status           text        NOT NULL,  -- draft, finalized, voided, failed
    payment_status   text        NOT NULL,  -- pending, succeeded, failed
    currency         text        NOT NULL,
    subtotal_amount  numeric(20, 6) NOT NULL,
    taxes_amount     numeric(20, 6) NOT NULL,
    total_amount     numeric(20, 6) NOT NULL,
    issuing_date     date,                  -- NULL while a draft
    payment_due_date date,
    paid_at          timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_org_time_idx ON demo.invoices (org_id, created_at, id);

CREATE TABLE IF NOT EXISTS demo.fees (
    id             bigint      PRIMARY KEY,
    org_id         text        NOT NULL,
    invoice_id     bigint,                  -- NULL: paid in advance, not invoiced yet
    fee_type       text        NOT NULL,    -- charge, subscription, add_on, credit
    item_code      text        NOT NULL,
    item_name      text,
    units          numeric(20, 6) NOT NULL,
    unit_amount    numeric(24, 12) NOT NULL, -- per-unit prices need many places
    amount         numeric(20, 6) NOT NULL,
    taxes_amount   numeric(20, 6) NOT NULL,
    currency       text        NOT NULL,
    payment_status text        NOT NULL,    -- pending, succeeded, failed, refunded
    created_at     timestamptz NOT NULL,
    succeeded_at   timestamptz
);
CREATE INDEX IF NOT EXISTS fees_org_time_idx ON demo.fees (org_id, created_at, id);

CREATE TABLE IF NOT EXISTS demo.credit_notes (
    id            bigint      PRIMARY KEY,
    org_id        text        NOT NULL,
    invoice_id    bigint      NOT NULL,
    number        text        NOT NULL,
    customer_id   text        NOT NULL,
    reason        text        NOT NULL,
    credit_status text        NOT NULL,     -- available, consumed, voided
    refund_status text,                     -- NULL: nothing refunded
    currency      text        NOT NULL,
    credit_amount numeric(20, 6) NOT NULL,
    refund_amount numeric(20, 6) NOT NULL,
    total_amount  numeric(20, 6) NOT NULL,
    description   text,
    issuing_date  date        NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_notes_org_time_idx ON demo.credit_notes (org_id, created_at, id);

-- Smart-home device readings (seed 001): one sensor value of one device at one instant.
CREATE TABLE IF NOT EXISTS demo.device_readings (
    id          bigint      PRIMARY KEY,
    org_id      text        NOT NULL,
    user_id     text        NOT NULL,       -- the device's owner
    device_id   text        NOT NULL,
    device_ip   text,
    device_name text,
    device_type text        NOT NULL,       -- plug, bulb, strip, meter
    sensor      text        NOT NULL,       -- power, energy, voltage, current
    value       double precision,           -- NULL: the device did not answer
    unit        text        NOT NULL,
    is_on       boolean,
    location    text,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS device_readings_org_time_idx
    ON demo.device_readings (org_id, recorded_at, id);
CREATE INDEX IF NOT EXISTS device_readings_org_user_time_idx
    ON demo.device_readings (org_id, user_id, recorded_at, id);

-- Audit runs of an assessment platform (seed 002) and the results each run produced.
CREATE TABLE IF NOT EXISTS demo.audit_runs (
    id                bigint      PRIMARY KEY,
    org_id            text        NOT NULL,
    reviewer_id       text        NOT NULL, -- who ran it (members see their own runs)
    code              text        NOT NULL,
    reviewer_name     text,
    task_title        text,
    task_difficulty   text        NOT NULL, -- easy, medium, hard, expert
    skill_area        text        NOT NULL,
    status            text        NOT NULL, -- completed, failed, running
    total_submissions integer     NOT NULL,
    average_deviation numeric(8, 3),        -- NULL: no results yet
    critical_flags    integer     NOT NULL,
    started_at        timestamptz NOT NULL,
    completed_at      timestamptz            -- NULL while running
);
CREATE INDEX IF NOT EXISTS audit_runs_org_time_idx ON demo.audit_runs (org_id, started_at, id);
CREATE INDEX IF NOT EXISTS audit_runs_org_reviewer_time_idx
    ON demo.audit_runs (org_id, reviewer_id, started_at, id);

CREATE TABLE IF NOT EXISTS demo.audit_results (
    id               bigint      PRIMARY KEY,
    org_id           text        NOT NULL,
    run_id           bigint      NOT NULL REFERENCES demo.audit_runs (id),
    submission_id    text        NOT NULL,
    user_id          text        NOT NULL,
    user_score       integer     NOT NULL,
    ai_score         integer     NOT NULL,
    deviation        numeric(8, 3) NOT NULL,
    deviation_type   text        NOT NULL,  -- none, minor, major, critical
    suggested_action text        NOT NULL,  -- allow, flag_for_review, escalate, override
    action_taken     text,
    reviewer         text,
    notes            text,
    recorded_at      timestamptz NOT NULL
);
-- A run's results, in order: what the nested and flattened exports read per run.
CREATE INDEX IF NOT EXISTS audit_results_org_run_idx ON demo.audit_results (org_id, run_id, id);

-- The platform's users (seed 003): personal data, exported by admins only.
CREATE TABLE IF NOT EXISTS demo.platform_users (
    id               bigint      PRIMARY KEY,
    org_id           text        NOT NULL,
    user_id          text        NOT NULL,
    username         text        NOT NULL,
    display_name     text,
    email            text,
    role             text        NOT NULL,  -- member, admin, owner
    plan             text        NOT NULL,  -- free, pro, enterprise
    status           text        NOT NULL,  -- active, suspended, banned
    country          text,                  -- ISO 3166-1 alpha-2; NULL: unknown
    email_verified   boolean     NOT NULL,
    marketing_opt_in boolean,               -- NULL: never asked
    reputation_score numeric(5, 2),
    total_contracts  integer     NOT NULL,
    total_earned     numeric(18, 2) NOT NULL,
    wallet_address   text,
    signup_at        timestamptz NOT NULL,
    last_login_at    timestamptz,
    last_login_ip    text
);
CREATE INDEX IF NOT EXISTS platform_users_org_time_idx
    ON demo.platform_users (org_id, signup_at, id);

-- The role dataexport logs in with: it can read the demo schema and nothing else.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dataexport_reader') THEN
        CREATE ROLE dataexport_reader LOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA demo TO dataexport_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA demo TO dataexport_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA demo GRANT SELECT ON TABLES TO dataexport_reader;
-- Read-only even if a grant is ever too wide.
ALTER ROLE dataexport_reader SET default_transaction_read_only = on;
