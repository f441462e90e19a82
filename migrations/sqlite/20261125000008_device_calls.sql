-- Every device call a journey makes: which kiosk, device and action, how it went, how long
-- it took, and the result with identifiers masked (PIN blocks and photos never kept).
CREATE TABLE device_calls (
    id TEXT PRIMARY KEY,
    kiosk_id TEXT NOT NULL,
    session_id TEXT,
    device TEXT NOT NULL,
    action TEXT NOT NULL,
    ok BIGINT NOT NULL,
    code TEXT,
    duration_ms BIGINT NOT NULL,
    result_masked TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX device_calls_kiosk ON device_calls (kiosk_id, at);
