-- Any committed change to what a node's inventory snapshot is built from tells the nodes,
-- however it was made: the provisioning API and YAML, billing, number events, a refdata
-- import, the E911 API, or an operator's hand-written SQL. Each of those code paths also
-- sends NOTIFY itself; the triggers make it impossible to forget one, so the nodes no
-- longer need to reload the whole snapshot every minute "in case" (at 100,000 numbers a
-- reload holds a node's event loop for ~0.2 s: bench/inventory_reload.py).
--
-- Postgres delivers a notification at commit, to every session listening, once per
-- transaction however many statements sent it; a rolled-back change sends none. Statement
-- triggers see the rows a statement changed (transition tables), so a statement that
-- changed nothing sends nothing.
CREATE FUNCTION inventory_notify_if_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_notify('sipcc_inventory', '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION inventory_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sipcc_inventory', '');
    RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
    -- The tables services/inventory.py, e911_router/coverage.py and services/refdata.py
    -- read (billing_accounts under the customer_credit view). Reference data is covered
    -- through its generation counter, which 0003_rating.sql's triggers bump on any change.
    FOREACH t IN ARRAY ARRAY['carriers', 'rate_plans', 'rate_plan_versions', 'customers',
                             'billing_accounts', 'trunk_groups', 'numbers', 'blocked_sources',
                             'psaps', 'psap_areas', 'registered_addresses', 'e911_settings',
                             'refdata_generation'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION inventory_notify_if_changed()',
                       t || '_notify_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION inventory_notify_if_changed()',
                       t || '_notify_update', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION inventory_notify_if_changed()',
                       t || '_notify_delete', t);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION inventory_notify()',
                       t || '_notify_truncate', t);
    END LOOP;
END $$;
