//! `concierge sandbox …`: the sandbox bank (fake customers, cards, balances) behind the
//! core-banking port.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::Global;

/// `concierge sandbox …`.
#[derive(Subcommand)]
pub enum SandboxCommand {
    /// Load fake customers and cards into the database (replacing those with the same id).
    Seed {
        /// The seed file.
        #[arg(
            long,
            default_value = "deploy/sandbox/customers.yaml",
            value_name = "FILE"
        )]
        file: PathBuf,
    },
}

/// Runs one `sandbox` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: SandboxCommand) -> anyhow::Result<ExitCode> {
    let SandboxCommand::Seed { file } = cmd;
    let db = global.database().await?;
    let (customers, cards) = crate::ports::banking::sandbox::SandboxBank::new(db)
        .seed(&file)
        .await?;
    println!(
        "sandbox bank: {customers} customers and {cards} cards loaded from {}",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}
