-- Idempotency keys for unsafe POSTs (Stripe / draft-ietf-httpapi-idempotency-key-header).
CREATE SCHEMA IF NOT EXISTS platform;

CREATE TABLE platform.idempotency_keys (
    scope           text        NOT NULL,  -- who owns the key, e.g. 'user:42'
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL,  -- sha-256 of the canonical request
    locked_at       timestamptz NOT NULL DEFAULT now(),
    response_status smallint,              -- NULL while the first request is in flight
    response_body   bytea,
    response_location text,                -- the Location header, if the response had one
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The purge deletes by expiry.
CREATE INDEX idempotency_keys_expires_at ON platform.idempotency_keys (expires_at);
