-- The SLA watcher's schedule (src/tickets/sla.rs): the next moment an open ticket is due a
-- warning or an escalation, NULL when nothing is left. Every ticket event keeps it current;
-- the watcher reads `sla_next_at <= now` through the partial index instead of every open
-- ticket. Tickets open before this migration are due at once: the watcher's first pass
-- looks at each of them once and sets its real moment.
ALTER TABLE tickets ADD COLUMN sla_next_at BIGINT;
UPDATE tickets SET sla_next_at = 0
    WHERE state IN ('new', 'assigned', 'in_progress', 'pending_customer')
    AND (escalated_response_at IS NULL OR escalated_resolution_at IS NULL);
CREATE INDEX tickets_sla_next ON tickets (sla_next_at) WHERE sla_next_at IS NOT NULL;
