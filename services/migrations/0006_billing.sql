-- Monthly billing (issue 7, SPEC B1–B10). Money is numeric: 5 places for what the rules
-- compute, 2 (cents) for what an invoice shows. Periods are calendar months (UTC), named by
-- their first day. The term of a customer (B7) is customers.term_start and
-- initial_term_months (0003); trunk counts are trunk_groups.trunks (0001).

-- A customer's billing terms: the soft caps it is held to, B4's surcharge, and its credit
-- limit and deposit (B10), which are the source of the rater's credit check (A6).
CREATE TABLE billing_accounts (
    customer_id                 text PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    enforce_local_inbound_cap   boolean NOT NULL DEFAULT false,  -- B2 soft cap
    enforce_ld_minimum          boolean NOT NULL DEFAULT false,  -- B3 soft minimum
    enforce_short_calls         boolean NOT NULL DEFAULT true,   -- B1
    enforce_rboc_threshold      boolean NOT NULL DEFAULT true,   -- B4
    rboc_surcharge_per_minute   numeric(12,5) NOT NULL DEFAULT 0.06000
                                CHECK (rboc_surcharge_per_minute BETWEEN 0 AND 0.06),
    credit_limit                numeric(14,5) CHECK (credit_limit >= 0),
    deposit                     numeric(14,2) NOT NULL DEFAULT 0 CHECK (deposit >= 0),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- The service order's recurring services (B6): unit MRC × quantity (NULL on a trunk
-- service: the provisioned trunk count), pro-rated by day from starts_on to ends_on.
CREATE TABLE billing_services (
    customer_id  text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    id           text NOT NULL,
    description  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('trunk', 'did', 'circuit', 'other')),
    unit_mrc     numeric(12,5) NOT NULL CHECK (unit_mrc >= 0),
    quantity     integer CHECK (quantity >= 0),
    starts_on    date,
    ends_on      date CHECK (ends_on > starts_on),
    circuit_id   text,
    sla          boolean NOT NULL DEFAULT false,  -- B8: Enterprise circuit, 99.9%
    PRIMARY KEY (customer_id, id)
);

-- Non-recurring events (B5, B7): ports, LNP cancellations (with the FOC), disconnects,
-- reinstatements (with the port they undo), terminations.
CREATE TABLE billing_events (
    id           bigserial PRIMARY KEY,
    customer_id  text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('port_in', 'port_out', 'disconnect', 'lnp_cancel',
                                               'reinstate', 'terminate')),
    at           timestamptz NOT NULL,
    tns          text[] NOT NULL DEFAULT '{}',
    foc_at       timestamptz CHECK (kind <> 'lnp_cancel' OR foc_at IS NOT NULL),
    ported_at    timestamptz CHECK (kind <> 'reinstate' OR ported_at IS NOT NULL),
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_events_customer_at ON billing_events (customer_id, at);

-- Recorded outages of circuits (B8), credited the month after on request.
CREATE TABLE billing_outages (
    id                bigserial PRIMARY KEY,
    customer_id       text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    circuit_id        text NOT NULL,
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz NOT NULL CHECK (ended_at > started_at),
    credit_requested  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_outages_customer ON billing_outages (customer_id, started_at);

-- Invoices and credit notes. Issued once; the triggers below refuse any change after.
CREATE TABLE invoices (
    id            bigserial PRIMARY KEY,
    number        text NOT NULL UNIQUE,
    customer_id   text NOT NULL REFERENCES customers(id),
    period_start  date NOT NULL CHECK (extract(day FROM period_start) = 1),
    kind          text NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'credit_note')),
    corrects      bigint REFERENCES invoices(id),
    reason        text,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    due_on        date NOT NULL,
    currency      text NOT NULL DEFAULT 'USD',
    total         numeric(14,2) NOT NULL,
    summary       jsonb NOT NULL DEFAULT '{}',  -- usage by jurisdiction, terms used
    CHECK ((kind = 'credit_note') = (corrects IS NOT NULL))
);
CREATE UNIQUE INDEX invoices_one_per_month ON invoices (customer_id, period_start)
    WHERE kind = 'invoice';

CREATE TABLE invoice_lines (
    invoice_id    bigint NOT NULL REFERENCES invoices(id),
    line_no       integer NOT NULL,
    kind          text NOT NULL,
    description   text NOT NULL,
    rule          text,
    quantity      numeric(18,5),
    unit_price    numeric(14,5),
    jurisdiction  text,
    exact         numeric(14,5) NOT NULL,
    amount        numeric(14,2) NOT NULL,
    ref           text,
    PRIMARY KEY (invoice_id, line_no)
);

CREATE FUNCTION invoices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'invoices are immutable once issued (% on %): issue a credit note instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_immutable();
CREATE TRIGGER invoice_lines_immutable BEFORE UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoices_immutable();

-- Disputes (B9): opened within 30 days of the invoice, answered within 30 days, resolved
-- for (credited on the next invoice) or against the customer.
CREATE TABLE disputes (
    id                  bigserial PRIMARY KEY,
    invoice_id          bigint NOT NULL REFERENCES invoices(id),
    customer_id         text NOT NULL REFERENCES customers(id),
    amount              numeric(14,2) NOT NULL CHECK (amount > 0),
    reason              text NOT NULL,
    opened_at           timestamptz NOT NULL DEFAULT now(),
    answer_due          timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    resolved_at         timestamptz,
    resolution          text,
    credited_invoice_id bigint REFERENCES invoices(id)
);
CREATE INDEX disputes_customer ON disputes (customer_id, status);

CREATE TABLE payments (
    id                  bigserial PRIMARY KEY,
    customer_id         text NOT NULL REFERENCES customers(id),
    received_at         timestamptz NOT NULL,
    amount              numeric(14,2) NOT NULL CHECK (amount > 0),
    reference           text NOT NULL DEFAULT '',
    applied_invoice_id  bigint REFERENCES invoices(id)
);
CREATE INDEX payments_customer ON payments (customer_id, received_at);

-- Lines other programmes put on an invoice (referral credits and discounts, F1–F6): the
-- referral programme fills this; the invoice of the period takes the rows not yet taken.
CREATE TABLE billing_adjustments (
    id            bigserial PRIMARY KEY,
    customer_id   text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    period_start  date NOT NULL CHECK (extract(day FROM period_start) = 1),
    kind          text NOT NULL,
    description   text NOT NULL,
    amount        numeric(14,5) NOT NULL,
    rule          text NOT NULL,
    source        text NOT NULL DEFAULT '',
    invoice_id    bigint REFERENCES invoices(id),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_adjustments_open ON billing_adjustments (customer_id, period_start)
    WHERE invoice_id IS NULL;

-- B10 feeds A6: the rater reads a customer's approved credit level from here when billing
-- has set one (the credit limit plus the deposit held), else from customers.credit_limit.
CREATE VIEW customer_credit AS
SELECT c.id AS customer_id,
       CASE WHEN b.credit_limit IS NOT NULL THEN b.credit_limit + b.deposit
            ELSE c.credit_limit END AS credit_limit
FROM customers c LEFT JOIN billing_accounts b ON b.customer_id = c.id;
