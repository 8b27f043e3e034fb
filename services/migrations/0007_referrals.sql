-- Referral programmes (issue 8, SPEC F1–F6): refer-a-friend, affiliates, invite codes,
-- the outbox of invitations. Every table hangs off customers(id) (0001_core) and is
-- removed with its customer. Money is numeric with 5 decimal places (DESIGN.md: Money).
-- Days are calendar days (UTC); "to"/"ends_on" columns are the first day no longer covered.

-- What the programmes need to know about a customer that the core store does not hold:
-- when it was activated, where and through which channel (F3), its promo period (F5), and
-- hashed identities for the self-referral guard (a card or an address, never stored raw).
CREATE TABLE referral_customers (
    customer_id       text PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    activated_on      date NOT NULL,
    country           text NOT NULL DEFAULT 'US' CHECK (country ~ '^[A-Z]{2}$'),
    channel           text NOT NULL DEFAULT 'website' CHECK (channel IN ('website', 'retail', 'partner')),
    payment_identity  text,
    address_key       text,
    promo_ends_on     date,
    cancelled_on      date,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_customers_payment ON referral_customers (payment_identity);
CREATE INDEX referral_customers_address ON referral_customers (address_key);

-- Refer-a-friend (F1–F3): one row per e-mailed e-coupon. Only the token's hash is kept.
CREATE TABLE raf_referrals (
    id             bigserial PRIMARY KEY,
    referrer_id    text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    friend_email   text NOT NULL,
    token_hash     text NOT NULL UNIQUE,
    invited_on     date NOT NULL,
    friend_id      text UNIQUE REFERENCES customers(id) ON DELETE CASCADE,
    signed_up_on   date,
    plan_fee       numeric(12,5) CHECK (plan_fee >= 0),
    credit         numeric(12,5) CHECK (credit >= 0),
    status         text NOT NULL DEFAULT 'invited'
                   CHECK (status IN ('invited', 'signed_up', 'credited', 'forfeited')),
    settled_on     date,
    forfeit_reason text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX raf_referrals_once ON raf_referrals (referrer_id, lower(friend_email));
CREATE INDEX raf_referrals_pending ON raf_referrals (status, signed_up_on);

-- How much of a customer's posted credits each invoice period used (credits have no cash
-- value, F2: what an invoice cannot absorb carries to the next one).
CREATE TABLE raf_credit_applications (
    customer_id   text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    period_start  date NOT NULL,
    amount        numeric(12,5) NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (customer_id, period_start)
);

-- Affiliates (F4): signed tracked links, the clicks they bring, the commission ledger.
CREATE TABLE affiliates (
    id               text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    name             text NOT NULL,
    commission_rate  numeric(6,5) NOT NULL CHECK (commission_rate >= 0 AND commission_rate <= 1),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE affiliate_clicks (
    id            bigserial PRIMARY KEY,
    affiliate_id  text NOT NULL REFERENCES affiliates(id) ON DELETE CASCADE,
    visitor_id    text NOT NULL,
    clicked_at    timestamptz NOT NULL
);
CREATE INDEX affiliate_clicks_visitor ON affiliate_clicks (visitor_id, clicked_at DESC);
CREATE TABLE affiliate_commissions (
    id               bigserial PRIMARY KEY,
    affiliate_id     text NOT NULL REFERENCES affiliates(id) ON DELETE CASCADE,
    click_id         bigint NOT NULL REFERENCES affiliate_clicks(id) ON DELETE CASCADE,
    order_ref        text NOT NULL UNIQUE,
    customer_id      text REFERENCES customers(id) ON DELETE SET NULL,
    purchase_amount  numeric(14,5) NOT NULL CHECK (purchase_amount >= 0),
    commission       numeric(14,5) NOT NULL CHECK (commission >= 0),
    purchased_at     timestamptz NOT NULL
);
CREATE INDEX affiliate_commissions_affiliate ON affiliate_commissions (affiliate_id, purchased_at);

-- Invite codes (F5, F6): one code per customer; a client registers at most one code.
CREATE TABLE invite_codes (
    customer_id  text PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    code         text NOT NULL UNIQUE,
    -- Codes are looked up by their hash, so a lookup's timing says nothing about how much
    -- of a guess was right (brute-force guard).
    code_hash    text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE invite_registrations (
    client_id       text PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    owner_id        text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    registered_on   date NOT NULL,
    discount_from   date NOT NULL,
    discount_to     date NOT NULL CHECK (discount_to > discount_from),
    percent         integer NOT NULL CHECK (percent BETWEEN 0 AND 100),
    CHECK (client_id <> owner_id)
);
CREATE INDEX invite_registrations_owner ON invite_registrations (owner_id, registered_on);
-- The owner's discount history (F6): each grant supersedes the earlier ones from its start.
CREATE TABLE invite_owner_discounts (
    id          bigserial PRIMARY KEY,
    owner_id    text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    client_id   text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    level       integer NOT NULL CHECK (level >= 1),
    percent     integer NOT NULL CHECK (percent BETWEEN 0 AND 100),
    starts_on   date NOT NULL,
    ends_on     date NOT NULL CHECK (ends_on > starts_on),
    sms_package integer CHECK (sms_package > 0),
    UNIQUE (owner_id, client_id)
);

-- Invitations waiting to go out by e-mail (SMTP) or SMS (a provider), sent by the
-- dispatcher; a failed send stays here with its error and is retried.
CREATE TABLE referral_outbox (
    id           bigserial PRIMARY KEY,
    sender_id    text REFERENCES customers(id) ON DELETE CASCADE,
    channel      text NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient    text NOT NULL,
    subject      text,
    body         text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    created_on   date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX referral_outbox_pending ON referral_outbox (status, id) WHERE status <> 'sent';
CREATE INDEX referral_outbox_sender_day ON referral_outbox (sender_id, created_on);
