//! `concierge reports rebuild --from DATE [--to DATE]`: recomputes the hourly report
//! rollups of a range of days (branch time) from the raw tables, e.g. after an upgrade
//! that adds a measure, or for days older than the job's first catch-up reaches.

use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Subcommand;

use super::Global;
use crate::reports::rollup;

/// `concierge reports …`.
#[derive(Subcommand)]
pub enum ReportsCommand {
    /// Recompute the rollups of every hour from the start of `--from` to the end of `--to`
    /// (default: now). Hours whose sessions retention has purged come out with what is left.
    Rebuild {
        /// First day, `YYYY-MM-DD` (branch time).
        #[arg(long, value_name = "DATE")]
        from: String,
        /// Last day, `YYYY-MM-DD` (branch time); default today.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
    },
}

/// Runs one `reports` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: ReportsCommand) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    settings.branch.apply_time_zone();
    let db = global.database().await?;
    match cmd {
        ReportsCommand::Rebuild { from, to } => {
            let day = |s: &str| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| anyhow::anyhow!("`{s}` is not a date written YYYY-MM-DD"))
            };
            let mut params = std::collections::BTreeMap::new();
            params.insert("from".to_string(), day(&from)?.to_string());
            if let Some(to) = &to {
                params.insert("to".to_string(), day(to)?.to_string());
            }
            let today = crate::domain::clock::now_local().date_naive();
            let w = crate::reports::query::Window::parse(&params, today)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let end = w.to.min(crate::store::now_ms()) - 1;
            let started = std::time::Instant::now();
            let (hours, rows) = rollup::rebuild(&db, w.from, end).await?;
            println!(
                "rebuilt {hours} hour(s) from {} to {}: {rows} row(s) in {:.1} s",
                w.from_day,
                w.to_day,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
