//! The outbox against a real local webhook receiver (axum on port 0): signed delivery,
//! retries with backoff, timeouts, the dead-letter state and replay, and several nodes
//! delivering from the same database, each event exactly once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use concierge::config::{OutboxSettings, WebhookSettings};
use concierge::ports::outbox::{self, Replay};
use concierge::store::{now_ms, Db};
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::helpers::{fresh_database, Engine};

on_both_engines!(
    an_event_is_delivered_once_signed_and_with_its_event_id,
    a_failed_delivery_is_retried_with_backoff_until_it_succeeds,
    a_hanging_receiver_times_out_and_the_event_is_retried,
    an_event_dies_after_max_attempts_and_is_delivered_when_replayed,
    two_nodes_deliver_each_event_exactly_once,
    a_row_for_an_unknown_webhook_waits_without_counting_attempts,
);

const SECRET: &str = "s3cret-webhook-key";
const DEADLINE: Duration = Duration::from_secs(8);

/// What the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Ok,
    Fail,
    /// Answers long after the outbox's 300 ms timeout.
    Hang,
    /// Answers 200 after 100 ms (to make concurrent deliveries overlap).
    Slow,
}

pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

pub(crate) struct Shared {
    mode: Mutex<Mode>,
    pub(crate) log: Mutex<Vec<Received>>,
}

/// A local webhook receiver that records every request.
pub(crate) struct Receiver {
    port: u16,
    pub(crate) shared: Arc<Shared>,
}

impl Receiver {
    /// Listening on a free port.
    pub(crate) async fn up() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver::new(listener.local_addr().unwrap().port());
        receiver.serve(listener);
        receiver
    }

    /// Down: a port nothing listens on (yet); [`Receiver::start`] brings it up.
    pub(crate) fn down() -> Receiver {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Receiver::new(probe.local_addr().unwrap().port())
    }

    fn new(port: u16) -> Receiver {
        Receiver {
            port,
            shared: Arc::new(Shared {
                mode: Mutex::new(Mode::Ok),
                log: Mutex::new(Vec::new()),
            }),
        }
    }

    pub(crate) async fn start(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(Arc::clone(&self.shared));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub(crate) fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub(crate) fn count(&self) -> usize {
        self.shared.log.lock().unwrap().len()
    }

    pub(crate) fn header(&self, i: usize, name: &str) -> String {
        let log = self.shared.log.lock().unwrap();
        log[i].headers[name].to_str().unwrap().to_string()
    }

    pub(crate) fn event_ids(&self) -> Vec<String> {
        let log = self.shared.log.lock().unwrap();
        log.iter()
            .map(|r| {
                r.headers["x-concierge-event-id"]
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.log.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
    });
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Ok => StatusCode::OK,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK
        }
        Mode::Slow => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            StatusCode::NO_CONTENT
        }
    }
}

fn settings(url: &str) -> OutboxSettings {
    OutboxSettings {
        webhooks: vec![WebhookSettings {
            name: "workflow".into(),
            url: url.to_string(),
            secret: SecretString::from(SECRET.to_string()),
            reminders: false,
        }],
        max_attempts: 3,
        backoff_base_ms: 50,
        backoff_max_ms: 200,
        timeout_ms: 300,
        poll_ms: 20,
    }
}

async fn open(engine: Engine) -> (Db, String, tempfile::TempDir) {
    let (url, dir) = fresh_database(engine).await;
    let db = Db::connect(&SecretString::from(url.clone()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (db, url, dir)
}

/// Inserts a due row the way the tickets code does; returns its payload.
async fn insert(db: &Db, event_id: &str, target: &str) -> String {
    let payload = json!({
        "event_id": event_id,
        "type": "ticket.created",
        "ticket": { "number": "A001", "queue": "cards" },
    })
    .to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO outbox (id, event_id, target, payload, state, attempts, next_attempt_at, \
         claimed_until, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, 0, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(event_id)
    .bind(target)
    .bind(&payload)
    .bind(now)
    .execute(&db.pool)
    .await
    .unwrap();
    payload
}

#[derive(Debug)]
struct Stored {
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    delivered_at: Option<i64>,
}

async fn stored(db: &Db, event_id: &str) -> Stored {
    let row = sqlx::query(
        "SELECT state, attempts, next_attempt_at, last_error, delivered_at FROM outbox \
         WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    Stored {
        state: row.get("state"),
        attempts: row.get("attempts"),
        next_attempt_at: row.get("next_attempt_at"),
        last_error: row.get("last_error"),
        delivered_at: row.get("delivered_at"),
    }
}

/// Runs delivery rounds until `event_id` is in `state`; panics after the deadline.
async fn deliver_until(
    db: &Db,
    settings: &OutboxSettings,
    client: &reqwest::Client,
    event_id: &str,
    state: &str,
) -> Stored {
    let deadline = Instant::now() + DEADLINE;
    loop {
        outbox::deliver_due(db, settings, client).await.unwrap();
        let row = stored(db, event_id).await;
        if row.state == state {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "{event_id} never became {state}: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// HMAC-SHA256 written out here from RFC 2104, independently of the code under test.
fn hmac(key: &[u8], message: &[u8]) -> String {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), message].concat());
    let outer = Sha256::digest([opad.as_slice(), inner.as_slice()].concat());
    hex::encode(outer)
}

/// The signature header `received` should be, computed here from its timestamp (which must
/// be within a minute of now) as `t=<t>,v1=HMAC(key, "<t>.<body>")`; the receivers' helper
/// must accept it too.
pub(crate) fn expected_signature(key: &[u8], received: &str, body: &[u8]) -> String {
    let t: i64 = received
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp first in {received:?}"));
    let now = chrono::Utc::now().timestamp();
    assert!((now - t).abs() <= 60, "timestamp {t} is not now ({now})");
    assert_eq!(
        outbox::verify_signature(key, received, body, now, 300),
        Ok(()),
        "{received}"
    );
    let message = [format!("{t}.").as_bytes(), body].concat();
    format!("t={t},v1={}", hmac(key, &message))
}

async fn an_event_is_delivered_once_signed_and_with_its_event_id(engine: Engine) {
    let (db, _, _dir) = open(engine).await;
    let receiver = Receiver::up().await;
    let settings = settings(&receiver.url());
    let client = reqwest::Client::new();
    let payload = insert(&db, "ev-1", "workflow").await;

    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        1
    );
    assert_eq!(receiver.count(), 1);
    {
        let log = receiver.shared.log.lock().unwrap();
        assert_eq!(
            log[0].body,
            payload.as_bytes(),
            "the stored JSON, byte for byte"
        );
    }
    assert_eq!(receiver.header(0, "content-type"), "application/json");
    assert_eq!(receiver.header(0, "x-concierge-event-id"), "ev-1");
    assert_eq!(receiver.header(0, "x-concierge-delivery-attempt"), "1");
    let signed = receiver.header(0, "x-concierge-signature");
    assert_eq!(
        signed,
        expected_signature(SECRET.as_bytes(), &signed, payload.as_bytes())
    );
    let row = stored(&db, "ev-1").await;
    assert_eq!(row.state, "delivered");
    assert_eq!(row.attempts, 1);
    assert!(row.delivered_at.is_some());
    assert_eq!(row.last_error, None);

    // Nothing is due any more: no second request.
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        0
    );
    assert_eq!(receiver.count(), 1);
    let counts = outbox::counts(&db).await.unwrap();
    assert_eq!(counts["delivered"], 1);
    assert_eq!(counts["pending"], 0);
    assert_eq!(counts["dead"], 0);
}

async fn a_failed_delivery_is_retried_with_backoff_until_it_succeeds(engine: Engine) {
    let (db, _, _dir) = open(engine).await;
    let receiver = Receiver::up().await;
    let settings = settings(&receiver.url());
    let client = reqwest::Client::new();
    insert(&db, "ev-500", "workflow").await;
    receiver.set(Mode::Fail);

    let before = now_ms();
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        0
    );
    let row = stored(&db, "ev-500").await;
    assert_eq!(row.state, "pending");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error.as_deref(), Some("HTTP 500"));
    // 50 ms less at most 20 % jitter.
    assert!(row.next_attempt_at >= before + 40, "{row:?}");

    receiver.set(Mode::Ok);
    let row = deliver_until(&db, &settings, &client, "ev-500", "delivered").await;
    assert_eq!(row.attempts, 2);
    assert_eq!(row.last_error, None);
    assert_eq!(receiver.count(), 2, "one failed request, one delivery");
    assert_eq!(receiver.header(0, "x-concierge-delivery-attempt"), "1");
    assert_eq!(receiver.header(1, "x-concierge-delivery-attempt"), "2");
    assert_eq!(receiver.event_ids(), ["ev-500", "ev-500"]);
}

async fn a_hanging_receiver_times_out_and_the_event_is_retried(engine: Engine) {
    let (db, _, _dir) = open(engine).await;
    let receiver = Receiver::up().await;
    let settings = settings(&receiver.url());
    let client = reqwest::Client::new();
    insert(&db, "ev-slow", "workflow").await;
    receiver.set(Mode::Hang);

    let started = Instant::now();
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        0
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "the request is cut at the 300 ms timeout, took {took:?}"
    );
    let row = stored(&db, "ev-slow").await;
    assert_eq!(row.state, "pending");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error.as_deref(), Some("timed out after 300 ms"));

    receiver.set(Mode::Ok);
    let row = deliver_until(&db, &settings, &client, "ev-slow", "delivered").await;
    assert_eq!(row.attempts, 2);
    assert_eq!(receiver.count(), 2);
}

async fn an_event_dies_after_max_attempts_and_is_delivered_when_replayed(engine: Engine) {
    let (db, _, _dir) = open(engine).await;
    let receiver = Receiver::down();
    let settings = settings(&receiver.url());
    let client = reqwest::Client::new();
    insert(&db, "ev-down", "workflow").await;

    let row = deliver_until(&db, &settings, &client, "ev-down", "dead").await;
    assert_eq!(row.attempts, 3, "max_attempts");
    assert_eq!(row.last_error.as_deref(), Some("connection failed"));
    assert_eq!(outbox::counts(&db).await.unwrap()["dead"], 1);
    // A dead row is not tried again.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        0
    );
    assert_eq!(stored(&db, "ev-down").await.attempts, 3);

    // The receiver is back; the operator replays the dead letters.
    receiver.start().await;
    assert_eq!(outbox::replay(&db, Replay::Dead).await.unwrap(), 1);
    let row = stored(&db, "ev-down").await;
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 0));
    assert_eq!(row.last_error, None);
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        1
    );
    assert_eq!(receiver.count(), 1);
    assert_eq!(receiver.header(0, "x-concierge-delivery-attempt"), "1");
    assert_eq!(stored(&db, "ev-down").await.state, "delivered");
    assert_eq!(outbox::replay(&db, Replay::Dead).await.unwrap(), 0);

    // One event, or everything (delivered included), can be sent again.
    insert(&db, "ev-other", "workflow").await;
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        1
    );
    assert_eq!(
        outbox::replay(&db, Replay::Event("ev-down".into()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        1
    );
    assert_eq!(receiver.event_ids(), ["ev-down", "ev-other", "ev-down"]);
    assert_eq!(outbox::replay(&db, Replay::All).await.unwrap(), 2);
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        2
    );
    assert_eq!(receiver.count(), 5);
}

async fn two_nodes_deliver_each_event_exactly_once(engine: Engine) {
    let (node_a, url, _dir) = open(engine).await;
    // A second pool on the same database: another node.
    let node_b = Db::connect(&SecretString::from(url), 4).await.unwrap();
    let receiver = Receiver::up().await;
    receiver.set(Mode::Slow);
    let settings = settings(&receiver.url());
    let (client_a, client_b) = (reqwest::Client::new(), reqwest::Client::new());
    // More than one batch (20), so both nodes go round several times.
    let total = 45;
    for i in 0..total {
        insert(&node_a, &format!("ev-{i:02}"), "workflow").await;
    }
    // A row some third node is delivering right now is left alone.
    insert(&node_a, "ev-claimed", "workflow").await;
    sqlx::query("UPDATE outbox SET claimed_until = $1 WHERE event_id = 'ev-claimed'")
        .bind(now_ms() + 60_000)
        .execute(&node_a.pool)
        .await
        .unwrap();

    let deadline = Instant::now() + DEADLINE;
    let mut delivered = 0;
    while delivered < total {
        let (a, b) = tokio::join!(
            outbox::deliver_due(&node_a, &settings, &client_a),
            outbox::deliver_due(&node_b, &settings, &client_b),
        );
        delivered += a.unwrap() + b.unwrap();
        assert!(Instant::now() < deadline, "only {delivered} delivered");
    }
    assert_eq!(delivered, total);
    let ids = receiver.event_ids();
    assert_eq!(ids.len(), total, "no event was sent twice");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), total);
    assert!(!ids.iter().any(|id| id == "ev-claimed"));
    let counts = outbox::counts(&node_a).await.unwrap();
    assert_eq!(counts["delivered"], total as i64);
    assert_eq!(counts["pending"], 1);
    let attempts: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT attempts FROM outbox WHERE state = 'delivered'")
            .fetch_all(&node_a.pool)
            .await
            .unwrap();
    assert_eq!(attempts, [1]);
}

async fn a_row_for_an_unknown_webhook_waits_without_counting_attempts(engine: Engine) {
    let (db, _, _dir) = open(engine).await;
    let receiver = Receiver::up().await;
    let settings = settings(&receiver.url());
    let client = reqwest::Client::new();
    insert(&db, "ev-gone", "retired-hook").await;

    let before = now_ms();
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        0
    );
    let row = stored(&db, "ev-gone").await;
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 0));
    assert!(row.last_error.unwrap().contains("retired-hook"));
    // The longest backoff (200 ms), less at most 20 %.
    assert!(
        row.next_attempt_at >= before + 160,
        "{}",
        row.next_attempt_at
    );
    assert_eq!(receiver.count(), 0);
    let secret_leaked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE last_error LIKE $1")
            .bind(format!("%{SECRET}%"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(secret_leaked, 0);
}

/// A recorded delivery sent again later (a replay by whoever captured it) carries its old
/// timestamp: the receivers' helper refuses it once the tolerance has passed, and a fresh
/// timestamp cannot be put on the old signature.
#[tokio::test]
async fn a_replayed_delivery_with_a_stale_timestamp_is_refused_by_the_helper() {
    let (db, _, _dir) = open(Engine::Sqlite).await;
    let receiver = Receiver::up().await;
    let settings = settings(&receiver.url());
    let client = reqwest::Client::new();
    let payload = insert(&db, "ev-replay", "workflow").await;
    assert_eq!(
        outbox::deliver_due(&db, &settings, &client).await.unwrap(),
        1
    );
    let signed = receiver.header(0, "x-concierge-signature");
    let body = payload.as_bytes();
    let key = SECRET.as_bytes();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        outbox::verify_signature(key, &signed, body, now, 300),
        Ok(())
    );
    // Six minutes later, with a five-minute window.
    let err = outbox::verify_signature(key, &signed, body, now + 360, 300).unwrap_err();
    assert!(
        matches!(err, outbox::SignatureError::Stale { age_secs, .. } if age_secs >= 359),
        "{err:?}"
    );
    let t = signed.split(',').next().unwrap();
    let refreshed = signed.replacen(t, &format!("t={}", now + 360), 1);
    assert_eq!(
        outbox::verify_signature(key, &refreshed, body, now + 360, 300),
        Err(outbox::SignatureError::Mismatch)
    );
    assert_eq!(
        outbox::verify_signature(b"another key", &signed, body, now, 300),
        Err(outbox::SignatureError::Mismatch)
    );
}
