//! Concierge's integration tests: one binary, each test with its own app on port 0 and its
//! own database, talking to it the way clients do (real HTTP, real WebSocket).
//! Set TEST_LOG=1 to see the app's logs.

#[macro_use]
mod helpers;

mod adapter;
mod architecture;
mod banking;
mod bench_kiosks;
mod browser;
mod cli;
mod contracts;
mod conversations;
mod dashboards;
mod doctor;
mod embedding;
mod eval;
mod first_run;
mod floor;
mod fuzz;
mod http;
mod integrity;
mod k8s;
mod kiosk_ws;
mod knowledge;
mod knowledge_hybrid;
mod licences;
mod live_security;
mod models;
mod nlu;
mod notify;
mod outbox;
mod pii_scan;
mod privacy;
mod record;
mod reports;
mod sbom;
mod sessions;
mod shutdown;
mod speech;
mod staff_security;
mod storage;
mod telemetry;
mod tickets;
mod tls;
mod tts;
