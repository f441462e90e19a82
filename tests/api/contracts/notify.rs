//! Notifications (ticket events, appointment reminders) through the outbox
//! (`ports::outbox`) to webhook receivers on loopback, as production sends them: queued
//! with `outbox::enqueue` in the writer's transaction, delivered by the `outbox::spawn`
//! loop. What the module promises — every webhook gets each event with its signature and
//! event id, a refused delivery is retried, one that keeps failing dies and replay sends it
//! again, nothing of a rolled-back transaction leaves — on SQLite and on PostgreSQL (the
//! outbox's claims differ by engine). The delivery steps one by one are in `outbox.rs`.

use std::time::{Duration, Instant};

use concierge::config::{OutboxSettings, WebhookSettings};
use concierge::ports::outbox::{self, Replay};
use concierge::store::{now_ms, Db};
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::{fresh_database, Engine};
use crate::outbox::{expected_signature, Mode, Receiver};

on_both_engines!(
    an_event_reaches_every_webhook_signed_with_its_event_id,
    nothing_of_a_rolled_back_transaction_is_sent,
    a_refused_delivery_is_retried_until_it_is_accepted,
    an_event_that_keeps_failing_dies_and_replay_sends_it,
);

const DEADLINE: Duration = Duration::from_secs(8);

/// A node's delivery loop running over a fresh database.
struct Node {
    db: Db,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts delivery to `hooks` (name, URL, secret): 4 attempts, backoff from 50 ms.
    async fn start(engine: Engine, hooks: &[(&str, &str, &str)]) -> Node {
        let (url, dir) = fresh_database(engine).await;
        let db = Db::connect(&SecretString::from(url), 4).await.unwrap();
        db.migrate().await.unwrap();
        let settings = OutboxSettings {
            webhooks: hooks
                .iter()
                .map(|(name, url, secret)| WebhookSettings {
                    name: name.to_string(),
                    url: url.to_string(),
                    secret: SecretString::from(secret.to_string()),
                    reminders: false,
                })
                .collect(),
            max_attempts: 4,
            backoff_base_ms: 50,
            backoff_max_ms: 200,
            timeout_ms: 300,
            poll_ms: 20,
        };
        let stop = CancellationToken::new();
        outbox::spawn(db.clone(), settings, stop.clone());
        Node {
            db,
            stop,
            _dir: dir,
        }
    }

    /// Queues an event for `targets` as the tickets code does, committed; its payload.
    async fn notify(&self, event_id: &str, targets: &[&str]) -> String {
        let payload = json!({"event_id": event_id, "type": "ticket.created",
                             "ticket": {"number": "A001", "queue": "cards"}})
        .to_string();
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        let mut tx = self.db.begin_write().await.unwrap();
        outbox::enqueue(&mut tx, event_id, &targets, &payload, now_ms())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        payload
    }

    /// Waits until the outbox holds `n` rows in `state`.
    async fn until(&self, state: &str, n: i64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let counts = outbox::counts(&self.db).await.unwrap();
            if counts[state] == n {
                return;
            }
            assert!(Instant::now() < deadline, "never {n} {state}: {counts:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The requests `receiver` got, with their delivery attempt numbers, all for `event_id`.
fn attempts(receiver: &Receiver, event_id: &str) -> Vec<String> {
    assert!(
        receiver.event_ids().iter().all(|id| id == event_id),
        "{:?}",
        receiver.event_ids()
    );
    (0..receiver.count())
        .map(|i| receiver.header(i, "x-concierge-delivery-attempt"))
        .collect()
}

async fn an_event_reaches_every_webhook_signed_with_its_event_id(engine: Engine) {
    let (workflow, crm) = (Receiver::up().await, Receiver::up().await);
    let node = Node::start(
        engine,
        &[
            ("workflow", &workflow.url(), "key-one"),
            ("crm", &crm.url(), "key-two"),
        ],
    )
    .await;
    let payload = node.notify("ev-1", &["workflow", "crm"]).await;
    node.until("delivered", 2).await;
    for (receiver, secret) in [(&workflow, "key-one"), (&crm, "key-two")] {
        assert_eq!(attempts(receiver, "ev-1"), ["1"], "once each");
        let body = receiver.shared.log.lock().unwrap()[0].body.clone();
        assert_eq!(body, payload.as_bytes(), "the event, byte for byte");
        assert_eq!(receiver.header(0, "content-type"), "application/json");
        let signed = receiver.header(0, "x-concierge-signature");
        assert_eq!(
            signed,
            expected_signature(secret.as_bytes(), &signed, payload.as_bytes()),
            "signed with the webhook's own secret"
        );
    }
}

async fn nothing_of_a_rolled_back_transaction_is_sent(engine: Engine) {
    let receiver = Receiver::up().await;
    let node = Node::start(engine, &[("workflow", &receiver.url(), "k")]).await;
    {
        let mut tx = node.db.begin_write().await.unwrap();
        outbox::enqueue(&mut tx, "ev-undone", &["workflow".into()], "{}", now_ms())
            .await
            .unwrap();
        // Dropped without a commit: rolled back, like a ticket change that failed.
    }
    node.notify("ev-done", &["workflow"]).await;
    node.until("delivered", 1).await;
    assert_eq!(receiver.event_ids(), ["ev-done"]);
    assert_eq!(outbox::counts(&node.db).await.unwrap()["pending"], 0);
}

async fn a_refused_delivery_is_retried_until_it_is_accepted(engine: Engine) {
    let receiver = Receiver::up().await;
    receiver.set(Mode::Fail);
    let node = Node::start(engine, &[("workflow", &receiver.url(), "k")]).await;
    node.notify("ev-500", &["workflow"]).await;
    let deadline = Instant::now() + DEADLINE;
    while receiver.count() < 2 {
        assert!(Instant::now() < deadline, "no retry after a 500");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    receiver.set(Mode::Ok);
    node.until("delivered", 1).await;
    let tries = attempts(&receiver, "ev-500");
    let numbered: Vec<String> = (1..=tries.len()).map(|n| n.to_string()).collect();
    assert_eq!(tries, numbered, "the same event, attempt after attempt");
    assert!((3..=4).contains(&tries.len()), "{tries:?}");
}

async fn an_event_that_keeps_failing_dies_and_replay_sends_it(engine: Engine) {
    let receiver = Receiver::down();
    let node = Node::start(engine, &[("workflow", &receiver.url(), "k")]).await;
    node.notify("ev-down", &["workflow"]).await;
    node.until("dead", 1).await;
    receiver.start().await;
    assert_eq!(outbox::replay(&node.db, Replay::Dead).await.unwrap(), 1);
    node.until("delivered", 1).await;
    assert_eq!(attempts(&receiver, "ev-down"), ["1"], "counted afresh");
}
