//! `concierge doctor [--json]`: what is wrong with this installation, each finding with the
//! one command that fixes it. It changes nothing: no database file is created, no
//! migration applied, no model fetched.
//!
//! Checks, in the order printed: the configuration; the database (reachable, schema
//! migrated); the data files (`crate::validate::check_all`); the model files the configured
//! backends need (present, then sha256 against `manifest.json`); `espeak-ng` (for the
//! `espeak` TTS backend); TLS coherence (which URLs leave this machine in clear); the clock
//! against PostgreSQL's; free disk space; the listen port; kiosk and staff counts; the
//! webhook receivers. Each check gets at most [`CHECK_LIMIT`]; slow checks run beside the
//! others, so the whole takes a few seconds. Exit code: 1 when a check fails, else 0
//! (warnings alone do not fail).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::Global;
use crate::access::{kiosks, staff};
use crate::config::{AsrBackend, BankBackend, EmbeddingBackend, Settings, TtsBackend};
use crate::speech::models::{self, FileState, ModelFileStatus};
use crate::store::{self, Db};

/// The most one check may take.
pub const CHECK_LIMIT: Duration = Duration::from_secs(3);
/// Below this much free space, the disk check warns.
const MIN_FREE_BYTES: u64 = 1 << 30;
/// A clock further off than this from the database's warns; [`SKEW_FAIL_MS`] fails.
const SKEW_WARN_MS: i64 = 1_000;
const SKEW_FAIL_MS: i64 = 60_000;

/// The flags of `concierge doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Print one JSON array of `{check, status, detail, fix}` instead of lines.
    #[arg(long)]
    json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The check's name (one word).
    pub check: &'static str,
    pub status: Status,
    /// What was found, in one line.
    pub detail: String,
    /// The command (or the one change) that fixes it; `None` when ok.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check and prints the findings; exit 1 when one failed.
pub(super) async fn run(global: &Global, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let findings = match Settings::load(&global.overrides(None)) {
        Ok(settings) => {
            let sources = match &global.config {
                Some(file) => format!("built-in defaults + {} + environment", file.display()),
                None => "built-in defaults + environment".to_string(),
            };
            let mut all = vec![Finding::ok("config", format!("loaded ({sources})"))];
            all.extend(diagnose(&settings).await);
            all
        }
        Err(e) => vec![Finding::fail(
            "config",
            e.to_string(),
            "correct the key named (deploy/config/default.toml documents each), then run \
             `concierge doctor` again",
        )],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            println!("{:<4}  {:<9}  {}", f.status.as_str(), f.check, f.detail);
            if let Some(fix) = &f.fix {
                println!("      fix: {fix}");
            }
        }
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    eprintln!(
        "doctor: {} ok, {} warning(s), {} failure(s)",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail)
    );
    Ok(if count(Status::Fail) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every check after the configuration's, in the order printed.
pub async fn diagnose(settings: &Settings) -> Vec<Finding> {
    let (db_finding, db) = database(settings).await;
    let db = &db;
    let (data, models, espeak, tls, clock, disk, port, kiosks, staff, webhooks) = tokio::join!(
        limited("data", data_files(settings)),
        limited("models", model_files(settings)),
        limited("espeak", espeak(settings)),
        limited("tls", async { tls(settings) }),
        limited("clock", clock(settings, db)),
        limited("disk", async { disk(settings) }),
        limited("port", port(settings)),
        limited("kiosks", kiosk_count(db)),
        limited("staff", staff_count(db)),
        limited("webhooks", webhooks(settings)),
    );
    vec![
        db_finding, data, models, espeak, tls, clock, disk, port, kiosks, staff, webhooks,
    ]
}

/// `check` within [`CHECK_LIMIT`] (and a little for the scheduler), or a warning saying
/// it did not finish.
async fn limited(check: &'static str, f: impl Future<Output = Finding>) -> Finding {
    match tokio::time::timeout(CHECK_LIMIT + Duration::from_millis(250), f).await {
        Ok(finding) => finding,
        Err(_) => Finding::warn(
            check,
            format!("not finished within {} s", CHECK_LIMIT.as_secs()),
            "run `concierge doctor` again; if it persists, the machine is overloaded",
        ),
    }
}

/// Runs blocking work on a thread of its own and waits at most `limit` for it. A thread
/// that runs over is left to finish on its own: it does not hold up the exit.
async fn off_thread<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("doctor".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .ok()?;
    tokio::time::timeout(limit, rx).await.ok()?.ok()
}

// ---------------------------------------------------------------------------------------
// database

/// What the other checks may do with the database.
enum DbState {
    /// Reachable and migrated.
    Ready(Db),
    /// Reachable, but the schema is not this build's.
    NotMigrated,
    /// Not reachable (or no file yet).
    Unavailable,
}

/// The database URL without credentials: `postgres://HOST:PORT/DB` or the SQLite path.
fn shown_url(url: &str) -> String {
    if let Some(path) = store::sqlite_path(url) {
        return path.display().to_string();
    }
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "the configured URL".into(),
    }
}

/// What to check when the database cannot be reached.
fn reach_fix(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.scheme().starts_with("postgres") => format!(
            "start PostgreSQL or correct the URL (`--database-url`, CONCIERGE_DATABASE_URL or \
             `[database] url`); test with `pg_isready -h {} -p {}`",
            u.host_str().unwrap_or("HOST"),
            u.port().unwrap_or(5432)
        ),
        _ => "correct the URL (`--database-url`, CONCIERGE_DATABASE_URL or `[database] url`) \
              and the file's permissions"
            .into(),
    }
}

/// Reachable (one connection, no retries) and migrated.
async fn database(settings: &Settings) -> (Finding, DbState) {
    const CHECK: &str = "database";
    let secret: &SecretString = &settings.database.url;
    let url = secret.expose_secret();
    let shown = shown_url(url);
    if let Some(path) = store::sqlite_path(url) {
        if !path.is_file() {
            return (
                Finding::fail(
                    CHECK,
                    format!("no database file at {shown} yet"),
                    "concierge migrate",
                ),
                DbState::NotMigrated,
            );
        }
    }
    let unreachable = |why: String| {
        (
            Finding::fail(
                CHECK,
                format!("cannot reach {shown}: {why}"),
                reach_fix(url),
            ),
            DbState::Unavailable,
        )
    };
    match tokio::time::timeout(CHECK_LIMIT, Db::probe(secret)).await {
        Err(_) => {
            return unreachable(format!("no answer within {} s", CHECK_LIMIT.as_secs()));
        }
        Ok(Err(e)) => return unreachable(e.to_string()),
        Ok(Ok(())) => {}
    }
    let opened = tokio::time::timeout(CHECK_LIMIT, async {
        let db = Db::connect(secret, 2).await.map_err(|e| e.to_string())?;
        let status = db.migration_status().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((db, status))
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} s", CHECK_LIMIT.as_secs())));
    let (db, status) = match opened {
        Ok(x) => x,
        Err(why) => return unreachable(why),
    };
    if !status.failed.is_empty() {
        return (
            Finding::fail(
                CHECK,
                format!(
                    "{shown}: migration {} failed half-way",
                    status.failed.join(", ")
                ),
                "restore the database from its backup (or repair the failed step by hand), \
                 then `concierge migrate`",
            ),
            DbState::NotMigrated,
        );
    }
    if !status.pending.is_empty() {
        let detail = if status.applied == 0 {
            format!(
                "{shown} reachable but empty: {} migrations to apply",
                status.pending.len()
            )
        } else {
            format!(
                "{shown} reachable; {} migration(s) pending: {}",
                status.pending.len(),
                status.pending.join(", ")
            )
        };
        return (
            Finding::fail(CHECK, detail, "concierge migrate"),
            DbState::NotMigrated,
        );
    }
    if !status.unknown.is_empty() {
        return (
            Finding::warn(
                CHECK,
                format!(
                    "{shown}: migrated by a newer build (versions {:?} unknown here)",
                    status.unknown
                ),
                "upgrade this node to the build the other nodes run",
            ),
            DbState::Ready(db),
        );
    }
    (
        Finding::ok(
            CHECK,
            format!(
                "{shown} reachable, schema up to date ({} migrations)",
                status.applied
            ),
        ),
        DbState::Ready(db),
    )
}

/// Kiosks registered and enabled.
async fn kiosk_count(db: &DbState) -> Finding {
    const CHECK: &str = "kiosks";
    let db = match db_for(CHECK, db) {
        Ok(db) => db,
        Err(f) => return f,
    };
    const FIX: &str =
        "concierge kiosk register --id K001 --branch B001   (prints the kiosk's token once)";
    match kiosks::list(db).await {
        Err(e) => Finding::fail(CHECK, format!("cannot count: {e}"), "concierge migrate"),
        Ok(list) => {
            let enabled: Vec<&str> = list
                .iter()
                .filter(|k| k.enabled)
                .map(|k| k.id.as_str())
                .collect();
            if enabled.is_empty() {
                let disabled = list.len();
                let detail = if disabled == 0 {
                    "no kiosk registered: no kiosk can connect".to_string()
                } else {
                    format!("no enabled kiosk ({disabled} disabled): no kiosk can connect")
                };
                Finding::warn(CHECK, detail, FIX)
            } else {
                let mut names = enabled
                    .iter()
                    .take(5)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                if enabled.len() > 5 {
                    names.push_str(", …");
                }
                Finding::ok(CHECK, format!("{} enabled ({names})", enabled.len()))
            }
        }
    }
}

/// Staff accounts that can log in, and admins among them.
async fn staff_count(db: &DbState) -> Finding {
    const CHECK: &str = "staff";
    let db = match db_for(CHECK, db) {
        Ok(db) => db,
        Err(f) => return f,
    };
    const FIX: &str = "concierge user add --name ops --role admin   (prints a generated password)";
    match staff::count_enabled(db).await {
        Err(e) => Finding::fail(CHECK, format!("cannot count: {e}"), "concierge migrate"),
        Ok((0, _)) => Finding::warn(
            CHECK,
            "no staff account: nobody can log in to the pages or take handoffs",
            FIX,
        ),
        Ok((n, 0)) => Finding::warn(
            CHECK,
            format!("{n} account(s), none with the admin role"),
            FIX,
        ),
        Ok((n, admins)) => Finding::ok(CHECK, format!("{n} account(s), {admins} admin(s)")),
    }
}

/// The database for a check that needs it, or the finding that says why it was skipped.
fn db_for<'a>(check: &'static str, db: &'a DbState) -> Result<&'a Db, Finding> {
    match db {
        DbState::Ready(db) => Ok(db),
        DbState::NotMigrated => Err(Finding::warn(
            check,
            "not checked: the database schema is not migrated",
            "concierge migrate",
        )),
        DbState::Unavailable => Err(Finding::warn(
            check,
            "not checked: the database is not reachable",
            "fix the database check first",
        )),
    }
}

/// This machine's clock against PostgreSQL's `now()` (SQLite shares this machine's clock).
async fn clock(settings: &Settings, db: &DbState) -> Finding {
    const CHECK: &str = "clock";
    if store::sqlite_path(settings.database.url.expose_secret()).is_some() {
        return Finding::ok(CHECK, "n/a (SQLite runs on this machine's clock)");
    }
    let db = match db_for(CHECK, db) {
        Ok(db) => db,
        Err(f) => return f,
    };
    let before = store::now_ms();
    let theirs: Result<i64, sqlx::Error> =
        sqlx::query_scalar("SELECT CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)")
            .fetch_one(&db.pool)
            .await;
    let after = store::now_ms();
    let theirs = match theirs {
        Ok(t) => t,
        Err(e) => {
            return Finding::warn(
                CHECK,
                format!("cannot read the database's clock: {e}"),
                "fix the database check first",
            )
        }
    };
    let skew = theirs - (before + after) / 2;
    let detail = format!(
        "this machine is {} ms {} the database (± {} ms)",
        skew.abs(),
        if skew > 0 { "behind" } else { "ahead of" },
        (after - before) / 2 + 1
    );
    const FIX: &str = "synchronise this machine's clock (and the database server's) with NTP: \
                       `timedatectl set-ntp true`";
    if skew.abs() > SKEW_FAIL_MS {
        Finding::fail(CHECK, detail, FIX)
    } else if skew.abs() > SKEW_WARN_MS {
        Finding::warn(CHECK, detail, FIX)
    } else {
        Finding::ok(CHECK, detail)
    }
}

// ---------------------------------------------------------------------------------------
// files

/// Every data file, as `concierge validate` checks it.
async fn data_files(settings: &Settings) -> Finding {
    const CHECK: &str = "data";
    let s = settings.clone();
    let checked = off_thread(CHECK_LIMIT, move || {
        crate::validate::check_all(&s, &crate::actions::Registry::standard())
            .map(|c| {
                format!(
                    "{} intents, {} responses, {} articles, {} voices, {} ticket types valid",
                    c.content.dialogs.nlu.intents.len(),
                    c.content.dialogs.responses.len(),
                    c.content.articles.len(),
                    c.content.voices.len(),
                    c.rules.types.len()
                )
            })
            .map_err(|errors| {
                let first: Vec<String> = errors.iter().take(3).map(|e| e.to_string()).collect();
                format!(
                    "{} problem(s) in the data files: {}{}",
                    errors.len(),
                    first.join("; "),
                    if errors.len() > 3 { "; …" } else { "" }
                )
            })
    })
    .await;
    match checked {
        Some(Ok(detail)) => Finding::ok(CHECK, detail),
        Some(Err(detail)) => Finding::fail(
            CHECK,
            detail,
            "concierge validate   (lists every problem as file:line: message)",
        ),
        None => Finding::warn(
            CHECK,
            format!("not finished within {} s", CHECK_LIMIT.as_secs()),
            "concierge validate",
        ),
    }
}

/// The model files the configured backends need: present and sound, then their sha256
/// against `manifest.json`.
async fn model_files(settings: &Settings) -> Finding {
    const CHECK: &str = "models";
    const FETCH: &str = "concierge models fetch";
    let started = Instant::now();
    let dir = settings.speech.models_dir.clone();
    let speech = settings.speech.clone();
    let embedding = settings.embedding.clone();
    let statuses = off_thread(CHECK_LIMIT, move || {
        let mut needed: Vec<ModelFileStatus> = Vec::new();
        if speech.asr_backend == AsrBackend::Whisper {
            let st = models::status(&speech.models_dir, &speech.whisper_model, &speech.vad_model);
            needed.push(st.whisper);
            needed.push(st.vad);
        }
        if embedding.backend == EmbeddingBackend::Local {
            needed.push(models::embedding_status(
                &speech.models_dir,
                &embedding.model,
            ));
        }
        needed
    })
    .await;
    let Some(needed) = statuses else {
        return Finding::warn(
            CHECK,
            format!("not checked within {} s", CHECK_LIMIT.as_secs()),
            "concierge models status",
        );
    };
    if needed.is_empty() {
        return Finding::ok(
            CHECK,
            format!(
                "n/a (asr_backend = {}, embedding backend = {}: no local model needed)",
                settings.speech.asr_backend, settings.embedding.backend
            ),
        );
    }
    let missing: Vec<&str> = needed
        .iter()
        .filter(|s| s.state == FileState::Missing)
        .map(|s| s.name.as_str())
        .collect();
    let corrupt: Vec<String> = needed
        .iter()
        .filter_map(|s| match &s.state {
            FileState::Corrupt(c) => Some(format!("{}: {c}", s.name)),
            _ => None,
        })
        .collect();
    if !missing.is_empty() || !corrupt.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing: {}", missing.join(", ")));
        }
        if !corrupt.is_empty() {
            parts.push(format!("corrupt: {}", corrupt.join("; ")));
        }
        return Finding::fail(
            CHECK,
            format!("{} in {}", parts.join("; "), dir.display()),
            FETCH,
        );
    }
    let names: Vec<String> = needed.iter().map(|s| s.name.clone()).collect();
    let left = CHECK_LIMIT.saturating_sub(started.elapsed());
    let verify_dir = dir.clone();
    match off_thread(left, move || models::verify(&verify_dir)).await {
        None => Finding::warn(
            CHECK,
            format!(
                "{} present; checksums not verified within {} s",
                names.join(", "),
                CHECK_LIMIT.as_secs()
            ),
            "concierge models verify",
        ),
        Some(Err(models::ModelError::NoManifest { .. })) => Finding::warn(
            CHECK,
            format!(
                "{} present but unverifiable: no {} in {}",
                names.join(", "),
                models::MANIFEST,
                dir.display()
            ),
            format!("{FETCH}   (records every file's sha256)"),
        ),
        Some(Err(e)) => Finding::fail(CHECK, e.to_string(), FETCH),
        Some(Ok(files)) => {
            let bad: Vec<&ModelFileStatus> = files
                .iter()
                .filter(|f| !f.ok() && names.contains(&f.name))
                .collect();
            match bad.first() {
                None => Finding::ok(
                    CHECK,
                    format!(
                        "{} present and verified (sha256) in {}",
                        names.join(", "),
                        dir.display()
                    ),
                ),
                Some(first) => Finding::fail(
                    CHECK,
                    bad.iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                    first
                        .hint
                        .as_deref()
                        .and_then(|h| h.split('`').nth(1))
                        .unwrap_or(FETCH)
                        .to_string(),
                ),
            }
        }
    }
}

/// `espeak-ng --version`, when the TTS backend is espeak.
async fn espeak(settings: &Settings) -> Finding {
    const CHECK: &str = "espeak";
    let tts = &settings.speech.tts;
    if tts.backend != TtsBackend::Espeak {
        return Finding::ok(CHECK, format!("n/a (TTS backend = {})", tts.backend));
    }
    let run = tokio::process::Command::new(&tts.espeak_binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    const FIX: &str = "apt-get install espeak-ng   (or set `[speech.tts] backend = \"off\"`)";
    match tokio::time::timeout(CHECK_LIMIT, run).await {
        Err(_) => Finding::fail(
            CHECK,
            format!(
                "`{} --version` did not answer within {} s",
                tts.espeak_binary,
                CHECK_LIMIT.as_secs()
            ),
            FIX,
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Finding::fail(
            CHECK,
            format!(
                "`{}` is not installed; the espeak TTS backend needs it",
                tts.espeak_binary
            ),
            FIX,
        ),
        Ok(Err(e)) => Finding::fail(
            CHECK,
            format!("cannot run `{}`: {e}", tts.espeak_binary),
            FIX,
        ),
        Ok(Ok(out)) if !out.status.success() => Finding::fail(
            CHECK,
            format!(
                "`{} --version` exited with {}",
                tts.espeak_binary, out.status
            ),
            FIX,
        ),
        Ok(Ok(out)) => {
            let version = String::from_utf8_lossy(&out.stdout);
            let line = version.lines().next().unwrap_or_default().trim();
            Finding::ok(CHECK, line.chars().take(100).collect::<String>())
        }
    }
}

/// Free space where this node writes: the SQLite database's folder and the models folder.
fn disk(settings: &Settings) -> Finding {
    const CHECK: &str = "disk";
    let mut places: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(db) = store::sqlite_path(settings.database.url.expose_secret()) {
        let folder = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        places.push(("database", folder.to_path_buf()));
    }
    places.push(("models", settings.speech.models_dir.clone()));
    let mut parts = Vec::new();
    let mut low = Vec::new();
    for (what, path) in &places {
        let existing = nearest_existing(path);
        match free_bytes(&existing) {
            Ok(free) => {
                parts.push(format!("{what} {}: {} free", path.display(), gib(free)));
                if free < MIN_FREE_BYTES {
                    low.push(existing.display().to_string());
                }
            }
            Err(e) => parts.push(format!("{what} {}: cannot tell ({e})", path.display())),
        }
    }
    let detail = parts.join("; ");
    if low.is_empty() {
        Finding::ok(CHECK, detail)
    } else {
        Finding::warn(
            CHECK,
            format!("less than 1 GiB free: {detail}"),
            format!(
                "free space on the file system of {} (`df -h {}`); old transcripts go \
                 after `[retention] transcripts_days`",
                low.join(", "),
                low[0]
            ),
        )
    }
}

/// `path`, or its nearest ancestor that exists (a folder made on first start).
fn nearest_existing(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    p
}

/// Bytes an unprivileged process may still write on the file system of `path`.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a NUL-terminated path and `st` a plain C struct statvfs fills.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        st
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

// ---------------------------------------------------------------------------------------
// network

/// Whether `serve`'s own TLS settings (`[server] tls_cert`, `tls_key`, `tls_client_ca`)
/// load, and which configured URLs would carry data off this machine in clear.
fn tls(settings: &Settings) -> Finding {
    const CHECK: &str = "tls";
    let own = &settings.server.tls;
    if let Err(e) = crate::startup::tls::server_config(own) {
        return Finding::fail(
            CHECK,
            format!("serve's TLS settings do not load: {e}"),
            "set [server] tls_cert and tls_key to readable PEM files (both, or neither), \
             tls_client_ca only with them",
        );
    }
    let mut clear: Vec<String> = Vec::new();
    if let Ok(u) = url::Url::parse(secrecy::ExposeSecret::expose_secret(&settings.database.url)) {
        let host = u.host_str().unwrap_or_default().to_string();
        let verified = u
            .query_pairs()
            .any(|(k, v)| k == "sslmode" && (v == "verify-full" || v == "verify-ca"));
        if u.scheme().starts_with("postgres") && !is_loopback_host(&host) && !verified {
            clear.push(format!(
                "the database at {host} without sslmode=verify-full"
            ));
        }
    }
    let mut check_url = |what: String, raw: &str| {
        if let Ok(u) = url::Url::parse(raw) {
            if u.scheme() == "http" && !is_loopback_host(u.host_str().unwrap_or_default()) {
                clear.push(format!(
                    "{what} http://{}",
                    u.host_str().unwrap_or_default()
                ));
            }
        }
    };
    for w in &settings.outbox.webhooks {
        check_url(format!("webhook {}", w.name), &w.url);
    }
    if settings.banking.backend == BankBackend::Http {
        check_url("[banking] base_url".into(), &settings.banking.base_url);
    }
    if settings.speech.asr_backend == AsrBackend::OpenAi {
        check_url(
            "[speech] openai_base_url".into(),
            &settings.speech.openai_base_url,
        );
    }
    if settings.speech.tts.backend == TtsBackend::OpenAi {
        check_url(
            "[speech.tts] openai_base_url".into(),
            &settings.speech.tts.openai_base_url,
        );
    }
    if settings.embedding.backend == EmbeddingBackend::OpenAi {
        check_url(
            "[embedding] openai_base_url".into(),
            &settings.embedding.openai_base_url,
        );
    }
    let listen = settings.listen_addr();
    let exposed = !listen.ip().is_loopback() && !own.enabled();
    if !clear.is_empty() {
        return Finding::warn(
            CHECK,
            format!("sent in clear to another machine: {}", clear.join(", ")),
            "use https:// URLs for every service on another machine, and \
             ?sslmode=verify-full&sslrootcert=… for a PostgreSQL server",
        );
    }
    if exposed {
        return Finding::warn(
            CHECK,
            format!("`serve` listens on {listen} in plain HTTP"),
            "set [server] tls_cert and tls_key, or terminate TLS in front of it (nginx, \
             deploy/nginx/concierge.conf) and set `[server] listen = \"127.0.0.1:8080\"`",
        );
    }
    Finding::ok(
        CHECK,
        if own.enabled() {
            format!("no URL leaves this machine in clear; `serve` on {listen} with TLS")
        } else {
            format!(
                "no URL leaves this machine in clear; `serve` on {listen} (loopback: TLS is \
                 terminated in front of it)"
            )
        },
    )
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The listen address is free, or held by a running Concierge (a warning), or by
/// something else (a failure).
async fn port(settings: &Settings) -> Finding {
    const CHECK: &str = "port";
    let addr = settings.listen_addr();
    let in_use = match std::net::TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            return Finding::ok(CHECK, format!("{addr} is free"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => e,
        Err(e) => {
            return Finding::fail(
                CHECK,
                format!("cannot listen on {addr}: {e}"),
                "choose an address this user may bind: `[server] listen` or \
                 `concierge serve --listen 127.0.0.1:8080`",
            )
        }
    };
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let readyz = async {
        let client = reqwest::Client::builder()
            .timeout(CHECK_LIMIT - Duration::from_millis(500))
            .build()
            .ok()?;
        let body: serde_json::Value = client
            .get(format!("http://{probe}/readyz"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        Some(body.get("status")?.as_str()?.to_string())
    };
    match readyz.await {
        Some(status) => Finding::warn(
            CHECK,
            format!("{addr} is in use by a running Concierge (readyz: {status})"),
            "nothing, if that is this installation's server; else stop it, or give this one \
             another `[server] listen`",
        ),
        None => Finding::fail(
            CHECK,
            format!("{addr} is in use by another program ({in_use})"),
            format!(
                "stop it (`ss -ltnp 'sport = :{}'` names it) or set another `[server] listen`",
                addr.port()
            ),
        ),
    }
}

/// Each webhook receiver answers (any HTTP status: it is reachable) to a HEAD request.
async fn webhooks(settings: &Settings) -> Finding {
    const CHECK: &str = "webhooks";
    let hooks = &settings.outbox.webhooks;
    if hooks.is_empty() {
        return Finding::ok(CHECK, "none configured");
    }
    let client = match reqwest::Client::builder()
        .timeout(CHECK_LIMIT - Duration::from_millis(500))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => return Finding::fail(CHECK, format!("no HTTP client: {e}"), "report a bug"),
    };
    let probes = hooks.iter().map(|w| {
        let client = client.clone();
        async move {
            let target = url::Url::parse(&w.url)
                .map(|u| {
                    format!(
                        "{}://{}:{}",
                        u.scheme(),
                        u.host_str().unwrap_or("?"),
                        u.port_or_known_default().unwrap_or(0)
                    )
                })
                .unwrap_or_else(|_| "an invalid URL".into());
            let result = client.head(&w.url).send().await;
            match result {
                Ok(r) => Ok(format!(
                    "{} ({target}: HTTP {})",
                    w.name,
                    r.status().as_u16()
                )),
                Err(e) => Err(format!("{} ({target}): {}", w.name, request_error(&e))),
            }
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let (reachable, unreachable): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    let unreachable: Vec<String> = unreachable.into_iter().filter_map(|r| r.err()).collect();
    let reachable: Vec<String> = reachable.into_iter().filter_map(|r| r.ok()).collect();
    if unreachable.is_empty() {
        Finding::ok(CHECK, format!("reachable: {}", reachable.join(", ")))
    } else {
        Finding::fail(
            CHECK,
            format!("unreachable: {}", unreachable.join("; ")),
            "start the receiver or let this machine reach it (firewall, proxy), or correct \
             `[[outbox.webhooks]] url`; `concierge outbox status` shows what waits",
        )
    }
}

/// Why a request failed, without the URL (which may carry a token): the innermost cause
/// (`Connection refused (os error 111)`, a DNS failure, a TLS error).
fn request_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", CHECK_LIMIT.as_secs());
    }
    let mut deepest = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        deepest = Some(s);
        source = s.source();
    }
    deepest
        .map(|s| s.to_string())
        .unwrap_or_else(|| "request failed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            shown_url("postgres://app:s3cret@db.bank.example:6432/concierge?sslmode=require"),
            "postgres://db.bank.example:6432/concierge"
        );
        assert_eq!(shown_url("sqlite://data/concierge.db"), "data/concierge.db");
    }

    #[test]
    fn loopback_hosts_are_told_apart() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("[::1]"));
        assert!(!is_loopback_host("workflow.bank.example"));
        assert!(!is_loopback_host("10.0.0.5"));
    }

    #[test]
    fn free_space_is_read_for_an_existing_folder_and_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        let missing = dir.path().join("a/b/c");
        assert_eq!(nearest_existing(&missing), dir.path());
    }

    #[test]
    fn clear_urls_to_other_machines_are_warned_about() {
        let mut s = Settings::load_with_env(&Default::default(), false).unwrap();
        assert_eq!(tls(&s).status, Status::Ok);
        s.outbox.webhooks.push(crate::config::WebhookSettings {
            name: "sms".into(),
            url: "http://sms.bank.example/hook?token=abc".into(),
            secret: SecretString::from("k".to_string()),
            reminders: true,
        });
        let f = tls(&s);
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.detail.contains("webhook sms http://sms.bank.example"),
            "{}",
            f.detail
        );
        assert!(!f.detail.contains("token"), "{}", f.detail);
    }

    #[test]
    fn half_a_tls_configuration_fails() {
        let mut s = Settings::load_with_env(&Default::default(), false).unwrap();
        s.server.tls.cert = "/nonexistent/server.pem".into();
        let f = tls(&s);
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.contains("tls_cert"), "{}", f.detail);
    }
}
