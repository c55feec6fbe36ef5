-- pgbench: every statement POST /orders with an Idempotency-Key runs (async mode), one line:
-- the key's claim (committed without its own WAL flush), then the order's transaction: lock
-- and take the stock, the order with its two history rows and its line, the OrderPlaced
-- event into the outbox and the event log, and the key's stored response.
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
WITH o AS (INSERT INTO orders.orders (user_id, total_cents, status, saga_lease_until) VALUES (:uid, 100, 'stock_reserved', now() + NULL::float8 * interval '1 second') RETURNING id, status, created_at), h AS (INSERT INTO orders.order_history (order_id, status, at) SELECT o.id, s.status, o.created_at FROM o, (VALUES ('placed'), ('stock_reserved')) AS s (status)), l AS (INSERT INTO orders.order_lines (order_id, line_no, product_id, product_name, quantity, unit_price_cents) SELECT o.id, l.* FROM o, unnest(ARRAY[1]::smallint[], ARRAY[:pid]::bigint[], ARRAY['bench']::text[], ARRAY[1]::integer[], ARRAY[100]::bigint[]) AS l (line_no, product_id, product_name, quantity, unit_price_cents)) SELECT id, status, created_at FROM o;
WITH e AS (INSERT INTO bus.outbox (subject, payload) VALUES ('orders.placed', ('{"order_id":' || currval('orders.orders_id_seq') || ',"user_id":' || :uid || ',"total_cents":100,"lines":[{"product_id":' || :pid || ',"quantity":1,"unit_price_cents":100}]}')::jsonb) RETURNING id, subject, payload, occurred_at) INSERT INTO bus.event_log (id, subject, payload, occurred_at) SELECT id, subject, payload, occurred_at FROM e RETURNING id;
UPDATE platform.idempotency_keys SET response_status = 202, response_body = '\x7b7d'::bytea, response_location = '/orders/1' WHERE scope = 'pgbench:' || :uid AND key = :key::text;
COMMIT;
