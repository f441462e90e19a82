//! `concierge bench …`: the load generators (kiosk sessions, knowledge search, speech
//! recognition, sentence embeddings, tickets, reports); each lives with what it measures.

use std::process::ExitCode;

use clap::Subcommand;

use super::Global;

/// `concierge bench …`.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Open N kiosk sessions that each send one turn per second; print turns/s, latency
    /// percentiles and errors.
    Kiosks(crate::client::bench::BenchArgs),
    /// Generate N knowledge articles, then time a full rebuild, searches, and publish →
    /// searchable on this node and on a second node following the same database.
    Knowledge(crate::knowledge::bench::KnowledgeBenchArgs),
    /// Recognise clips and print, per clip, audio seconds, processing seconds, real-time
    /// factor and character error rate against their expected texts.
    Asr(crate::ops::asr::AsrBenchArgs),
    /// Embed single utterances with the local e5 model and print p50/p95/p99 latency and
    /// tokens/s, one batch's time, the load time and the memory the model added.
    Embed(super::embed::EmbedBenchArgs),
    /// Time ticket creation with a case packet (p50/p95/p99), then the SLA watcher's pass
    /// over N open tickets beside a read of every open ticket.
    Tickets(crate::tickets::bench::TicketBenchArgs),
    /// Write N ended sessions with their journey marks over D days, then time the rollup of
    /// every hour and the reports over the whole window.
    Reports(crate::reports::bench::ReportsBenchArgs),
}

/// Runs one load generator.
pub(super) async fn run(global: &Global, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Embed(args) => super::embed::bench(global.settings()?, args).await,
        BenchCommand::Asr(args) => crate::ops::asr::bench(&global.settings()?, &args).await,
        BenchCommand::Knowledge(args) => {
            crate::knowledge::bench::run(global.settings()?, args).await
        }
        BenchCommand::Reports(args) => crate::reports::bench::run(global.settings()?, args).await,
        BenchCommand::Tickets(args) => crate::tickets::bench::run(global.settings()?, args).await,
        BenchCommand::Kiosks(args) => {
            crate::startup::raise_fd_limit();
            crate::client::bench::run(args).await
        }
    }
}
