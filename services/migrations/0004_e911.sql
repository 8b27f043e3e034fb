-- E911 (issue 5): PSAPs and the areas they serve, the national call center, normalised
-- registered addresses with their history and pending moves, on-site notification
-- webhooks and their delivery outbox, and the route a 911 call took on its CDR.

-- Public safety answering points (FCC PSAP registry shaped), rules E1 and E3: the level a
-- caller gets is read from its PSAP's capability at call time, so a PSAP that becomes
-- E911-capable upgrades its callers without anyone touching them.
CREATE TABLE psaps (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    state       text CHECK (state ~ '^[A-Z]{2}$'),
    county      text,
    city        text,
    capability  text NOT NULL CHECK (capability IN ('e911', 'basic')),
    route_uri   text CHECK (route_uri ~ '^sips?:'),  -- NULL: no route yet → national (E4)
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The area a PSAP serves: a 5-digit ZIP or a 5-digit county FIPS code; a ZIP wins over
-- its county.
CREATE TABLE psap_areas (
    kind     text NOT NULL CHECK (kind IN ('zip', 'county')),
    code     text NOT NULL CHECK (code ~ '^[0-9]{5}$'),
    psap_id  text NOT NULL REFERENCES psaps(id) ON DELETE CASCADE,
    PRIMARY KEY (kind, code)
);
CREATE INDEX psap_areas_psap ON psap_areas (psap_id);

-- Where 911 goes when no PSAP can take it (E1, E4, E5, E7): one row.
CREATE TABLE e911_settings (
    one                       boolean PRIMARY KEY DEFAULT true CHECK (one),
    national_call_center_uri  text NOT NULL CHECK (national_call_center_uri ~ '^sips?:'),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- The normalised address (e911_router.address.Address as JSON), its county, and E5: a
-- move not yet confirmed sends 911 to the national call center.
ALTER TABLE registered_addresses
    ADD COLUMN parts         jsonb,
    ADD COLUMN county_fips   text CHECK (county_fips ~ '^[0-9]{5}$'),
    ADD COLUMN move_pending  boolean NOT NULL DEFAULT false,
    ADD COLUMN confirmed_at  timestamptz;

-- Every version of every registered address, however it changed (E6: history kept).
CREATE TABLE registered_address_history (
    id            bigserial PRIMARY KEY,
    tn            text NOT NULL,
    street        text NOT NULL,
    unit          text,
    city          text NOT NULL,
    state         text NOT NULL,
    zip           text NOT NULL,
    county_fips   text,
    move_pending  boolean NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registered_address_history_tn ON registered_address_history (tn, recorded_at);

CREATE FUNCTION registered_address_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO registered_address_history (tn, street, unit, city, state, zip, county_fips,
                                            move_pending)
    VALUES (NEW.tn, NEW.street, NEW.unit, NEW.city, NEW.state, NEW.zip, NEW.county_fips,
            NEW.move_pending);
    RETURN NULL;
END $$;
CREATE TRIGGER registered_address_keep AFTER INSERT OR UPDATE ON registered_addresses
    FOR EACH ROW EXECUTE FUNCTION registered_address_keep();

-- On-site notification (Kari's Law, RAY BAUM'S Act): a customer's webhook, fired on every
-- 911 call and retried until delivered, from this outbox.
ALTER TABLE customers ADD COLUMN e911_webhook_url text CHECK (e911_webhook_url ~ '^https?://');

CREATE TABLE e911_notifications (
    call_id          text PRIMARY KEY,
    customer_id      text NOT NULL,
    url              text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    last_error       text
);
CREATE INDEX e911_notifications_due ON e911_notifications (next_attempt_at)
    WHERE delivered_at IS NULL;

-- The route a 911 call took, e.g. 'psap:pinellas>national' after a failover.
ALTER TABLE cdrs ADD COLUMN emergency_route text;
