-- Trunks authenticated by SIP digest (RFC 8760) instead of, or besides, source IP (rule A8).
-- Only HA1 values are stored, one per algorithm, never the password.
ALTER TABLE trunk_groups
    ADD COLUMN digest_username text UNIQUE,
    ADD COLUMN digest_realm    text,
    ADD COLUMN digest_ha1      jsonb;
ALTER TABLE trunk_groups
    ADD CONSTRAINT trunk_groups_identified
    CHECK (cardinality(source_ips) > 0 OR digest_username IS NOT NULL);
