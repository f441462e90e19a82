-- No raw identifiers at rest (see src/domain/vault.rs).
--
-- Appointments keep the phone sealed (AES-256-GCM, for the reminder SMS) and find it by a keyed
-- lookup hash (HMAC-SHA256). Hashes written before were bare SHA-256, which anyone can reverse
-- by trying every number: they are forgotten. Those appointments stay for staff (masked phone,
-- code) and are served, but are no longer found by phone at the kiosk.
ALTER TABLE appointments ADD COLUMN phone_sealed TEXT;
UPDATE appointments SET phone_hash = '';

-- One counter row per slot and service: a booking takes a seat with a conditional update
-- (booked < capacity), so nodes racing for the last seat cannot overbook.
CREATE TABLE appointment_slots (
    branch_id TEXT NOT NULL,
    service TEXT NOT NULL,
    day TEXT NOT NULL,
    slot TEXT NOT NULL,
    booked INTEGER NOT NULL,
    PRIMARY KEY (branch_id, service, day, slot)
);
INSERT INTO appointment_slots (branch_id, service, day, slot, booked)
    SELECT branch_id, service, day, slot, COUNT(*) FROM appointments
    WHERE status = 'booked' GROUP BY branch_id, service, day, slot;

-- The sandbox bank's fake customers were hashed with bare SHA-256: removed, to be seeded
-- again (`concierge sandbox seed`) with keyed hashes.
DELETE FROM bank_cards;
DELETE FROM bank_customers;
