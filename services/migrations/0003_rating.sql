-- Rating (issue 4): reference data with effective dates, the full tariff of a rate plan
-- and its dated versions, per-customer A5 unblocks and R15 initial terms, A7 block list.
--
-- Effective dates are UTC calendar days. A row is in force from effective_from (the first
-- day; 0001-01-01 = always) until effective_to (the first day it no longer is; NULL = no
-- end). For one key, the newest row whose effective_from has come is the one in force.

-- NPA-NXX codes, shaped like NANPA's central office code report (rule R6).
CREATE TABLE nanp_codes (
    npa             text NOT NULL CHECK (npa ~ '^[2-9][0-9]{2}$'),
    nxx             text NOT NULL CHECK (nxx ~ '^[2-9][0-9]{2}$'),
    state           text NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    rate_center     text,
    ocn             text,
    company         text,
    use             text,
    assign_date     date,
    initial_growth  text,
    pooled          boolean,
    effective_from  date NOT NULL DEFAULT '0001-01-01',
    effective_to    date CHECK (effective_to > effective_from),
    PRIMARY KEY (npa, nxx, effective_from)
);

-- Thousands blocks (NPA-NXX-X), shaped like NANPA's pooling report; a block's rate center
-- and OCN win over its NXX's (R6).
CREATE TABLE nanp_blocks (
    npa             text NOT NULL CHECK (npa ~ '^[2-9][0-9]{2}$'),
    nxx             text NOT NULL CHECK (nxx ~ '^[2-9][0-9]{2}$'),
    x               text NOT NULL CHECK (x ~ '^[0-9]$'),
    state           text CHECK (state ~ '^[A-Z]{2}$'),
    rate_center     text NOT NULL,
    ocn             text,
    company         text,
    effective_from  date NOT NULL DEFAULT '0001-01-01',
    effective_to    date CHECK (effective_to > effective_from),
    PRIMARY KEY (npa, nxx, x, effective_from)
);

-- The LATA of each rate center (R8: intrastate is priced per LATA).
CREATE TABLE latas (
    state           text NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    rate_center     text NOT NULL,
    lata            text NOT NULL,
    lata_name       text,
    effective_from  date NOT NULL DEFAULT '0001-01-01',
    effective_to    date CHECK (effective_to > effective_from),
    PRIMARY KEY (state, rate_center, effective_from)
);

-- Carrier category of an operating company (R6, B4).
CREATE TABLE carrier_categories (
    ocn             text NOT NULL,
    company         text,
    category        text NOT NULL CHECK (category IN ('rboc_ilec', 'wireless', 'clec', 'other')),
    effective_from  date NOT NULL DEFAULT '0001-01-01',
    effective_to    date CHECK (effective_to > effective_from),
    PRIMARY KEY (ocn, effective_from)
);

-- Local calling areas as rate-center pairs: calls from the first to the second are local (R3).
CREATE TABLE local_calling_areas (
    state              text NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    rate_center        text NOT NULL,
    local_state        text NOT NULL CHECK (local_state ~ '^[A-Z]{2}$'),
    local_rate_center  text NOT NULL,
    effective_from     date NOT NULL DEFAULT '0001-01-01',
    effective_to       date CHECK (effective_to > effective_from),
    PRIMARY KEY (state, rate_center, local_state, local_rate_center, effective_from)
);

-- International rate decks: per-minute rate by E.164 prefix (R11).
CREATE TABLE intl_rates (
    deck             text NOT NULL DEFAULT 'default',
    prefix           text NOT NULL CHECK (prefix ~ '^[1-9][0-9]{0,14}$'),
    description      text,
    rate_per_minute  numeric(12,5) NOT NULL CHECK (rate_per_minute >= 0),
    effective_from   date NOT NULL DEFAULT '0001-01-01',
    effective_to     date CHECK (effective_to > effective_from),
    PRIMARY KEY (deck, prefix, effective_from)
);

-- Every import, for the operator's record.
CREATE TABLE refdata_imports (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL,
    deck           text,
    source         text NOT NULL,
    rows_read      integer NOT NULL,
    rows_imported  integer NOT NULL,
    rows_skipped   integer NOT NULL,
    replaced       boolean NOT NULL DEFAULT false,
    imported_at    timestamptz NOT NULL DEFAULT now()
);

-- A counter bumped by any change to the reference data, however made (an import, a manual
-- fix, a TRUNCATE): nodes reload their snapshot only when it moved, since a full NANPA
-- snapshot takes seconds to load and the inventory reloads on every provisioning change.
-- Statement triggers see the rows a statement changed (transition tables), so an import
-- that changes nothing leaves the counter, and the nodes' snapshots, alone.
CREATE TABLE refdata_generation (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    generation  bigint NOT NULL
);
INSERT INTO refdata_generation VALUES (true, 0);

CREATE FUNCTION refdata_bump_if_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        UPDATE refdata_generation SET generation = generation + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION refdata_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE refdata_generation SET generation = generation + 1;
    RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['nanp_codes', 'nanp_blocks', 'latas', 'carrier_categories',
                             'local_calling_areas', 'intl_rates'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION refdata_bump_if_changed()',
                       t || '_bump_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION refdata_bump_if_changed()',
                       t || '_bump_update', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION refdata_bump_if_changed()',
                       t || '_bump_delete', t);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION refdata_bump()',
                       t || '_bump_truncate', t);
    END LOOP;
END $$;

-- The rest of a plan's tariff (rater/tariff.py defaults for what is not set), as set in the
-- provisioning file: decimals as strings, so nothing is lost to floats.
ALTER TABLE rate_plans ADD COLUMN tariff jsonb NOT NULL DEFAULT '{}';

-- Dated changes of a plan (R15), each applied over the one before.
CREATE TABLE rate_plan_versions (
    plan_id         text NOT NULL REFERENCES rate_plans(id) ON DELETE CASCADE,
    effective_from  date NOT NULL,
    rates           jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_id, effective_from)
);

ALTER TABLE customers
    ADD COLUMN high_cost_allowed    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN term_start           date,
    ADD COLUMN initial_term_months  integer CHECK (initial_term_months > 0);

-- Sources refused whatever they dial (A7: floods, scanners).
CREATE TABLE blocked_sources (
    network     cidr PRIMARY KEY,
    reason      text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
