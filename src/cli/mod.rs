//! The `concierge` command line: the clap [`Cli`], the list of commands and [`main`]. Each
//! command group has a file of its own with its flags and the code it runs, a thin call
//! into the library; `run` here only starts logging and dispatches.
//!
//! # Layout
//!
//! - [`serve`]: `serve`, the server until Ctrl-C or SIGTERM.
//! - [`validate`]: `validate`, the configuration and every data file checked.
//! - [`doctor`]: `doctor`, what is wrong with this installation and the command that fixes it.
//! - [`migrate`]: `migrate`, the database schema.
//! - [`kiosk`]: `kiosk register|revoke|list`, kiosks and their device tokens.
//! - [`user`]: `user add`, staff accounts.
//! - [`nlu`]: `nlu` and `train`, the understanding offline.
//! - [`sandbox`]: `sandbox seed`, the fake bank behind the core-banking port.
//! - [`knowledge`]: `knowledge import|export|search|golden`.
//! - [`outbox`]: `outbox status|replay`, webhook deliveries of ticket events.
//! - [`audit`]: `audit verify`, the hash chain of ticket events.
//! - [`reports`]: `reports rebuild`, the hourly report rollups.
//! - [`keys`]: `keys rotate|status`, the data keys that seal identifiers at rest.
//! - [`models`]: `models fetch|convert|verify|status`, speech and embedding model files.
//! - [`embed`]: `bench embed`, the latency of the local sentence embedder.
//! - [`bench`]: `bench kiosks|knowledge|asr|embed`, the load generators.
//! - [`eval`]: `eval kiosk`, how well the kiosk understands a question set.
//!
//! `chat` and `transcribe` take their flags from [`crate::client::chat`] and
//! [`crate::ops::asr`], and run there.

pub mod audit;
pub mod bench;
pub mod doctor;
pub mod embed;
pub mod eval;
pub mod keys;
pub mod kiosk;
pub mod knowledge;
pub mod migrate;
pub mod models;
pub mod nlu;
pub mod outbox;
pub mod reports;
pub mod sandbox;
pub mod serve;
pub mod user;
pub mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Overrides, Settings};
use crate::store::Db;
use crate::telemetry::{self, LogFormat};

/// Concierge — the conversational assistant of a bank branch lobby.
///
/// Quick start on a fresh machine (SQLite in ./data, data files from ./dialogs,
/// ./knowledge and ./voices):
///
///   concierge serve                                  # serve on 127.0.0.1:8080
///   concierge kiosk register --id K001 --branch B001 # prints the kiosk's token
///   concierge chat --kiosk K001 --token <TOKEN>      # talk to it from a terminal
#[derive(Parser)]
#[command(name = "concierge", version, verbatim_doc_comment)]
pub struct Cli {
    /// A TOML file whose values override the built-in defaults
    /// (deploy/config/default.toml); CONCIERGE__SECTION__KEY variables override both.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database to use: sqlite://PATH (default sqlite://data/concierge.db) or postgres://…
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "CONCIERGE_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Log format: text for people, json for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API, kiosk WebSocket, metrics) until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Check the configuration and every data file without serving; prints
    /// `file:line: message` for each problem and exits 1 if there is any.
    Validate,
    /// Check the installation and say what is wrong, each with the command that fixes it:
    /// database reachable and migrated, data files, models, espeak-ng, TLS, clock, disk,
    /// listen port, kiosks and staff, webhooks. Exits 1 when a check fails (warnings: 0).
    Doctor(doctor::DoctorArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Register kiosks and manage their device tokens.
    #[command(subcommand)]
    Kiosk(kiosk::KioskCommand),
    /// Manage staff accounts.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Talk to Concierge from this terminal as a kiosk would: type a line and press Enter;
    /// type a number to tap a choice; device requests are answered by simulated devices.
    /// Commands: /quit ends the session, /new starts a new one, /fail DEVICE CODE makes the
    /// next call of a device fail.
    Chat(crate::client::chat::ChatArgs),
    /// Load generators.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Measure understanding: ask a question set as a kiosk would and report right,
    /// clarified, don't-know and wrong answers.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Recognise WAV files (16 kHz mono PCM16) as the kiosk would: one JSON object per line
    /// (`file`, `text` after correction, `raw_text`, `audio_s`, `processing_s`).
    Transcribe(crate::ops::asr::TranscribeArgs),
    /// Understand utterances offline: prints one JSON object per line (intent, ranking,
    /// slots, risk), one per input text. Trains the classifier once, so `--file` with
    /// thousands of lines costs one start-up.
    Nlu(nlu::NluArgs),
    /// The sandbox bank (fake customers, cards, balances) behind the core-banking port.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// The knowledge base: import/export Markdown folders, search, golden questions.
    #[command(subcommand)]
    Knowledge(knowledge::KnowledgeCommand),
    /// Ticket events waiting for, delivered to, or given up on by the webhooks.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// The hash-chained audit log of ticket events.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The hourly report rollups: rebuild a range of days.
    #[command(subcommand)]
    Reports(reports::ReportsCommand),
    /// The data keys that seal identifiers at rest: rotate, status.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Train the intent classifier from dialogs/ and report how it did; with --eval, also
    /// its accuracy on a labelled set kept out of training (tests/nlu/heldout.yaml).
    Train(nlu::TrainArgs),
    /// Speech model files: fetch and convert them (Whisper, Silero VAD), verify, status.
    #[command(subcommand)]
    Models(models::ModelsCommand),
}

impl Command {
    /// Commands whose output is for a person at a terminal (or a pipe): they log only
    /// warnings.
    fn is_quiet(&self) -> bool {
        matches!(
            self,
            Command::Chat(_)
                | Command::Bench(_)
                | Command::Eval(_)
                | Command::Nlu(_)
                | Command::Train(_)
                | Command::Transcribe(_)
                | Command::Doctor(_)
        )
    }
}

/// The global options the commands load their settings with.
struct Global {
    config: Option<PathBuf>,
    database_url: Option<String>,
    /// How logs are written (`serve` installs them after loading its settings).
    log_format: telemetry::LogFormat,
    /// The log filter when `RUST_LOG` is not set.
    log_level: &'static str,
}

impl Global {
    /// The overrides of the built-in defaults; `listen` is `serve --listen`.
    fn overrides(&self, listen: Option<String>) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            listen,
            database_url: self.database_url.clone(),
        }
    }

    /// The settings, listening where the configuration says.
    fn settings(&self) -> anyhow::Result<Settings> {
        self.settings_listening(None)
    }

    /// The settings, listening on `listen` when given.
    fn settings_listening(&self, listen: Option<String>) -> anyhow::Result<Settings> {
        let settings = Settings::load(&self.overrides(listen))?;
        settings.branch.apply_time_zone();
        Ok(settings)
    }

    /// The settings' database, opened (and migrated).
    async fn database(&self) -> anyhow::Result<Db> {
        crate::startup::open_database(&self.settings()?).await
    }
}

/// Parses the command line and runs the command; the exit code tells success.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts logging and hands the command to its file.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let level = if cli.command.is_quiet() {
        "warn"
    } else {
        "info,sqlx=warn"
    };
    // `serve` starts logging once its settings are loaded: they may name a trace collector.
    if !matches!(cli.command, Command::Serve(_)) {
        telemetry::init_tracing(cli.log_format, level, None)?;
    }
    let global = Global {
        config: cli.config,
        database_url: cli.database_url,
        log_format: cli.log_format,
        log_level: level,
    };
    match cli.command {
        Command::Serve(args) => serve::run(&global, args).await,
        Command::Validate => validate::run(&global),
        Command::Doctor(args) => doctor::run(&global, args).await,
        Command::Migrate => migrate::run(&global).await,
        Command::Kiosk(cmd) => kiosk::run(&global, cmd).await,
        Command::User(cmd) => user::run(&global, cmd).await,
        Command::Chat(args) => crate::client::chat::run(args).await,
        Command::Bench(cmd) => bench::run(&global, cmd).await,
        Command::Eval(cmd) => eval::run(&global, cmd).await,
        Command::Transcribe(args) => crate::ops::asr::transcribe(&global.settings()?, &args).await,
        Command::Nlu(args) => nlu::understand(&global, args).await,
        Command::Sandbox(cmd) => sandbox::run(&global, cmd).await,
        Command::Knowledge(cmd) => knowledge::run(&global, cmd).await,
        Command::Outbox(cmd) => outbox::run(&global, cmd).await,
        Command::Reports(cmd) => reports::run(&global, cmd).await,
        Command::Audit(cmd) => audit::run(&global, cmd).await,
        Command::Keys(cmd) => keys::run(&global, cmd).await,
        Command::Train(args) => nlu::train(&global, args),
        Command::Models(cmd) => models::run(&global, cmd).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
