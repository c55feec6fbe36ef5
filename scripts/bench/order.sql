-- pgbench: the statements behind POST /orders with an Idempotency-Key, one line: the claim
-- (committed without its own WAL flush), then the order transaction.
\set pid random(1, 100000)
\set uid random(1, 10000)
\set key random(1, 1000000000000)
BEGIN;
SET LOCAL synchronous_commit = off;
INSERT INTO platform.idempotency_keys AS k (scope, key, request_hash, expires_at) VALUES ('pgbench:' || :uid, :key::text, '\x00'::bytea, now() + interval '24 hours') ON CONFLICT (scope, key) DO NOTHING RETURNING 1;
COMMIT;
BEGIN;
SELECT s.product_id, p.name, p.price_cents, s.on_hand FROM catalog.stock s JOIN catalog.products p ON p.id = s.product_id WHERE s.product_id = ANY(ARRAY[:pid]::bigint[]) ORDER BY s.product_id FOR UPDATE OF s;
UPDATE catalog.stock s SET on_hand = s.on_hand - r.quantity FROM unnest(ARRAY[:pid]::bigint[], ARRAY[1]::integer[]) AS r (product_id, quantity) WHERE s.product_id = r.product_id AND s.on_hand >= r.quantity;
WITH o AS (INSERT INTO orders.orders (user_id, total_cents) VALUES (:uid, 100) RETURNING id, status, created_at), l AS (INSERT INTO orders.order_lines (order_id, line_no, product_id, product_name, quantity, unit_price_cents) SELECT o.id, l.* FROM o, unnest(ARRAY[1]::smallint[], ARRAY[:pid]::bigint[], ARRAY['bench']::text[], ARRAY[1]::integer[], ARRAY[100]::bigint[]) AS l (line_no, product_id, product_name, quantity, unit_price_cents)) SELECT id, status, created_at FROM o;
UPDATE platform.idempotency_keys SET response_status = 201, response_body = '\x7b7d'::bytea WHERE scope = 'pgbench:' || :uid AND key = :key::text;
COMMIT;
