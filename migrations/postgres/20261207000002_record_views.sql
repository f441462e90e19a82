-- Who viewed the compliance record of which session, and when (src/record.rs): written
-- before the record is returned, shown in the record itself, kept like the audit trail.
CREATE TABLE record_views (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    branch_id TEXT NOT NULL,
    staff TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX record_views_session ON record_views (session_id, at);
