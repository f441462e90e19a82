-- Queue numbers are called by tellers (call-next); appointments get one reminder.
ALTER TABLE queue_tickets ADD COLUMN called_at BIGINT;
ALTER TABLE queue_tickets ADD COLUMN called_by TEXT;
ALTER TABLE queue_tickets ADD COLUMN counter TEXT;
ALTER TABLE appointments ADD COLUMN reminded_at BIGINT;
