//! Live sessions on this node: the [`Input`]s a session's turn worker takes in order, and
//! the [`Hub`] that finds a live session's inbox (for device events, ticket events and
//! shutdown). A session has at most one live connection: when a kiosk resumes a session
//! that is still connected (a network flap the server has not noticed yet), the old
//! connection is told `session.end {reason: "replaced"}` and closed first.
//!
//! Live connections cannot outstay their welcome: each one has a [`Kick`] (replaced,
//! revoked, lagging), [`recheck`] checks its credentials again every few seconds, the hub
//! caps the connections of one kiosk ([`Hub::admit`]), and a session too slow to take its
//! ticket events is closed rather than allowed to stall the node's follower.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Something the customer (or the kiosk) did that the session must handle in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Choice(String),
    /// An utterance of this many bytes of 16 kHz PCM16 ended (recognition is off).
    Audio {
        bytes: usize,
    },
    /// An utterance, recognised and corrected.
    Speech(Box<crate::speech::Heard>),
    /// A backchannel (嗯, 好) said over the bot: recorded, not a turn.
    Backchannel(String),
    /// A device reported something (card inserted, paper out).
    DeviceEvent {
        device: String,
        event: String,
    },
    /// Something happened to this session's handoff ticket (accepted, a line from the
    /// person, handed back).
    Ticket(Box<crate::tickets::SessionEvent>),
    /// The customer closed the session.
    Close {
        reason: Option<String>,
    },
}

/// Why a live connection must end.
pub mod reason {
    /// The kiosk resumed the session on a new connection.
    pub const REPLACED: &str = "replaced";
    /// Its token was revoked or expired, or its kiosk or staff member disabled.
    pub const REVOKED: &str = "revoked";
    /// It could not take its events as fast as they came.
    pub const LAGGING: &str = "lagging";
}

/// Tells a live connection to end, and why (see [`reason`]); the first reason wins.
#[derive(Debug, Clone, Default)]
pub struct Kick {
    token: CancellationToken,
    reason: Arc<OnceLock<&'static str>>,
}

impl Kick {
    /// A kick not yet given.
    pub fn new() -> Kick {
        Kick::default()
    }

    /// Ends the connection for `reason`.
    pub fn kick(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Waits until the connection is kicked; the reason.
    pub async fn kicked(&self) -> &'static str {
        self.token.cancelled().await;
        self.reason().unwrap_or(reason::REPLACED)
    }

    /// The reason, once kicked.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason.get().copied()
    }
}

/// Checks a live connection's credentials every `every` with `check` (true: still valid)
/// and kicks it ([`reason::REVOKED`]) on the first no. A failing check (the database is
/// away) is logged and tried again: a database outage does not drop every kiosk. Runs
/// until the returned guard is dropped or the connection is kicked.
///
/// Each connection checks itself (one indexed query per connection per period) rather
/// than a sweeper walking them all: nodes share only the database, the cost grows with the
/// connections a node holds anyway, and one slow check never delays another's.
pub fn recheck<F, Fut, E>(every: Duration, kick: Kick, check: F) -> DropGuard
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<bool, E>> + Send,
    E: std::fmt::Display,
{
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.cancelled() => return,
                _ = kick.token.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match check().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("credentials of a live connection no longer valid; closing it");
                    kick.kick(reason::REVOKED);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "credentials of a live connection not checked")
                }
            }
        }
    });
    stop.drop_guard()
}

struct Live {
    conn_id: u64,
    kiosk_id: String,
    kick: Kick,
    /// Weak, so the hub never keeps a finished session's worker alive.
    inputs: mpsc::WeakSender<Input>,
}

/// The registry of live sessions.
#[derive(Default)]
pub struct Hub {
    live: Mutex<HashMap<String, Live>>,
    /// Open connections per kiosk on this node.
    connections: Arc<Mutex<HashMap<String, usize>>>,
    /// Sessions closed because their inbox was full when a ticket event came.
    lagging: AtomicU64,
}

/// One admitted connection of a kiosk; dropping it frees the place.
pub struct Admitted {
    connections: Arc<Mutex<HashMap<String, usize>>>,
    kiosk_id: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.kiosk_id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.kiosk_id);
            }
        }
    }
}

impl Hub {
    /// Takes over `session_id` for connection `conn_id`, replacing any older connection
    /// (waits up to two seconds for it to finish its turn and go).
    pub async fn take_over(
        &self,
        session_id: &str,
        kiosk_id: &str,
        conn_id: u64,
        kick: Kick,
        inputs: mpsc::Sender<Input>,
    ) {
        let old = self
            .live
            .lock()
            .unwrap()
            .get(session_id)
            .map(|l| (l.conn_id, l.kick.clone()));
        if let Some((old_conn, old_kick)) = old {
            old_kick.kick(reason::REPLACED);
            for _ in 0..200 {
                let still = self
                    .live
                    .lock()
                    .unwrap()
                    .get(session_id)
                    .is_some_and(|l| l.conn_id == old_conn);
                if !still {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.live.lock().unwrap().insert(
            session_id.to_string(),
            Live {
                conn_id,
                kiosk_id: kiosk_id.to_string(),
                kick,
                inputs: inputs.downgrade(),
            },
        );
    }

    /// Removes `session_id` if it still belongs to `conn_id`.
    pub fn release(&self, session_id: &str, conn_id: u64) {
        let mut live = self.live.lock().unwrap();
        if live.get(session_id).is_some_and(|l| l.conn_id == conn_id) {
            live.remove(session_id);
        }
    }

    /// The input queues of the live sessions of a kiosk (for device events from its adapter).
    pub fn sessions_of(&self, kiosk_id: &str) -> Vec<mpsc::Sender<Input>> {
        self.live
            .lock()
            .unwrap()
            .values()
            .filter(|l| l.kiosk_id == kiosk_id)
            .filter_map(|l| l.inputs.upgrade())
            .collect()
    }

    /// The input queue of a live session (for ticket events of its handoff).
    pub fn inputs_of(&self, session_id: &str) -> Vec<mpsc::Sender<Input>> {
        self.live
            .lock()
            .unwrap()
            .get(session_id)
            .and_then(|l| l.inputs.upgrade())
            .into_iter()
            .collect()
    }

    /// Admits one more connection of `kiosk_id` unless it already holds `max` here.
    pub fn admit(&self, kiosk_id: &str, max: usize) -> Option<Admitted> {
        let mut open = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(kiosk_id.to_string()).or_insert(0);
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(Admitted {
            connections: Arc::clone(&self.connections),
            kiosk_id: kiosk_id.to_string(),
        })
    }

    /// How many sessions were closed because they could not take a ticket event.
    pub fn lagging_closed(&self) -> u64 {
        self.lagging.load(Ordering::Relaxed)
    }

    /// How many sessions are live here.
    pub fn len(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    /// Whether no session is live here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::tickets::SessionInbox for Hub {
    /// Never waits: the node's follower serves every session and staff console. A session
    /// whose inbox is full is closed (logged and counted); the kiosk reconnects and reads
    /// its ticket from the store.
    async fn deliver(&self, session_id: &str, event: crate::tickets::SessionEvent) {
        let live = self
            .live
            .lock()
            .unwrap()
            .get(session_id)
            .map(|l| (l.inputs.upgrade(), l.kick.clone()));
        let Some((Some(tx), kick)) = live else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(Input::Ticket(Box::new(event)))
        {
            self.lagging.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                session_id,
                "session too slow to take its ticket events; closed (it resumes from the store)"
            );
            kick.kick(reason::LAGGING);
        }
    }
}
