//! Contract tests: one suite per port trait, each a set of assertions run unchanged against
//! every implementation of that port (the implementations outside Concierge are fakes
//! served over the wire on 127.0.0.1). A new implementation of a port passes its suite or
//! is not done.
//!
//! - [`bank`]: `CoreBanking` — the sandbox bank (SQLite and PostgreSQL) and the HTTP
//!   adapter against a fake core-banking host;
//! - [`asr`]: `Recognizer` — whisper (with the fetched models) and the OpenAI-compatible
//!   backend against a fake transcription server;
//! - [`embed`]: `Embedder` — the local e5 model (with the fetched model) and the
//!   OpenAI-compatible backend against a fake embedding server, both also behind the cache;
//! - [`tts`]: `TtsBackend` and the `Tts` port — espeak-ng and the OpenAI-compatible backend
//!   against a fake speech server;
//! - [`notify`]: ticket and appointment notifications through the outbox to webhook
//!   receivers, on SQLite and PostgreSQL.
//!
//! Which implementation serves is a typed setting (`banking.backend`,
//! `speech.asr_backend`, `speech.tts.backend`); the test below checks a misspelt one stops
//! the binary.

pub mod asr;
pub mod bank;
pub mod embed;
pub mod notify;
pub mod tts;

use std::time::{Duration, Instant};

use crate::helpers::concierge;

/// Waits for `child` at most `limit`; kills it and fails the test if it is still running.
fn exit_within(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}: a bad backend was accepted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_misspelt_backend_stops_validate_and_serve_naming_the_key() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    for command in [&["validate"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let child = concierge()
            .args(command)
            .env("CONCIERGE__SPEECH__ASR_BACKEND", "whsiper")
            .env("CONCIERGE__DATABASE__URL", &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exit_within(child, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("speech.asr_backend"), "{command:?}: {err}");
        assert!(err.contains("`whsiper`"), "{command:?}: {err}");
        assert!(
            err.contains(r#""whisper", "openai" or "off""#),
            "{command:?}: {err}"
        );
    }
}
