-- What happened to customers' journeys (src/dialog/engine/journal.rs): started, reached a
-- step, ended and how. Written in the turn's transaction with its transcript lines; the
-- reports count journeys and draw funnels from it. No personal data: flow and step names,
-- the session, kiosk and branch ids.
CREATE TABLE journey_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    branch_id TEXT NOT NULL,
    kiosk_id TEXT NOT NULL,
    flow TEXT NOT NULL,
    event TEXT NOT NULL,
    step TEXT NOT NULL
);
CREATE INDEX journey_events_at ON journey_events (at);
CREATE INDEX journey_events_session ON journey_events (session_id, id);
