//! Dialogs: the data in `dialogs/` (intent rules and response texts), its loader with
//! `file:line` validation, and the engine that turns a customer input into the next bot reply.

pub mod data;
pub mod engine;
pub mod flow;

pub use data::DialogData;
pub use engine::{BotReply, Effect, EffectResult, Engine, Outcome, SessionState, TurnInput};
