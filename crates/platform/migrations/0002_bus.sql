-- The event bus's tables: the outbox a relay drains into JetStream, the permanent event log
-- (partitioned by month) read models are rebuilt from, and what each consumer has processed.
CREATE SCHEMA IF NOT EXISTS bus;

-- Written in the same transaction as the change an event describes; a row is deleted once
-- JetStream has acknowledged it, so the table stays small and its scans short.
CREATE TABLE bus.outbox (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     text        NOT NULL,
    payload     jsonb       NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);

-- Wakes the relays at commit (NOTIFY is transactional and coalesced per transaction).
CREATE FUNCTION bus.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bus_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON bus.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION bus.notify_outbox();

-- Every event ever published, one partition per month (`keel maintenance` creates the next
-- ones and drops those past retention; startup makes sure the current month exists).
CREATE TABLE bus.event_log (
    id          bigint      NOT NULL,
    subject     text        NOT NULL,
    payload     jsonb       NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);

-- Rebuilds replay in publication order.
CREATE INDEX event_log_id ON bus.event_log (id);

-- A consumer's record of what it has done, written in the transaction of the effect itself:
-- a redelivered message finds its row and changes nothing.
CREATE TABLE bus.processed_messages (
    consumer     text        NOT NULL,
    message_id   bigint      NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX processed_messages_processed_at ON bus.processed_messages (processed_at);
