//! `concierge eval …`: measuring how well Concierge understands people. `eval kiosk` asks a
//! question set through the kiosk protocol of an application built in this process
//! ([`crate::client::eval`]) and prints right / clarified / don't-know / wrong, overall
//! and per category, with the misses. It measures and does not gate: the exit code is 0
//! whatever the figures (1 only when the set or the data cannot be loaded).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::Global;
use crate::client::eval::{self, set, EvalApp, EvalError};

/// `concierge eval …`.
#[derive(Subcommand)]
pub enum EvalCommand {
    /// Ask each question of a set (eval/kiosk/*.yaml) as a kiosk would, in a fresh session
    /// each, on an application built in this process with its own temporary SQLite
    /// database (--database-url is not used), and report how the kiosk did.
    Kiosk(KioskEvalArgs),
}

/// `concierge eval kiosk`.
#[derive(clap::Args)]
pub struct KioskEvalArgs {
    /// The question set, e.g. eval/kiosk/dev.yaml.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The branch of the evaluation kiosk.
    #[arg(long, default_value = "B001")]
    pub branch: String,
}

/// Runs one evaluation.
pub(super) async fn run(global: &Global, cmd: EvalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EvalCommand::Kiosk(args) => kiosk(global, args).await,
    }
}

async fn kiosk(global: &Global, args: KioskEvalArgs) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    let catalog = set::catalog(&settings.data.knowledge_dir).map_err(EvalError::Invalid)?;
    let items = set::load(&args.file, &catalog).map_err(EvalError::Invalid)?;
    let (settings, _scratch) = eval::isolated(settings)?;
    let app = EvalApp::start(settings, &args.branch).await?;
    let report = app.run(&args.file.display().to_string(), &items).await;
    app.stop().await;
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
