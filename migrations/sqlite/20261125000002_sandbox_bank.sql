-- The embedded sandbox bank behind the core-banking port (tests, demos, training).
-- Identifiers are never stored in clear: ID numbers, phones and card numbers are kept as
-- SHA-256 hashes for lookup plus a masked form for display. Money is in cents.
CREATE TABLE bank_customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    id_number_hash TEXT NOT NULL UNIQUE,
    id_number_masked TEXT NOT NULL,
    phone_hash TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE bank_cards (
    card_hash TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES bank_customers (id),
    last4 TEXT NOT NULL,
    masked TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    pin_hash TEXT NOT NULL,
    balance_cents BIGINT NOT NULL,
    daily_transfer_limit_cents BIGINT NOT NULL,
    frozen_reason TEXT,
    frozen_at BIGINT
);

CREATE INDEX bank_cards_customer ON bank_cards (customer_id);
