-- Provisioning API and live configuration (issue 11): why a customer is suspended, dated
-- ownership of telephone numbers (A3, R4), and the audit trail of every provisioning change.

-- "Suspended with a reason": billing, an unnotified service move (A9) …
ALTER TABLE customers ADD COLUMN status_reason text;

-- A TN is owned from owned_from (a port-in's FOC; NULL = since it was assigned) until
-- owned_until (a port-out, disconnect or reinstatement to the old carrier; NULL = still).
-- The primary key on tn keeps one customer per TN at a time (A3); the dated events that
-- bill (B5) are billing_events (0006), written in the same transaction.
ALTER TABLE numbers
    ADD COLUMN state       text NOT NULL DEFAULT 'active'
                           CHECK (state IN ('active', 'ported_out', 'disconnected', 'reinstated')),
    ADD COLUMN owned_from  timestamptz,
    ADD COLUMN owned_until timestamptz,
    ADD CONSTRAINT numbers_owned_span CHECK (owned_until IS NULL OR owned_from IS NULL
                                             OR owned_until >= owned_from),
    ADD CONSTRAINT numbers_released CHECK ((state = 'active') = (owned_until IS NULL));

-- Every change of the provisioning store, whoever made it: `actor` is what the writer set
-- with set_config('sipcc.actor', …, true) in its transaction (an API key's name,
-- 'yaml:<file>', 'cli:<user>'), else 'sql:<role>' for a change made by hand. Written by
-- triggers, so no path that writes a provisioning table can forget it.
CREATE TABLE provisioning_audit (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor     text NOT NULL,
    resource  text NOT NULL,
    key       text NOT NULL,
    action    text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    before    jsonb,
    after     jsonb
);
CREATE INDEX provisioning_audit_key ON provisioning_audit (resource, key, id);
CREATE INDEX provisioning_audit_at ON provisioning_audit (at);

-- TG_ARGV: the key columns. Secrets (digest HA1) and bookkeeping (updated_at) stay out.
CREATE FUNCTION provisioning_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_j jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) - 'digest_ha1' - 'updated_at' END;
    new_j jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) - 'digest_ha1' - 'updated_at' END;
    who   text := nullif(current_setting('sipcc.actor', true), '');
    k     text;
BEGIN
    IF TG_OP = 'UPDATE' AND old_j = new_j AND (to_jsonb(OLD) -> 'digest_ha1') IS NOT DISTINCT FROM
                                              (to_jsonb(NEW) -> 'digest_ha1') THEN
        RETURN NULL;
    END IF;
    SELECT string_agg(coalesce(new_j, old_j) ->> col, '/') INTO k FROM unnest(TG_ARGV) AS col;
    INSERT INTO provisioning_audit (actor, resource, key, action, before, after)
    VALUES (coalesce(who, 'sql:' || session_user), TG_TABLE_NAME, k, lower(TG_OP), old_j, new_j);
    RETURN NULL;
END $$;

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON carriers
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON rate_plans
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON rate_plan_versions
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('plan_id', 'effective_from');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON trunk_groups
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON numbers
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('tn');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON registered_addresses
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('tn');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON blocked_sources
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('network');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON billing_accounts
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('customer_id');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON billing_events
    FOR EACH ROW EXECUTE FUNCTION provisioning_audit_row('id');
