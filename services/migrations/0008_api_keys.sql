-- HTTP API keys (issue 10, docs/SECURITY.md). The key itself is shown once, when created;
-- only its scrypt hash is kept. `key_id` is the public part of the key (sipcc_<key_id>_…)
-- that finds the row without hashing every key on file.
CREATE TABLE api_keys (
    key_id           text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    secret_hash      bytea NOT NULL,
    salt             bytea NOT NULL,
    scopes           text[] NOT NULL,
    rate_per_second  double precision NOT NULL CHECK (rate_per_second > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
CREATE INDEX api_keys_name ON api_keys (name);
