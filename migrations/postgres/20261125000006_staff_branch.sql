-- A staff member may be scoped to one branch (a teller of B001 sees B001's tickets only).
ALTER TABLE staff_users ADD COLUMN branch_id TEXT;
