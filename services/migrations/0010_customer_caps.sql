-- Toll-fraud caps per customer (issue 10): across all of the customer's trunk groups, at
-- most this many calls up at once and this many new calls per second. NULL = no cap (the
-- trunk groups' channels, rule A1, still hold). 911 is never capped (E7).
ALTER TABLE customers
    ADD COLUMN max_concurrent_calls integer CHECK (max_concurrent_calls >= 1),
    ADD COLUMN max_calls_per_second integer CHECK (max_calls_per_second >= 1);
