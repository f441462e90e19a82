-- Foundation: kiosks and their device tokens, staff and their bearer tokens,
-- conversation sessions and their (masked) transcripts.
-- Times are Unix milliseconds (UTC); booleans are 0/1 integers.

CREATE TABLE kiosks (
    id          TEXT PRIMARY KEY,
    branch_id   TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

CREATE TABLE kiosk_tokens (
    id          TEXT PRIMARY KEY,
    kiosk_id    TEXT NOT NULL REFERENCES kiosks(id),
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX kiosk_tokens_kiosk ON kiosk_tokens(kiosk_id);

CREATE TABLE staff_users (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    roles          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL
);

CREATE TABLE staff_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES staff_users(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    kiosk_id    TEXT NOT NULL REFERENCES kiosks(id),
    branch_id   TEXT NOT NULL,
    status      TEXT NOT NULL,
    state       TEXT NOT NULL,
    turn_count  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    end_reason  TEXT
);
CREATE INDEX sessions_kiosk ON sessions(kiosk_id, status);

CREATE TABLE transcript_lines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    speaker     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    turn_id     TEXT,
    UNIQUE (session_id, seq)
);
