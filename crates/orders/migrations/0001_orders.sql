CREATE SCHEMA IF NOT EXISTS orders;

-- user_id and product_id name rows of other modules: no foreign keys across schemas, so each
-- module can move to its own database later.
CREATE TABLE orders.orders (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint      NOT NULL,
    status      text        NOT NULL DEFAULT 'placed',
    total_cents bigint      NOT NULL CONSTRAINT orders_total_nonnegative CHECK (total_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- "My orders", newest first, in keyset pages.
CREATE INDEX orders_user_id_id ON orders.orders (user_id, id DESC);

CREATE TABLE orders.order_lines (
    order_id         bigint   NOT NULL REFERENCES orders.orders (id) ON DELETE CASCADE,
    line_no          smallint NOT NULL,
    product_id       bigint   NOT NULL,
    product_name     text     NOT NULL,  -- as it was when ordered
    quantity         integer  NOT NULL CONSTRAINT order_lines_quantity_positive CHECK (quantity > 0),
    unit_price_cents bigint   NOT NULL CONSTRAINT order_lines_price_nonnegative CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line_no)
);
