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
