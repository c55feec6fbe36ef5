-- The order saga's state lives on the order: its status, why it was cancelled, who is
-- running it (a lease, so a redelivered message and a live runner never work at once), and
-- the payment provider's charge.
ALTER TABLE orders.orders
    ADD COLUMN cancel_reason       text,
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN saga_lease_until    timestamptz,
    ADD COLUMN charge_id           text,
    ADD COLUMN updated_at          timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT orders_status_known CHECK (status IN (
        'placed', 'stock_reserved', 'payment_captured', 'shipment_created', 'confirmed', 'cancelled'));

-- Every step an order took, for `GET /orders/{id}`.
CREATE TABLE orders.order_history (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id bigint      NOT NULL REFERENCES orders.orders (id) ON DELETE CASCADE,
    status   text        NOT NULL,
    note     text,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_history_order_id ON orders.order_history (order_id, id);

-- One shipment per order; cancelling a shipment is not a step (once shipped, an order is
-- past the point of compensation).
CREATE TABLE orders.shipments (
    order_id        bigint      PRIMARY KEY REFERENCES orders.orders (id) ON DELETE CASCADE,
    carrier         text        NOT NULL,
    tracking_number text        NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Orders still in flight, oldest first: what a sweep for stuck sagas reads.
CREATE INDEX orders_in_flight ON orders.orders (updated_at)
    WHERE status NOT IN ('confirmed', 'cancelled');
