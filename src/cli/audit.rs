//! `concierge audit …`: the hash-chained audit log of ticket events.

use std::process::ExitCode;

use clap::Subcommand;

use super::Global;

/// `concierge audit …`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the chain of ticket events; exit 1 at the first link that does not match.
    Verify,
}

/// Runs one `audit` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = cmd;
    let db = global.database().await?;
    match crate::tickets::verify_chain(&db).await? {
        (n, None) => {
            println!("ok: {n} link(s), the chain is intact");
            Ok(ExitCode::SUCCESS)
        }
        (n, Some(broken)) => {
            eprintln!("broken after {n} good link(s): {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}
