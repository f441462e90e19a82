//! `concierge migrate`: create or upgrade the database schema, then exit.

use std::process::ExitCode;

use super::Global;

/// Opens the database, which runs the migrations.
pub(super) async fn run(global: &Global) -> anyhow::Result<ExitCode> {
    global.database().await?;
    println!("ok: database schema is up to date");
    Ok(ExitCode::SUCCESS)
}
