//! Wake-ups from writers to followers, on one node and between nodes.
//!
//! A node's followers (ticket events to staff consoles and kiosks, the knowledge index,
//! outbox delivery) read what changed in the database. Instead of polling it every few
//! hundred milliseconds they wait for a wake-up of their [`Topic`]:
//!
//! - on this node, the writer pokes the topic after its commit ([`Wakeups::poke`]) — the
//!   only path with SQLite, which serves one node;
//! - between nodes, PostgreSQL triggers `pg_notify` the topic's channel when its table
//!   changes (migration `…_notify`), delivered at commit to every node's `LISTEN`
//!   connection ([`listen`]), which pokes the topic here.
//!
//! Nothing is lost to a missed notification: a follower reads everything after what it
//! last saw, so a wake-up only says "look now". After every (re)connection of the
//! listener every topic is poked (a catch-up read for what was written while it was
//! away), and followers still look on their own every few seconds as a safety net.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// A ticket event was appended (staff consoles and kiosk sessions hear it).
    TicketEvents,
    /// The knowledge base's revision moved (publish, rollback, retire, synonyms).
    Knowledge,
    /// An outbox row was queued (a webhook delivery to make).
    Outbox,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::TicketEvents, Topic::Knowledge, Topic::Outbox];

    /// The PostgreSQL notification channel (the triggers of the `…_notify` migration).
    pub fn channel(self) -> &'static str {
        match self {
            Topic::TicketEvents => "concierge_ticket_events",
            Topic::Knowledge => "concierge_knowledge",
            Topic::Outbox => "concierge_outbox",
        }
    }

    fn of_channel(channel: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.channel() == channel)
    }
}

/// The wake-ups of one node (shared by every clone of its [`super::Db`]): a counter per
/// topic that writers move and each follower watches with a [`Waker`] of its own.
#[derive(Debug)]
pub struct Wakeups {
    ticket_events: watch::Sender<u64>,
    knowledge: watch::Sender<u64>,
    outbox: watch::Sender<u64>,
    /// True while the PostgreSQL listener is connected and listening.
    listening: AtomicBool,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            ticket_events: watch::Sender::new(0),
            knowledge: watch::Sender::new(0),
            outbox: watch::Sender::new(0),
            listening: AtomicBool::new(false),
        }
    }
}

/// One follower's view of a topic: wakes at every poke made since it last woke.
#[derive(Debug)]
pub struct Waker(watch::Receiver<u64>);

impl Wakeups {
    fn sender(&self, topic: Topic) -> &watch::Sender<u64> {
        match topic {
            Topic::TicketEvents => &self.ticket_events,
            Topic::Knowledge => &self.knowledge,
            Topic::Outbox => &self.outbox,
        }
    }

    /// Wakes every follower of `topic`: now if it waits, else at its next wait (a poke is
    /// never lost, and pokes between two waits count once).
    pub fn poke(&self, topic: Topic) {
        self.sender(topic).send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A follower's waker for `topic`, woken by pokes made from now on.
    pub fn subscribe(&self, topic: Topic) -> Waker {
        Waker(self.sender(topic).subscribe())
    }

    /// Whether changes from other nodes arrive now (PostgreSQL `LISTEN` connected).
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    fn poke_all(&self) {
        for topic in Topic::ALL {
            self.poke(topic);
        }
    }
}

/// Waits until the waker's topic is poked or `fallback` has passed, whichever comes first:
/// a follower's wait between two looks at the database.
pub async fn next_look(waker: &mut Waker, fallback: Duration) {
    tokio::select! {
        changed = waker.0.changed() => {
            if changed.is_err() {
                // The wake-ups are gone (the node is stopping): fall back to the timer.
                tokio::time::sleep(fallback).await;
            }
        }
        _ = tokio::time::sleep(fallback) => {}
    }
}

/// Longest pause between two attempts to (re)connect the listener.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Listens for every topic's notifications on a connection of its own to the PostgreSQL
/// database at `url` and pokes `wake` with each, until `stop`. A lost connection is opened
/// again (backing off up to 5 s), and every (re)connection pokes every topic.
pub fn listen(url: SecretString, wake: Arc<Wakeups>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        let mut last_error: Option<String> = None;
        loop {
            let connected = tokio::select! {
                _ = stop.cancelled() => return,
                c = subscribe(&url) => c,
            };
            let mut listener = match connected {
                Ok(l) => l,
                Err(e) => {
                    let text = e.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, "cannot listen for changes from other nodes; looking every few seconds instead");
                    }
                    last_error = Some(text);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            if last_error.take().is_some() {
                tracing::info!("listening for changes from other nodes again");
            }
            pause = Duration::from_millis(100);
            wake.listening.store(true, Ordering::Relaxed);
            // Catch up with what was written while nobody listened.
            wake.poke_all();
            loop {
                let received = tokio::select! {
                    _ = stop.cancelled() => {
                        wake.listening.store(false, Ordering::Relaxed);
                        return;
                    }
                    r = listener.try_recv() => r,
                };
                match received {
                    Ok(Some(n)) => {
                        if let Some(topic) = Topic::of_channel(n.channel()) {
                            wake.poke(topic);
                        }
                    }
                    // The connection closed (sqlx would reconnect on the next call, but
                    // without telling us; reconnect here so the catch-up follows it).
                    Ok(None) | Err(_) => break,
                }
            }
            wake.listening.store(false, Ordering::Relaxed);
            wake.poke_all();
        }
    });
}

/// A listening connection subscribed to every topic's channel.
async fn subscribe(url: &SecretString) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url.expose_secret()).await?;
    // `try_recv` reports a lost connection (Ok(None)) without reconnecting first: the
    // loop of [`listen`] reconnects, then catches up.
    listener.eager_reconnect(false);
    let channels: Vec<&str> = Topic::ALL.iter().map(|t| t.channel()).collect();
    listener.listen_all(channels).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_poke_before_the_wait_is_kept_for_every_follower_and_topics_are_separate() {
        let wake = Wakeups::default();
        let mut first = wake.subscribe(Topic::Knowledge);
        let mut second = wake.subscribe(Topic::Knowledge);
        let mut tickets = wake.subscribe(Topic::TicketEvents);
        wake.poke(Topic::Knowledge);
        wake.poke(Topic::Knowledge);
        let long = Duration::from_secs(30);
        for w in [&mut first, &mut second] {
            tokio::time::timeout(Duration::from_secs(5), next_look(w, long))
                .await
                .expect("the earlier poke wakes every follower");
            assert!(
                tokio::time::timeout(Duration::from_millis(50), next_look(w, long))
                    .await
                    .is_err(),
                "two pokes before one wait count once"
            );
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(50), next_look(&mut tickets, long))
                .await
                .is_err(),
            "another topic's poke wakes nothing here"
        );
    }

    #[tokio::test]
    async fn next_look_comes_with_a_poke_or_after_the_fallback() {
        let wake = Arc::new(Wakeups::default());
        let mut waker = wake.subscribe(Topic::Outbox);
        let started = tokio::time::Instant::now();
        next_look(&mut waker, Duration::from_millis(30)).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
        let w = wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            w.poke(Topic::Outbox);
        });
        let started = tokio::time::Instant::now();
        next_look(&mut waker, Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn every_topic_has_its_own_channel() {
        for t in Topic::ALL {
            assert_eq!(Topic::of_channel(t.channel()), Some(t));
        }
        assert_eq!(Topic::of_channel("other"), None);
    }
}
