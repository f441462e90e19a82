-- Work-order tickets: the ticket, its events (history, hash-chained for audit), per-branch
-- daily numbers, and the outbox every event is written to in the same transaction.
CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority TEXT NOT NULL,
    state TEXT NOT NULL,
    branch_id TEXT NOT NULL,
    kiosk_id TEXT,
    session_id TEXT,
    customer_ref TEXT,
    case_json TEXT NOT NULL,
    assignee TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    first_response_due BIGINT,
    resolution_due BIGINT,
    first_response_at BIGINT,
    resolved_at BIGINT,
    closed_at BIGINT,
    warned_response_at BIGINT,
    escalated_response_at BIGINT,
    warned_resolution_at BIGINT,
    escalated_resolution_at BIGINT,
    events INTEGER NOT NULL
);
CREATE INDEX tickets_queue ON tickets (queue, state);
CREATE INDEX tickets_assignee ON tickets (assignee, state);
CREATE INDEX tickets_session ON tickets (session_id);

CREATE TABLE ticket_events (
    ticket_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    comment TEXT NOT NULL,
    data_json TEXT NOT NULL,
    chain_seq BIGINT NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);

CREATE TABLE ticket_numbers (
    branch_id TEXT NOT NULL,
    day TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (branch_id, day)
);

-- The head of the audit chain over every ticket event (one row).
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    count BIGINT NOT NULL
);
INSERT INTO audit_head (id, hash, count) VALUES (1, '0000000000000000000000000000000000000000000000000000000000000000', 0);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    UNIQUE (event_id, target)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
