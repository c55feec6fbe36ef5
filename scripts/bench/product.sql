-- pgbench: the exact statement behind GET /products/{id}.
\set id random(1, 100000)
SELECT p.id, p.sku, p.name, p.description, p.category, p.price_cents, s.on_hand, p.created_at, p.updated_at FROM catalog.products p JOIN catalog.stock s ON s.product_id = p.id WHERE p.id = :id;
