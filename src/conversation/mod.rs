//! Conversations: one session per kiosk customer, persisted so a kiosk that reconnects (to
//! this node or another, or after a restart) continues where it was.
//!
//! - [`store`]: sessions and their masked transcripts in the database.
//! - [`hub`]: which sessions are live on this node, so a resumed session replaces its old
//!   connection and shutdown reaches every session.
//! - [`connection`]: one kiosk WebSocket connection: hello, authentication, the reader,
//!   the turn worker and the writer.
//! - [`turn`]: one turn, from customer input to stored transcript and bot reply.
//! - [`effects`]: what a turn does outside the engine: devices, actions, handoffs.

pub mod connection;
pub mod effects;
pub mod hub;
pub mod store;
pub mod turn;
