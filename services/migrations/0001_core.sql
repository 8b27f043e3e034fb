-- Core schema: the provisioning store and the CDR table.
-- Money is numeric with 5 decimal places (DESIGN.md: Money); identifiers are the
-- operator's own slugs, so YAML and API can upsert by them.

CREATE TABLE carriers (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    gateway_uri text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rate_plans (
    id                     text PRIMARY KEY,
    name                   text NOT NULL,
    currency               text NOT NULL DEFAULT 'USD',
    interstate_per_minute  numeric(12,5) NOT NULL CHECK (interstate_per_minute >= 0),
    intrastate_per_minute  numeric(12,5) NOT NULL CHECK (intrastate_per_minute >= 0),
    local_per_minute       numeric(12,5) NOT NULL CHECK (local_per_minute >= 0),
    alaska_per_minute      numeric(12,5) NOT NULL DEFAULT 0.30000 CHECK (alaska_per_minute >= 0),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'suspended', 'cancelled')),
    rate_plan_id  text NOT NULL REFERENCES rate_plans(id),
    credit_limit  numeric(14,5),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A trunk group: `trunks` Two-Way SIP Trunks, each one concurrent call (rule A1).
CREATE TABLE trunk_groups (
    id              text PRIMARY KEY,
    customer_id     text NOT NULL REFERENCES customers(id),
    trunks          integer NOT NULL CHECK (trunks >= 0),
    source_ips      cidr[] NOT NULL DEFAULT '{}',
    ani_precedence  text[] NOT NULL DEFAULT '{pai,rpid,from}',
    carrier_id      text NOT NULL REFERENCES carriers(id),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trunk_groups_customer ON trunk_groups (customer_id);

-- Telephone numbers in the carrier's inventory (A3, R4), E.164.
CREATE TABLE numbers (
    tn              text PRIMARY KEY CHECK (tn ~ '^\+[1-9][0-9]{6,14}$'),
    customer_id     text NOT NULL REFERENCES customers(id),
    trunk_group_id  text REFERENCES trunk_groups(id),
    origin          text NOT NULL DEFAULT 'assigned' CHECK (origin IN ('assigned', 'ported_in')),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX numbers_customer ON numbers (customer_id);

-- The caller's registered (dispatchable) address, for 911 (E2, E6).
CREATE TABLE registered_addresses (
    tn          text PRIMARY KEY REFERENCES numbers(tn) ON DELETE CASCADE,
    street      text NOT NULL,
    unit        text,
    city        text NOT NULL,
    state       text NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    zip         text NOT NULL CHECK (zip ~ '^[0-9]{5}(-[0-9]{4})?$'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per call leg (DESIGN.md: CDRs), partitioned by the month the call started.
-- The key includes started_at because a partitioned table's key must hold the partition
-- column; an event replayed carries the same started_at, so it cannot make a second row.
CREATE TABLE cdrs (
    call_id          text NOT NULL,
    leg              text NOT NULL DEFAULT 'a',
    customer_id      text,
    trunk_id         text,
    direction        text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    ani              text,
    ani_source       text,
    dnis             text NOT NULL,
    jurisdiction     text,
    started_at       timestamptz NOT NULL,
    answered_at      timestamptz,
    ended_at         timestamptz NOT NULL,
    duration_ms      bigint NOT NULL DEFAULT 0,
    billed_seconds   integer NOT NULL DEFAULT 0,
    rate_per_minute  numeric(12,5),
    amount           numeric(14,5) NOT NULL DEFAULT 0,
    currency         text NOT NULL DEFAULT 'USD',
    disposition      text NOT NULL,
    sip_status       integer,
    reason           text,
    emergency_level  text,
    carrier_id       text,
    edge             text,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, leg, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX cdrs_customer_started ON cdrs (customer_id, started_at);
CREATE INDEX cdrs_trunk_started ON cdrs (trunk_id, started_at);

-- Creates the month's partition when missing; the CDR writer calls it for each new month.
CREATE FUNCTION cdrs_ensure_partition(month date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name  text := 'cdrs_' || to_char(first, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF cdrs FOR VALUES FROM (%L) TO (%L)',
                       name, first, (first + interval '1 month')::date);
    END IF;
END $$;

SELECT cdrs_ensure_partition((date_trunc('month', now()) + make_interval(months => m))::date)
FROM generate_series(-1, 2) AS m;
