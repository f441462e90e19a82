-- The HMAC anchor of the audit chain's head (src/tickets/anchor.rs): written with every
-- event when `[audit] anchor_secret` is set; NULL when no node has sealed the head.
ALTER TABLE audit_head ADD COLUMN anchor TEXT;
