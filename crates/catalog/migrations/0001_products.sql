CREATE SCHEMA IF NOT EXISTS catalog;

CREATE TABLE catalog.products (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         text        NOT NULL CONSTRAINT products_sku_key UNIQUE,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    category    text        NOT NULL,
    price_cents bigint      NOT NULL CONSTRAINT products_price_nonnegative CHECK (price_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Keyset pages: by id within a category, and by id within a price range.
CREATE INDEX products_category_id ON catalog.products (category, id);
CREATE INDEX products_price_id ON catalog.products (price_cents, id);

-- Stock lives apart from the product row: orders update it constantly, reads of the product
-- row should not pay for those dead tuples.
CREATE TABLE catalog.stock (
    product_id bigint  PRIMARY KEY REFERENCES catalog.products (id) ON DELETE CASCADE,
    on_hand    integer NOT NULL CONSTRAINT stock_on_hand_nonnegative CHECK (on_hand >= 0)
);
