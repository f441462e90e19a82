//! Live sessions on this node: the [`Input`]s a session's turn worker takes in order, and
//! the [`Hub`] that finds a live session's inbox (for device events, ticket events and
//! shutdown). A session has at most one live connection: when a kiosk resumes a session
//! that is still connected (a network flap the server has not noticed yet), the old
//! connection is told `session.end {reason: "replaced"}` and closed first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

struct Live {
    conn_id: u64,
    kiosk_id: String,
    kick: CancellationToken,
    /// Weak, so the hub never keeps a finished session's worker alive.
    inputs: mpsc::WeakSender<Input>,
}

/// The registry of live sessions.
#[derive(Default)]
pub struct Hub {
    live: Mutex<HashMap<String, Live>>,
}

impl Hub {
    /// Takes over `session_id` for connection `conn_id`, replacing any older connection
    /// (waits up to two seconds for it to finish its turn and go).
    pub async fn take_over(
        &self,
        session_id: &str,
        kiosk_id: &str,
        conn_id: u64,
        kick: CancellationToken,
        inputs: mpsc::Sender<Input>,
    ) {
        let old = self
            .live
            .lock()
            .unwrap()
            .get(session_id)
            .map(|l| (l.conn_id, l.kick.clone()));
        if let Some((old_conn, old_kick)) = old {
            old_kick.cancel();
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

    pub fn len(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::tickets::SessionInbox for Hub {
    async fn deliver(&self, session_id: &str, event: crate::tickets::SessionEvent) {
        for tx in self.inputs_of(session_id) {
            let _ = tx.send(Input::Ticket(Box::new(event.clone()))).await;
        }
    }
}
