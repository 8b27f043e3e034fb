-- CDR pipeline (issue 6): period queries and the API's stable order.
-- (customer_id, started_at) and (trunk_id, started_at) exist since 0001; this index
-- serves a period without a customer (exports, per-disposition reports) and the
-- keyset pagination of GET /v1/cdrs, ordered by (started_at, call_id, leg).
CREATE INDEX IF NOT EXISTS cdrs_started ON cdrs (started_at, call_id, leg);
