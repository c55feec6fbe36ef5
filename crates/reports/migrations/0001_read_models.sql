-- The read models live in generations: schema reports_g<N> holds one complete set of tables.
-- The API reads the views in `reports`, which point at the active generation. A rebuild
-- fills the next generation from the event log beside the active one, then re-points the
-- views in one transaction and drops the old schema.
CREATE SCHEMA IF NOT EXISTS reports;

CREATE TABLE reports.generations (
    generation  int         PRIMARY KEY,
    state       text        NOT NULL CONSTRAINT generations_state_known
                            CHECK (state IN ('building', 'active', 'retired')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    switched_at timestamptz
);
CREATE UNIQUE INDEX generations_one_active ON reports.generations ((true)) WHERE state = 'active';
CREATE UNIQUE INDEX generations_one_building ON reports.generations ((true)) WHERE state = 'building';

-- The tables of generation n, empty.
CREATE FUNCTION reports.create_generation(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE s text := format('reports_g%s', n);
BEGIN
    EXECUTE format('CREATE SCHEMA %I', s);
    -- One row per order, with everything "my orders" shows: no join into other modules.
    EXECUTE format($t$
        CREATE TABLE %I.order_summaries (
            order_id      bigint      PRIMARY KEY,
            customer_id   bigint      NOT NULL,
            customer_name text        NOT NULL,
            status        text        NOT NULL,
            status_rank   smallint    NOT NULL,
            total_cents   bigint      NOT NULL,
            line_count    int         NOT NULL,
            item_count    int         NOT NULL,
            lines         jsonb       NOT NULL,
            placed_at     timestamptz NOT NULL,
            updated_at    timestamptz NOT NULL,
            projected_at  timestamptz NOT NULL DEFAULT clock_timestamp()
        )$t$, s);
    -- A customer's history, newest first, in keyset pages.
    EXECUTE format('CREATE INDEX order_summaries_customer ON %I.order_summaries (customer_id, order_id DESC)', s);
    EXECUTE format($t$
        CREATE TABLE %I.customer_stats (
            customer_id      bigint      PRIMARY KEY,
            customer_name    text        NOT NULL,
            orders_placed    int         NOT NULL DEFAULT 0,
            orders_confirmed int         NOT NULL DEFAULT 0,
            orders_cancelled int         NOT NULL DEFAULT 0,
            spent_cents      bigint      NOT NULL DEFAULT 0,
            last_order_at    timestamptz
        )$t$, s);
    -- Confirmed sales by the day the order was placed (UTC) and product; the report pages
    -- through days and products in key order.
    EXECUTE format($t$
        CREATE TABLE %I.product_sales_daily (
            day           date   NOT NULL,
            product_id    bigint NOT NULL,
            product_name  text   NOT NULL,
            units         bigint NOT NULL,
            revenue_cents bigint NOT NULL,
            orders        int    NOT NULL,
            PRIMARY KEY (day, product_id)
        )$t$, s);
    EXECUTE format('CREATE INDEX product_sales_daily_product ON %I.product_sales_daily (product_id, day)', s);
    -- Events this generation has applied: a redelivery, or the rebuild meeting an event the
    -- live projector already applied, changes nothing.
    EXECUTE format('CREATE TABLE %I.applied_events (event_id bigint PRIMARY KEY)', s);
    INSERT INTO reports.generations (generation, state) VALUES (n, 'building');
END
$$;

-- Makes generation n the one the API reads and the live projector writes. The caller holds
-- the active row locked, so no projection runs against the old generation meanwhile.
CREATE FUNCTION reports.switch_to(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE s text := format('reports_g%s', n);
BEGIN
    UPDATE reports.generations SET state = 'retired', switched_at = now() WHERE state = 'active';
    UPDATE reports.generations SET state = 'active', switched_at = now() WHERE generation = n;
    EXECUTE format('CREATE OR REPLACE VIEW reports.order_summaries AS SELECT * FROM %I.order_summaries', s);
    EXECUTE format('CREATE OR REPLACE VIEW reports.customer_stats AS SELECT * FROM %I.customer_stats', s);
    EXECUTE format('CREATE OR REPLACE VIEW reports.product_sales_daily AS SELECT * FROM %I.product_sales_daily', s);
END
$$;

SELECT reports.create_generation(1);
SELECT reports.switch_to(1);
