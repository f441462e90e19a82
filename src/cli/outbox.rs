//! `concierge outbox …`: ticket events waiting for, delivered to, or given up on by the
//! webhooks.

use std::process::ExitCode;

use clap::Subcommand;

use super::Global;
use crate::ports::outbox;

/// `concierge outbox …`.
#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Deliveries by state (pending, delivered, dead).
    Status,
    /// Deliver again: dead deliveries (default), one event, or everything (receivers dedupe
    /// by the X-Concierge-Event-Id header).
    Replay {
        /// Only this event id.
        #[arg(long, value_name = "ID", conflicts_with = "all")]
        event: Option<String>,
        /// Every delivery, also those delivered already.
        #[arg(long)]
        all: bool,
    },
}

/// Runs one `outbox` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: OutboxCommand) -> anyhow::Result<ExitCode> {
    let db = global.database().await?;
    match cmd {
        OutboxCommand::Status => {
            for (state, n) in outbox::counts(&db).await? {
                println!("{state}: {n}");
            }
        }
        OutboxCommand::Replay { event, all } => {
            let filter = match (event, all) {
                (Some(id), _) => outbox::Replay::Event(id),
                (None, true) => outbox::Replay::All,
                (None, false) => outbox::Replay::Dead,
            };
            let n = outbox::replay(&db, filter).await?;
            println!("{n} deliver(ies) queued again; a running server sends them");
        }
    }
    Ok(ExitCode::SUCCESS)
}
