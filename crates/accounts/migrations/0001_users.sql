CREATE SCHEMA IF NOT EXISTS accounts;

CREATE TABLE accounts.users (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text        NOT NULL CONSTRAINT users_email_key UNIQUE,  -- stored lower-cased
    name          text        NOT NULL,
    password_hash text        NOT NULL,  -- argon2id PHC string
    role          text        NOT NULL DEFAULT 'customer'
                              CONSTRAINT users_role_check CHECK (role IN ('customer', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
