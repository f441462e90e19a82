-- Appointments (per branch, per service, 30-minute slots with a capacity), queue tickets
-- (per branch, day and service line) and handoffs to staff. Identifiers are stored as
-- SHA-256 hashes plus masked forms only.
CREATE TABLE appointments (
    code TEXT PRIMARY KEY,
    branch_id TEXT NOT NULL,
    service TEXT NOT NULL,
    day TEXT NOT NULL,
    slot TEXT NOT NULL,
    phone_hash TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    session_id TEXT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    cancelled_at BIGINT
);
CREATE INDEX appointments_slot ON appointments (branch_id, day, slot, status);
CREATE INDEX appointments_phone ON appointments (phone_hash, status);

CREATE TABLE queue_tickets (
    id TEXT PRIMARY KEY,
    branch_id TEXT NOT NULL,
    day TEXT NOT NULL,
    line TEXT NOT NULL,
    number INTEGER NOT NULL,
    service TEXT NOT NULL,
    session_id TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (branch_id, day, line, number)
);

CREATE TABLE handoffs (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    kiosk_id TEXT NOT NULL,
    branch_id TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    intent TEXT,
    case_json TEXT NOT NULL,
    risk TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
