//! Kiosk sessions: one per customer, persisted so a kiosk that reconnects (to this node or
//! another, or after a restart) continues where it was. Which sessions are live on this
//! node, and their inboxes, is [`crate::live`].
//!
//! - [`store`]: sessions and their masked transcripts in the database.
//! - [`connection`]: one kiosk WebSocket connection: hello, authentication, the reader,
//!   the turn worker and the writer.
//! - [`turn`]: one turn, from customer input to stored transcript and bot reply.
//! - [`effects`]: what a turn does outside the engine: devices, actions, handoffs.

pub mod audio;
pub mod connection;
pub mod effects;
pub mod rate;
pub mod store;
pub mod turn;

use kiosk_protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;

use crate::telemetry::Metrics;

/// Sends an `error` frame with its stable code to the peer, and counts it.
pub(crate) async fn send_error(
    metrics: &Metrics,
    out: &mpsc::Sender<ServerMessage>,
    code: ErrorCode,
    message: &str,
) {
    metrics
        .ws_errors_total
        .with_label_values(&[code.as_str()])
        .inc();
    let _ = out
        .send(ServerMessage::Error {
            code,
            message: message.to_string(),
        })
        .await;
}
