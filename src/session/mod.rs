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
