-- Report rollups (src/reports/): one row per hour (UTC milliseconds at the hour's start) ×
-- branch × kiosk ('-' when none) × flow ('*' when none) × measure, with its value, and the
-- sums per branch (kiosk '*') and over every branch (branch and kiosk '*'). The
-- rollup job recomputes the current and previous hour every minute and catches up on the
-- hours it missed (`report_state.done_until`); `concierge reports rebuild --from DATE`
-- recomputes older ones (from what retention has kept).
CREATE TABLE report_hours (
    hour BIGINT NOT NULL,
    branch_id TEXT NOT NULL,
    kiosk_id TEXT NOT NULL,
    flow TEXT NOT NULL,
    measure TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (hour, branch_id, kiosk_id, flow, measure)
);
CREATE INDEX report_hours_scope ON report_hours (branch_id, kiosk_id, hour);
CREATE INDEX report_hours_kiosk ON report_hours (kiosk_id, hour);

CREATE TABLE report_state (
    id INTEGER PRIMARY KEY,
    done_until BIGINT NOT NULL
);
INSERT INTO report_state (id, done_until) VALUES (1, 0);

-- What the rollups read by time.
CREATE INDEX sessions_created ON sessions (created_at);
CREATE INDEX sessions_ended ON sessions (ended_at);
CREATE INDEX transcript_lines_at ON transcript_lines (at);
CREATE INDEX handoffs_created ON handoffs (created_at);
CREATE INDEX queue_tickets_created ON queue_tickets (created_at);
CREATE INDEX queue_tickets_called ON queue_tickets (called_at);
CREATE INDEX handoffs_session ON handoffs (session_id);
CREATE INDEX tickets_created ON tickets (created_at);
CREATE INDEX tickets_first_response ON tickets (first_response_at);
CREATE INDEX tickets_resolved ON tickets (resolved_at);
CREATE INDEX appointments_created ON appointments (created_at);
