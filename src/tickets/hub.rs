//! Staff online on this node: each staff WebSocket registers here with the person's name
//! and roles; ticket events are pushed to those who work the ticket's queue, own it, or
//! supervise it. Bounded queues: a console that cannot keep up is disconnected, never
//! allowed to hold the node's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::wire::{Frame, StaffMessage};
use crate::access::Role;

/// Messages a console may have waiting before it is dropped.
pub const STAFF_QUEUE: usize = 256;

struct Online {
    name: String,
    roles: Vec<Role>,
    branch: Option<String>,
    tx: mpsc::Sender<Frame>,
}

/// The staff connections of this node.
#[derive(Default)]
pub struct StaffHub {
    next: AtomicU64,
    online: Mutex<HashMap<u64, Online>>,
}

impl StaffHub {
    /// Registers a connection; the id releases it.
    pub fn join(
        &self,
        name: &str,
        roles: &[Role],
        branch: Option<&str>,
        tx: mpsc::Sender<Frame>,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id,
                Online {
                    name: name.to_string(),
                    roles: roles.to_vec(),
                    branch: branch.map(String::from),
                    tx,
                },
            );
        id
    }

    /// Releases the connection `id` (it hears nothing more).
    pub fn leave(&self, id: u64) {
        self.online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Names of the staff online here with one of `skills` (and able to serve `branch`),
    /// sorted, distinct.
    pub fn online_with(&self, skills: &[Role], branch: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|o| o.roles.iter().any(|r| skills.contains(r)))
            .filter(|o| o.branch.as_deref().is_none_or(|b| b == branch))
            .map(|o| o.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Sends `msg` (encoded once) to every connection `who` accepts (name, roles, branch);
    /// a full queue drops that connection (it reconnects and reloads).
    pub fn send(&self, msg: &StaffMessage, who: impl Fn(&str, &[Role], Option<&str>) -> bool) {
        let frame = msg.encode();
        let mut online = self.online.lock().unwrap_or_else(|p| p.into_inner());
        online.retain(|_, o| {
            if !who(&o.name, &o.roles, o.branch.as_deref()) {
                return true;
            }
            match o.tx.try_send(Frame::clone(&frame)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(staff = %o.name, "staff console too slow; disconnected");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// How many connections are registered here.
    pub fn len(&self) -> usize {
        self.online.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nobody is connected here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
