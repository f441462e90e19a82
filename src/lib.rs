//! Concierge: the conversational "digital human" of a bank branch lobby.
//!
//! A customer speaks or taps at a lobby kiosk; Concierge understands Mandarin, guides them
//! through the branch's services and hands off to people, driving the kiosk's devices.
//! `main.rs` only parses the command line; everything it runs lives here, so tests use
//! exactly what production uses.
//!
//! # Layout
//!
//! - [`cli`]: the `concierge` commands (serve, validate, migrate, kiosk, user, chat, bench).
//! - [`config`]: layered settings (embedded defaults → file → env → flags).
//! - [`startup`]: build the application, run it, shut it down gracefully.
//! - [`state`]: the shared application state.
//! - [`api`]: HTTP routes and the kiosk WebSocket upgrade.
//! - [`conversation`]: kiosk connections, sessions, turns, transcripts.
//! - [`dialog`]: dialog data (intents, responses) and the engine.
//! - [`nlu`]: intent names and rules.
//! - [`content`]: loading and validating the data folders.
//! - [`devices`]: the broker that runs device calls on kiosk peers.
//! - [`kiosks`], [`staff`]: who may connect, and with which roles.
//! - [`security`]: tokens, passwords, roles, masking of personal data.
//! - [`store`]: the database pool and migrations (SQLite or PostgreSQL).
//! - [`telemetry`]: logs and metrics.
//! - [`chat`], [`bench`]: the terminal kiosk client and the load generator.

pub mod access;
pub mod actions;
pub mod api;
pub mod branch;
pub mod cli;
pub mod client;
pub mod config;
pub mod content;
pub mod datafile;
pub mod devices;
pub mod dialog;
pub mod domain;
pub mod error;
pub mod handoff;
pub mod knowledge;
pub mod live;
pub mod nlu;
pub mod ops;
pub mod ports;
pub mod session;
pub mod speech;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tickets;
pub mod validate;
