//! Concierge: the conversational "digital human" of a bank branch lobby.
//!
//! A customer speaks or taps at a lobby kiosk; Concierge understands Mandarin, guides them
//! through the branch's services and hands off to people, driving the kiosk's devices.
//! `main.rs` only parses the command line; everything it runs lives here, so tests use
//! exactly what production uses.
//!
//! # Layout
//!
//! Layers, lowest first; a module uses only its own layer and those below, and no two
//! modules use each other (`tests/api/architecture.rs` fails on a cycle). ARCHITECTURE.md
//! walks a customer turn through them.
//!
//! **Foundations**
//! - [`datafile`]: reading operators' data files; `file:line` errors ([`datafile::DataError`]).
//! - [`domain`]: the clock (and its port), identifiers parsed once, identifiers that print
//!   only masked, masking of personal data, check digits.
//! - [`text`]: Chinese text shared by NLU, knowledge and speech: normalisation, numerals,
//!   currency names, the jieba dictionary, the utterance length limit.
//! - [`config`]: every setting, layered (embedded defaults → file → env → flags).
//! - [`error`]: the HTTP error type. [`store`]: the database (SQLite or PostgreSQL).
//!   [`telemetry`]: logs and metrics.
//! - [`access`]: kiosks and their tokens, staff users, roles, passwords.
//!
//! **Understanding and knowledge**
//! - [`nlu`]: intents (and their data), slots, the classifier, risk flags.
//! - [`dialog`]: flows as data and the engine that turns an understood input into replies
//!   and effects.
//! - [`embedding`]: sentence embeddings (the port, the local e5 model, a remote server).
//! - [`knowledge`]: versioned articles, review, search and answers.
//! - [`speech`]: recognition, VAD, synthesis, voices, domain correction, model files.
//! - [`content`]: the data folders loaded (`dialogs/`, `knowledge/`, `voices/`).
//! - [`understanding`]: the one step that weighs classifier, neighbours, form and knowledge
//!   into the verdict the dialog engine acts on.
//!
//! **The branch and the world outside**
//! - [`ports`]: the core-banking port (sandbox or HTTP) and notifications (outbox).
//! - [`retention`]: the purge job that applies `[retention]` (transcripts, sessions,
//!   device calls, delivered webhooks, expired staff tokens).
//! - [`branch`]: the branch file (calendar, appointments, queue lines), queue numbers,
//!   appointments and reminders.
//! - [`tickets`]: work orders with rules, SLA, history, staff on this node.
//! - [`devices`]: the broker that runs device calls on kiosk peers, and their audit.
//! - [`handoff`]: opening a handoff to a person and its states.
//! - [`actions`]: the server actions flows run, in a registry.
//!
//! **Sessions**
//! - [`live`]: the live sessions of this node and the inputs they take.
//! - [`session`]: one kiosk connection: reader, audio input, turn worker, effects
//!   dispatch, the live side of a handoff, the session store.
//! - [`reports`]: hourly rollups of sessions, journeys, handoffs, queue and tickets, and
//!   the reports read from them.
//! - [`record`]: a session's compliance record (transcript, actions and citations, device
//!   calls, handoffs, tickets with their audit links), every view of it written down.
//!
//! **Composition and edges**
//! - [`validate`]: every data file checked, for `concierge validate` and start-up.
//! - [`state`]: the shared application state. [`startup`]: build, run, shut down.
//! - [`api`]: HTTP routes, pages and the WebSocket upgrades.
//! - [`cli`]: the `concierge` commands. [`client`]: the terminal kiosk client and the load
//!   generator. [`ops`]: offline speech tools.

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
pub mod embedding;
pub mod error;
pub mod handoff;
pub mod knowledge;
pub mod live;
pub mod nlu;
pub mod ops;
pub mod ports;
pub mod record;
pub mod reports;
pub mod retention;
pub mod session;
pub mod speech;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tickets;
pub mod understanding;
pub mod validate;
