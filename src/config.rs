//! Layered configuration: the embedded `deploy/config/default.toml`, then an optional file
//! given with `--config`, then environment variables `CONCIERGE__SECTION__KEY`, then command
//! line overrides (`--listen`, `--database-url`). Secrets are wrapped in [`SecretString`] so
//! they never appear in `Debug` output or logs.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults, compiled into the binary so a fresh machine needs no file.
pub const DEFAULT_TOML: &str = include_str!("../deploy/config/default.toml");

/// Declares a settings choice: an enum read from a fixed set of strings (`Name = "wire"`,
/// `| "alias"` for other spellings accepted), with [`FromStr`], `Display` and a
/// `Deserialize` whose error names the values allowed (the configuration loader adds the
/// key). No value falls back to another.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident {
        $($(#[$vdoc:meta])* $variant:ident = $wire:literal $(| $alias:literal)*,)+
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the settings file documents them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as the settings file spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownChoice;

            fn from_str(value: &str) -> Result<$name, UnknownChoice> {
                match value {
                    $($wire $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(UnknownChoice::new(value, &[$($wire),+])),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

choice!(
    /// `[banking] backend`: which implementation of the core-banking port serves journeys.
    BankBackend {
        /// The fake bank in the database (`concierge sandbox seed`).
        Sandbox = "sandbox",
        /// The bank's host over HTTP(S) (`banking.base_url`).
        Http = "http",
    }
);

choice!(
    /// `[speech] asr_backend`: which recogniser hears the customer.
    AsrBackend {
        /// whisper.cpp with a local ggml model (the embedded default).
        Whisper = "whisper",
        /// An OpenAI-compatible transcription API (`speech.openai_base_url`).
        OpenAi = "openai",
        /// No recognition: kiosks work by text.
        Off = "off",
    }
);

choice!(
    /// `[speech.tts] backend`: which engine speaks the replies.
    TtsBackend {
        /// The `espeak-ng` program (the embedded default; `espeak-ng` is accepted too).
        Espeak = "espeak" | "espeak-ng",
        /// An OpenAI-compatible speech API (`speech.tts.openai_base_url`).
        OpenAi = "openai",
        /// No synthesis: kiosks show text only.
        Off = "off",
    }
);

choice!(
    /// `[embedding] backend`: which model turns texts into vectors.
    EmbeddingBackend {
        /// multilingual-e5-small on this machine (`embedding.model`, the embedded default).
        Local = "local",
        /// An OpenAI-compatible embedding API (`embedding.openai_base_url`).
        OpenAi = "openai",
        /// No embeddings: understanding and search stay lexical.
        Off = "off",
    }
);

/// The `engine` of a voice profile (`voices/*.yaml`, data) and the backend that speaks it.
const VOICE_ENGINES: [(&str, TtsBackend); 2] = [
    ("espeak-ng", TtsBackend::Espeak),
    ("openai", TtsBackend::OpenAi),
];

impl TtsBackend {
    /// The backend that speaks voice profiles of `engine` (`espeak-ng` or `openai` as
    /// `voices/*.yaml` write it); `None` for an engine no backend speaks. Profiles and
    /// backends are compared through this function only.
    pub fn for_voice_engine(engine: &str) -> Option<TtsBackend> {
        VOICE_ENGINES
            .iter()
            .find(|(name, _)| *name == engine)
            .map(|(_, backend)| *backend)
    }

    /// How voice profiles name this backend's engine (`None` for `off`).
    pub fn voice_engine(self) -> Option<&'static str> {
        VOICE_ENGINES
            .iter()
            .find(|(_, backend)| *backend == self)
            .map(|(name, _)| *name)
    }
}

/// A settings value that is none of its choice's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{value}` (use {allowed})")]
pub struct UnknownChoice {
    /// The value given (its first 40 characters).
    pub value: String,
    /// The values allowed, quoted: `"sandbox" or "http"`.
    pub allowed: String,
}

impl UnknownChoice {
    fn new(value: &str, allowed: &[&str]) -> UnknownChoice {
        let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        let allowed = match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => quoted.concat(),
        };
        UnknownChoice {
            value: value.chars().take(40).collect(),
            allowed,
        }
    }
}

/// All settings of a Concierge node.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub data: DataSettings,
    pub kiosk: KioskSettings,
    pub auth: AuthSettings,
    pub branch: BranchSettings,
    pub banking: BankingSettings,
    pub knowledge: KnowledgeSettings,
    pub tickets: TicketSettings,
    pub outbox: OutboxSettings,
    pub speech: SpeechSettings,
    pub embedding: EmbeddingSettings,
    pub retention: RetentionSettings,
    pub login: LoginSettings,
    pub live: LiveSettings,
    pub security: SecuritySettings,
    pub audit: AuditSettings,
    pub telemetry: TelemetrySettings,
}

/// Sentence embeddings (`[embedding]`).
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingSettings {
    /// Which model embeds.
    pub backend: EmbeddingBackend,
    /// The converted e5 model, relative to `speech.models_dir` (or absolute).
    pub model: PathBuf,
    /// Threads of one local inference.
    pub threads: usize,
    /// Vectors kept in memory by (kind, text); 0 turns the cache off.
    pub cache_entries: usize,
    /// OpenAI-compatible embedding API (backend = "openai").
    pub openai_base_url: String,
    pub openai_api_key: SecretString,
    pub openai_model: String,
    /// Length of the server's vectors (answers of another length are errors).
    pub openai_dimensions: usize,
    /// Send `query: ` / `passage: ` before each text (false for servers that add them).
    pub openai_prefix: bool,
    /// Longest one call to the server may take.
    pub openai_timeout_ms: u64,
}

impl EmbeddingSettings {
    /// The model file: `model`, relative to `models_dir` unless absolute.
    pub fn model_path(&self, models_dir: &Path) -> PathBuf {
        if self.model.is_absolute() {
            self.model.clone()
        } else {
            models_dir.join(&self.model)
        }
    }

    /// Where vectors computed with the model are kept between runs (the intent examples'):
    /// beside the model file, as they belong to it.
    pub fn cache_dir(&self, models_dir: &Path) -> Option<PathBuf> {
        self.model_path(models_dir)
            .parent()
            .map(|d| d.join("cache"))
    }
}

/// Speech: recognition (ASR), voice activity, correction and synthesis (TTS).
#[derive(Debug, Clone, Deserialize)]
pub struct SpeechSettings {
    /// Where `concierge models fetch` puts model files and where `serve` looks for them.
    pub models_dir: PathBuf,
    /// Which recogniser hears the customer.
    pub asr_backend: AsrBackend,
    /// The whisper ggml model file, relative to `models_dir` (or absolute).
    pub whisper_model: PathBuf,
    /// The Silero VAD ggml model file, relative to `models_dir`; without it an energy-based
    /// detector finds speech.
    pub vad_model: PathBuf,
    /// Threads of one whisper inference.
    pub threads: u32,
    /// Whisper inferences that may run at once on this node (each on its own thread).
    pub workers: u32,
    /// 0 or 1: greedy decoding; more: beam search of this width.
    pub beam_size: u32,
    /// Fit whisper's encoder window to the utterance (fast) instead of its fixed 30 s.
    pub fit_audio_ctx: bool,
    /// Decoding prompt: sets the script (Simplified) and the domain vocabulary.
    pub initial_prompt: String,
    /// Silence that ends an utterance, in milliseconds.
    pub end_silence_ms: u64,
    /// Silence that ends an utterance while the customer is saying digits.
    pub digit_silence_ms: u64,
    /// Speech shorter than this is a backchannel (嗯, 好) and never interrupts the bot.
    pub barge_in_min_ms: u64,
    /// Map near-miss words onto the domain lexicon after recognition.
    pub correction: bool,
    /// OpenAI-compatible transcription API (asr_backend = "openai").
    pub openai_base_url: String,
    pub openai_api_key: SecretString,
    pub openai_model: String,
    /// Synthesis.
    pub tts: TtsSettings,
}

/// Tickets, live handoff and the SLA watcher.
#[derive(Debug, Clone, Deserialize)]
pub struct TicketSettings {
    /// Routing, priority, SLA and auto-close rules (validated by `concierge validate`).
    pub rules_file: PathBuf,
    /// How long a customer waits for a person to accept a handoff before being offered a
    /// queue number or an appointment (the ticket stays queued).
    pub handoff_wait_secs: u64,
    /// The call link of a remote expert; `{ticket}` is replaced by the ticket number.
    pub call_link_template: String,
    /// How often each node checks SLA deadlines.
    pub sla_check_secs: u64,
    /// The longest a node goes without looking for new ticket events: a safety net, as
    /// commits wake the follower at once (other nodes' through PostgreSQL LISTEN/NOTIFY).
    #[serde(default = "default_follow_ms")]
    pub follow_ms: u64,
}

/// Delivery of ticket events to external workflow engines.
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxSettings {
    /// Receivers: each event is delivered to each of them.
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
    /// Attempts before an event goes to the dead-letter state.
    pub max_attempts: u32,
    /// Backoff after the first failure, doubled each time up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Limit of one delivery attempt.
    pub timeout_ms: u64,
    /// How often each node looks for due deliveries.
    pub poll_ms: u64,
}

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// A short name (stored with each delivery).
    pub name: String,
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Concierge-Signature` header.
    pub secret: SecretString,
    /// This receiver is the SMS gateway: it (and only receivers marked so) gets appointment
    /// reminders, which carry the customer's phone number in clear. Every receiver gets
    /// ticket events (masked).
    #[serde(default)]
    pub reminders: bool,
}

impl OutboxSettings {
    /// The names of the receivers that get appointment reminders.
    pub fn reminder_webhooks(&self) -> Vec<String> {
        self.webhooks
            .iter()
            .filter(|w| w.reminders)
            .map(|w| w.name.clone())
            .collect()
    }
}

/// The knowledge base: article limits, how answers are chosen, how the index follows.
#[derive(Debug, Clone, Deserialize)]
pub struct KnowledgeSettings {
    /// Import `data.knowledge_dir` (published) when the database holds no article yet.
    pub seed_when_empty: bool,
    pub max_body_bytes: usize,
    pub max_title_chars: usize,
    /// Most question variants (and most tags) of one article.
    pub max_questions: usize,
    /// Longest question variant, tag or summary, in characters.
    pub max_item_chars: usize,
    /// Longest search text, in characters.
    pub max_query_chars: usize,
    /// The longest a node goes without looking for knowledge changes and due scheduled
    /// publishes (a change wakes it at once: [`crate::store::wake`]).
    pub follow_ms: u64,
    /// A kiosk answers only when the best article matched at least this share of the
    /// question's words…
    pub min_coverage: f32,
    /// …and scored at least this (BM25 with field weights).
    pub min_score: f32,
    /// When the second article scores at least this share of the first, the kiosk asks
    /// which one the customer means.
    pub clarify_ratio: f32,
    /// The `k` of the reciprocal-rank fusion of BM25 and dense hits.
    pub rrf_k: f32,
    /// With an embedder, the kiosk also answers when the best article's best passage has
    /// at least this cosine to the question (and lists an article found by meaning alone
    /// only from there).
    pub min_dense: f32,
    /// …and asks which one is meant when the runner-up's cosine is within this of it.
    pub dense_margin: f32,
}

/// Which core-banking implementation serves the journeys.
#[derive(Debug, Clone, Deserialize)]
pub struct BankingSettings {
    /// Which implementation of the core-banking port serves the journeys.
    pub backend: BankBackend,
    /// With `http`: the base URL of the core-banking endpoints (see `banking::http`).
    pub base_url: String,
    /// With `http`: the bearer token for the host.
    pub api_token: SecretString,
    /// With `http`: the limit of each call, in milliseconds.
    pub timeout_ms: u64,
}

/// How a branch works. Hours, holidays, appointment capacity and queue lines are data in
/// `rules_file` ([`crate::branch::rules`]); these are the service's own settings.
#[derive(Debug, Clone, Deserialize)]
pub struct BranchSettings {
    /// The branch file: calendar, appointments, queue lines.
    pub rules_file: PathBuf,
    /// How often a node looks for appointment reminders that are due.
    pub reminder_check_secs: u64,
    /// Average minutes a teller spends per customer, for the estimated queue wait.
    pub average_service_minutes: u32,
    /// Seconds of customer silence in the middle of a flow before "您还在吗？"; a second
    /// such wait ends the session.
    pub inactivity_secs: u64,
    /// The branch's IANA time zone: dates customers say, opening hours, SLA clocks and
    /// every time the pages show are in it.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    crate::domain::clock::DEFAULT_TIME_ZONE.to_string()
}

impl BranchSettings {
    /// Makes `time_zone` the process's branch zone ([`crate::domain::clock`]). Validated
    /// settings always hold a known zone; an unknown one keeps the current zone.
    pub fn apply_time_zone(&self) {
        if let Ok(zone) = crate::domain::clock::parse_zone(&self.time_zone) {
            crate::domain::clock::set_branch_zone(zone);
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub listen: String,
    /// Browser origins admitted on WebSocket handshakes; `self` means same host as served.
    pub allowed_origins: Vec<String>,
    /// Seconds in-flight turns get to finish after the listener closes.
    pub shutdown_grace_secs: u64,
    /// Seconds `/readyz` answers not ready after a shutdown signal while the node still
    /// serves, so load balancers stop sending new kiosks before it closes its listener.
    #[serde(default = "default_drain_secs")]
    pub drain_secs: u64,
    /// The whole shutdown (drain, in-flight turns, suspending sessions, closing the
    /// database) ends within this many seconds of the signal whatever the database, model
    /// workers or peers are doing: past it `serve` exits with status 1.
    #[serde(default = "default_stop_timeout_secs")]
    pub stop_timeout_secs: u64,
    /// TLS terminated by `serve` itself (`tls_cert`, `tls_key`, `tls_client_ca`).
    #[serde(flatten)]
    pub tls: TlsSettings,
    /// `POST /v1/nlu/parse` (no login needed) admits this many calls a second per node on
    /// average (0: no limit), answering 429 `rate_limited` beyond it.
    #[serde(default = "default_nlu_parse_per_sec")]
    pub nlu_parse_per_sec: f64,
    /// ...and this many at once.
    #[serde(default = "default_nlu_parse_burst")]
    pub nlu_parse_burst: u32,
}

fn default_ninety() -> u32 {
    90
}

fn default_abandoned_hours() -> u32 {
    2
}

fn default_follow_ms() -> u64 {
    1000
}

fn default_drain_secs() -> u64 {
    3
}

fn default_stop_timeout_secs() -> u64 {
    20
}

fn default_nlu_parse_per_sec() -> f64 {
    20.0
}

fn default_nlu_parse_burst() -> u32 {
    40
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// May hold a password (postgres://user:pass@…), hence secret.
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DataSettings {
    pub dialogs_dir: PathBuf,
    pub knowledge_dir: PathBuf,
    pub voices_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KioskSettings {
    pub max_text_frame_bytes: usize,
    pub max_binary_frame_bytes: usize,
    pub max_user_text_chars: usize,
    pub max_utterance_secs: u64,
    /// Audio may arrive at most this many times faster than real time (bursts of 10 s).
    pub max_audio_speed: u32,
    pub session_idle_timeout_secs: u64,
    pub hello_timeout_secs: u64,
    pub device_timeout_ms: u64,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub staff_token_ttl_secs: u64,
}

/// Where settings come from besides the embedded defaults.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or parsed, or a value has the wrong type or is none of
    /// its choices. (Not a `source`: the message already holds it, and `{:#}` would print
    /// it twice.)
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    /// A value parsed but makes no sense.
    #[error("configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> ConfigError {
        ConfigError::Load(e)
    }
}

impl Settings {
    /// Loads defaults → file → environment → overrides, then validates.
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        Self::load_with_env(overrides, true)
    }

    /// As [`Settings::load`]; `use_env: false` ignores the process environment (tests).
    pub fn load_with_env(overrides: &Overrides, use_env: bool) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(file) = &overrides.config_file {
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }
        if use_env {
            builder = builder.add_source(
                config::Environment::with_prefix("CONCIERGE")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("server.allowed_origins")
                    .try_parsing(true),
            );
        }
        if let Some(listen) = &overrides.listen {
            builder = builder.set_override("server.listen", listen.as_str())?;
        }
        if let Some(url) = &overrides.database_url {
            builder = builder.set_override("database.url", url.as_str())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Settings for tests: defaults with the given database and data root, port 0.
    pub fn for_tests(database_url: &str, data_root: &Path) -> Settings {
        let mut s = Self::load_with_env(&Overrides::default(), false).expect("embedded defaults");
        s.server.listen = "127.0.0.1:0".into();
        s.database.url = SecretString::from(database_url.to_string());
        s.data.dialogs_dir = data_root.join("dialogs");
        s.data.knowledge_dir = data_root.join("knowledge");
        s.data.voices_dir = data_root.join("voices");
        s.tickets.rules_file = data_root.join("deploy/config/tickets.yaml");
        s.branch.rules_file = data_root.join("deploy/config/branch.yaml");
        // Tests that need speech turn it on with their own models folder.
        s.speech.asr_backend = AsrBackend::Off;
        s.security = SecuritySettings::for_tests();
        // The embedder stays on with the model that scripts/test fetched (loaded once per
        // process); without it, start-up notes its absence and runs without.
        if let Some(dir) = std::env::var_os("CONCIERGE_MODELS_DIR").filter(|d| !d.is_empty()) {
            s.embedding.model = PathBuf::from(dir).join(&s.embedding.model);
        }
        // The conversation suites simulate every device on the screen (tests of the
        // shipped screen-device policy set it back).
        s.live.screen_devices = vec!["*".into()];
        s
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "server.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:8080",
                    self.server.listen
                ),
            );
        }
        let server = &self.server;
        if server.stop_timeout_secs == 0
            || server.stop_timeout_secs > 3600
            || server.drain_secs + server.shutdown_grace_secs >= server.stop_timeout_secs
        {
            return invalid(
                "server.stop_timeout_secs",
                format!(
                    "{} must be 1..=3600 and more than drain_secs + shutdown_grace_secs ({} + {}): \
                     the stop deadline has to leave the drain and the in-flight turns their time",
                    server.stop_timeout_secs, server.drain_secs, server.shutdown_grace_secs
                ),
            );
        }
        let url = self.database.url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return invalid(
                "database.url",
                "must start with sqlite:// or postgres://".into(),
            );
        }
        if let Some(kind) = self
            .live
            .screen_devices
            .iter()
            .find(|k| IDENTITY_DEVICES.contains(&k.as_str()))
        {
            return invalid(
                "live.screen_devices",
                format!(
                    "`{kind}` reads identities or PINs: it answers only through the kiosk-adapter \
                     (\"*\" simulates every device, for development only)"
                ),
            );
        }
        if self.banking.backend == BankBackend::Http {
            let ok = url::Url::parse(&self.banking.base_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return invalid(
                    "banking.base_url",
                    "with backend = \"http\" it must be an http(s):// URL".into(),
                );
            }
        }
        if self.banking.timeout_ms < 100 {
            return invalid("banking.timeout_ms", "must be at least 100".into());
        }
        let b = &self.branch;
        if b.average_service_minutes == 0 {
            return invalid(
                "branch.average_service_minutes",
                "must be at least 1".into(),
            );
        }
        if b.reminder_check_secs == 0 {
            return invalid("branch.reminder_check_secs", "must be at least 1".into());
        }
        if b.inactivity_secs < 10 {
            return invalid("branch.inactivity_secs", "must be at least 10".into());
        }
        if let Err(e) = crate::domain::clock::parse_zone(&b.time_zone) {
            return invalid("branch.time_zone", e);
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1".into());
        }
        let k = &self.kiosk;
        if k.max_text_frame_bytes < 1024 {
            return invalid("kiosk.max_text_frame_bytes", "must be at least 1024".into());
        }
        if k.max_binary_frame_bytes < 3200 {
            return invalid(
                "kiosk.max_binary_frame_bytes",
                "must hold at least 100 ms of audio (3200 bytes)".into(),
            );
        }
        if k.max_user_text_chars == 0 || k.rate_per_sec == 0 || k.rate_burst == 0 {
            return invalid(
                "kiosk",
                "max_user_text_chars, rate_per_sec and rate_burst must be positive".into(),
            );
        }
        self.validate_embedding()?;
        self.telemetry.validate()?;
        for origin in &self.server.allowed_origins {
            if origin != "self" && origin != "*" && url::Url::parse(origin).is_err() {
                return invalid(
                    "server.allowed_origins",
                    format!("`{origin}` is not an origin like https://kiosk.example.com"),
                );
            }
        }
        Ok(())
    }

    fn validate_embedding(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        let e = &self.embedding;
        if !(1..=64).contains(&e.threads) {
            return invalid("embedding.threads", "must be 1 to 64");
        }
        if e.backend == EmbeddingBackend::OpenAi {
            let ok = url::Url::parse(&e.openai_base_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return invalid(
                    "embedding.openai_base_url",
                    "with backend = \"openai\" it must be an http(s):// URL",
                );
            }
            if !(1..=8192).contains(&e.openai_dimensions) {
                return invalid("embedding.openai_dimensions", "must be 1 to 8192");
            }
            if e.openai_timeout_ms < 100 {
                return invalid("embedding.openai_timeout_ms", "must be at least 100");
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.server.listen.parse().expect("validated at load")
    }

    pub fn device_timeout(&self) -> Duration {
        Duration::from_millis(self.kiosk.device_timeout_ms)
    }
}

/// `[speech.tts]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct TtsSettings {
    /// Which engine speaks. The default voice's `engine` must match (a voice profile is
    /// written for one engine: `cmn` means nothing to an OpenAI server).
    pub backend: TtsBackend,
    /// The default voice profile (file stem in voices/); `<voice>-elder`, when present,
    /// speaks in the kiosk's elder-friendly mode.
    pub voice: String,
    pub espeak_binary: String,
    pub openai_base_url: String,
    pub openai_api_key: SecretString,
    pub openai_model: String,
    /// Longest text synthesised for one reply, in characters of the text read aloud;
    /// longer replies are cut at a sentence end (the screen still shows all of it).
    pub max_chars: usize,
    /// Longest one synthesis may take before it is abandoned (the process killed).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest audio accepted from a backend, in bytes (about 6 minutes at 22 kHz).
    #[serde(default = "default_max_audio_bytes")]
    pub max_audio_bytes: usize,
}

fn default_timeout_ms() -> u64 {
    15_000
}

fn default_max_audio_bytes() -> usize {
    16 * 1024 * 1024
}

/// How long what sessions and staff leave behind is kept (`[retention]`), in days; 0
/// keeps it forever. A purge job on every node applies it.
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    /// Transcript lines, by the time they were said.
    pub transcripts_days: u32,
    /// Ended sessions (with whatever transcript they still have), by when they ended.
    pub ended_sessions_days: u32,
    /// Device calls, by when they were made.
    pub device_calls_days: u32,
    /// Webhook deliveries that succeeded, by when they were delivered.
    pub delivered_outbox_days: u32,
    /// Staff tokens, by when they expired or were revoked.
    pub expired_staff_tokens_days: u32,
    /// Webhook deliveries that gave up (dead), by when they were queued.
    #[serde(default = "default_ninety")]
    pub dead_outbox_days: u32,
    /// Appointments, by their day (the sealed phone goes as soon as the day has passed).
    #[serde(default = "default_ninety")]
    pub appointments_days: u32,
    /// A session with no turn for this many hours is ended as abandoned (its sealed
    /// identifiers go); 0 never. Must exceed the longest live handoff without a turn.
    #[serde(default = "default_abandoned_hours")]
    pub abandoned_session_hours: u32,
    /// Seconds between purges.
    pub every_secs: u64,
}

/// Staff login throttling and password hashing (`[login]`). Throttle state is kept in
/// memory on each node (a restart forgets it; each node counts on its own).
#[derive(Debug, Clone, Deserialize)]
pub struct LoginSettings {
    /// Password hashes computed at once (on the blocking pool); 0: half the cores, at least 1.
    pub hash_concurrency: usize,
    /// Longest a login waits for a hashing slot before it is answered 429 `login_busy`.
    pub hash_wait_ms: u64,
    /// Failed attempts for one account name before it is locked.
    pub max_failures_per_name: u32,
    /// Failed attempts from one client address before it is locked.
    pub max_failures_per_ip: u32,
    /// The first lock, in seconds; each further failure while over the limit doubles it.
    pub lock_secs: u64,
    /// The longest lock, in seconds.
    pub max_lock_secs: u64,
    /// Failures are forgotten after this many quiet seconds.
    pub window_secs: u64,
    /// Names and addresses tracked at most (the oldest are forgotten first).
    pub max_tracked: usize,
    /// Take the client address from the last `X-Forwarded-For` hop (only behind a proxy
    /// that sets it).
    pub trust_forwarded_for: bool,
}

/// Devices that read identities or PINs: only a `devices` peer (the kiosk-adapter) drives
/// them, so `[live] screen_devices` may not name them.
pub const IDENTITY_DEVICES: &[&str] = &[
    "id_card",
    "card_reader",
    "pin_pad",
    "camera",
    "card_dispenser",
];

/// Live connections (`[live]`): how often their credentials are checked again, pings and
/// the dead-peer timeout, the per-kiosk connection cap, what a screen peer may drive.
#[derive(Debug, Clone, Deserialize)]
pub struct LiveSettings {
    /// Every live kiosk and staff connection checks its token again this often (seconds,
    /// at least 1): a revoked, expired or disabled credential closes it within this time.
    pub recheck_secs: u64,
    /// The server pings each kiosk connection this often (seconds, at least 1).
    pub ping_secs: u64,
    /// A kiosk connection silent this long (no frame, no pong), or whose writes stall this
    /// long, is closed (seconds; at least twice `ping_secs`).
    pub dead_peer_secs: u64,
    /// Concurrent connections one kiosk may hold on one node (at least 1).
    pub max_connections_per_kiosk: usize,
    /// Device kinds a `screen` peer may drive when it declares `device:<kind>`; `*` allows
    /// every kind (development only). Identity and PIN devices belong to the adapter.
    pub screen_devices: Vec<String>,
}

impl LiveSettings {
    /// How often a live connection's credentials are checked again.
    pub fn recheck_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.recheck_secs.max(1))
    }

    /// How often the server pings a kiosk.
    pub fn ping_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ping_secs.max(1))
    }

    /// How long a kiosk may stay silent, or a write may stall, before it is closed.
    pub fn dead_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.dead_peer_secs.max(self.ping_secs.max(1) * 2))
    }
}

/// Encryption at rest and lookup hashes (`[security]`): see [`crate::domain::vault`].
#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    /// Data keys by id (`a-z 0-9 _ -`): base64 of 32 random bytes each. Old keys stay
    /// until `concierge keys rotate` has re-sealed everything under the active one.
    #[serde(default)]
    pub data_keys: std::collections::BTreeMap<String, SecretString>,
    /// The key new values are sealed under.
    #[serde(default)]
    pub active_key: String,
    /// The HMAC-SHA256 secret of phone lookups: base64 of at least 32 bytes.
    pub lookup_secret: SecretString,
    /// With no keys configured and a SQLite database, the keyring file generated once
    /// (empty: `keys.toml` beside the database file).
    #[serde(default)]
    pub keys_file: String,
}

/// Why no keyring could be had from the settings.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "security.data_keys, security.active_key and security.lookup_secret must be set \
         (CONCIERGE__SECURITY__DATA_KEYS__<ID>, CONCIERGE__SECURITY__ACTIVE_KEY, \
         CONCIERGE__SECURITY__LOOKUP_SECRET) with a PostgreSQL database"
    )]
    NotConfigured,
    /// The message includes the vault's; not its `source` too, or `{:#}` says it twice.
    #[error("security: {0}")]
    Invalid(crate::domain::vault::VaultError),
}

impl From<crate::domain::vault::VaultError> for KeyringError {
    fn from(e: crate::domain::vault::VaultError) -> Self {
        KeyringError::Invalid(e)
    }
}

impl SecuritySettings {
    /// Fixed, public test keys (never for production).
    pub fn for_tests() -> SecuritySettings {
        let (data_keys, active_key, lookup_secret) = crate::domain::vault::test_keyring_parts();
        SecuritySettings {
            data_keys,
            active_key,
            lookup_secret,
            keys_file: String::new(),
        }
    }

    /// Whether keys are configured (rather than left to the generated file).
    pub fn configured(&self) -> bool {
        !self.data_keys.is_empty()
    }

    /// The keyring for `database_url`: the configured keys; else, for SQLite, the keyring
    /// file (generated once, with a warning naming it); else an error naming the settings.
    pub fn keyring(
        &self,
        database_url: &SecretString,
    ) -> Result<crate::domain::vault::Keyring, KeyringError> {
        use crate::domain::vault::{KeyFile, Keyring};
        if self.configured() {
            return Ok(Keyring::from_encoded(
                &self.data_keys,
                &self.active_key,
                &self.lookup_secret,
            )?);
        }
        let url = database_url.expose_secret();
        let Some(db_path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(KeyringError::NotConfigured);
        };
        let db_path = db_path.split('?').next().unwrap_or_default();
        if db_path.is_empty() || db_path.starts_with(":memory:") {
            return Ok(Keyring::ephemeral("memory"));
        }
        let file = if self.keys_file.is_empty() {
            Path::new(db_path).with_file_name("keys.toml")
        } else {
            PathBuf::from(&self.keys_file)
        };
        let (ring, created) = KeyFile::load_or_create(&file)?;
        if created {
            tracing::warn!(
                file = %file.display(),
                "no data keys configured: generated a keyring file; keep it secret and backed \
                 up (sealed data cannot be read without it), or configure [security] keys"
            );
        }
        Ok(ring)
    }
}

/// TLS terminated by `serve` itself (`[server] tls_cert`, `tls_key`, `tls_client_ca`).
/// Empty paths: plain HTTP, e.g. behind a reverse proxy that terminates TLS
/// (`deploy/nginx/concierge.conf`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TlsSettings {
    /// PEM file of the server's certificate chain (leaf first); with `key`, HTTPS and wss://.
    #[serde(rename = "tls_cert", default)]
    pub cert: PathBuf,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(rename = "tls_key", default)]
    pub key: PathBuf,
    /// PEM file of the CA(s) whose client certificates are required (mutual TLS: every
    /// client, kiosk adapters, screens and staff browsers alike, must present one).
    #[serde(rename = "tls_client_ca", default)]
    pub client_ca: PathBuf,
}

impl TlsSettings {
    /// True when `serve` terminates TLS.
    pub fn enabled(&self) -> bool {
        !self.cert.as_os_str().is_empty() || !self.key.as_os_str().is_empty()
    }
}

/// The audit chain's anchor (`[audit]`).
#[derive(Debug, Clone, Deserialize)]
pub struct AuditSettings {
    /// HMAC-SHA256 key sealing the head of the ticket audit chain at every event, so that a
    /// database insider who rewrites the whole chain is detected by `audit verify`. Empty:
    /// no anchor. A secret: set it with CONCIERGE__AUDIT__ANCHOR_SECRET.
    pub anchor_secret: SecretString,
}

/// Traces over OpenTelemetry (`[telemetry]`).
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector's base URL (`/v1/traces` is appended), e.g.
    /// `http://otel-collector:4318`. Empty: no traces leave the node.
    pub otlp_endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Share of turns traced, 0.0–1.0.
    pub sample_ratio: f64,
    /// Limit of one export request.
    pub timeout_ms: u64,
}

impl TelemetrySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        let endpoint = self.otlp_endpoint.trim();
        if !endpoint.is_empty() {
            let ok = url::Url::parse(endpoint).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none()
            });
            if !ok {
                return invalid(
                    "telemetry.otlp_endpoint",
                    "must be empty or an http(s):// URL like http://otel-collector:4318",
                );
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return invalid("telemetry.sample_ratio", "must be between 0.0 and 1.0");
        }
        if self.service_name.trim().is_empty() || self.service_name.len() > 64 {
            return invalid("telemetry.service_name", "must be 1 to 64 characters");
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return invalid("telemetry.timeout_ms", "must be between 100 and 60000");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_load_and_listen_on_loopback_8080() {
        let s = Settings::load_with_env(&Overrides::default(), false).unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:8080");
        assert_eq!(s.kiosk.max_text_frame_bytes, 65536);
        assert_eq!(s.kiosk.max_binary_frame_bytes, 262144);
    }

    #[test]
    fn screens_may_not_be_given_identity_devices() {
        let mut s = Settings::load_with_env(&Overrides::default(), false).unwrap();
        s.live.screen_devices = vec!["receipt_printer".into(), "pin_pad".into()];
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("live.screen_devices") && e.contains("pin_pad"),
            "{e}"
        );
        s.live.screen_devices = vec!["*".into()];
        assert!(s.validate().is_ok());
    }

    #[test]
    fn a_database_password_never_prints() {
        let o = Overrides {
            database_url: Some("postgres://u:hunter2@localhost/db".into()),
            ..Overrides::default()
        };
        let s = Settings::load_with_env(&o, false).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn telemetry_is_off_by_default_and_a_bad_collector_url_is_refused() {
        let s = Settings::load_with_env(&Overrides::default(), false).unwrap();
        assert_eq!(s.telemetry.otlp_endpoint, "");
        let mut t = s.telemetry.clone();
        t.otlp_endpoint = "http://otel-collector:4318".into();
        assert!(t.validate().is_ok());
        for bad in ["otel-collector:4318", "ftp://otel/", "http://otel/?k=v"] {
            t.otlp_endpoint = bad.into();
            let e = t.validate().unwrap_err().to_string();
            assert!(e.contains("telemetry.otlp_endpoint"), "{bad}: {e}");
        }
        t.otlp_endpoint = String::new();
        t.sample_ratio = 1.5;
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sample_ratio"));
    }

    #[test]
    fn the_stop_deadline_leaves_the_drain_and_the_grace_their_time() {
        let mut s = Settings::load_with_env(&Overrides::default(), false).unwrap();
        assert_eq!(
            (
                s.server.drain_secs,
                s.server.shutdown_grace_secs,
                s.server.stop_timeout_secs
            ),
            (3, 10, 20)
        );
        assert!(s.validate().is_ok());
        for (drain, grace, stop) in [(3, 10, 13), (0, 0, 0), (25, 0, 20), (0, 1, 3601)] {
            s.server.drain_secs = drain;
            s.server.shutdown_grace_secs = grace;
            s.server.stop_timeout_secs = stop;
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("server.stop_timeout_secs"), "{e}");
        }
        s.server.stop_timeout_secs = 2;
        s.server.drain_secs = 0;
        s.server.shutdown_grace_secs = 1;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn a_bad_listen_address_is_refused_with_its_key() {
        let o = Overrides {
            listen: Some("not-an-address".into()),
            ..Overrides::default()
        };
        let err = Settings::load_with_env(&o, false).unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    /// Loads the defaults with `toml` as the config file.
    fn load_file(toml: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        Settings::load_with_env(&o, false)
    }

    #[test]
    fn the_backends_load_typed_from_their_wire_values() {
        let s = load_file(
            "[banking]\nbackend = \"http\"\nbase_url = \"http://127.0.0.1:9/core\"\n\
             [speech]\nasr_backend = \"openai\"\n[speech.tts]\nbackend = \"off\"\n",
        )
        .unwrap();
        assert_eq!(s.banking.backend, BankBackend::Http);
        assert_eq!(s.speech.asr_backend, AsrBackend::OpenAi);
        assert_eq!(s.speech.tts.backend, TtsBackend::Off);
        let d = Settings::load_with_env(&Overrides::default(), false).unwrap();
        assert_eq!(d.banking.backend, BankBackend::Sandbox);
        assert_eq!(d.speech.asr_backend, AsrBackend::Whisper);
        assert_eq!(d.speech.tts.backend, TtsBackend::Espeak);
        // The spelling of the voice engine has always been accepted as a backend too.
        let s = load_file("[speech.tts]\nbackend = \"espeak-ng\"\n").unwrap();
        assert_eq!(s.speech.tts.backend, TtsBackend::Espeak);
    }

    #[test]
    fn the_branch_time_zone_defaults_to_shanghai_and_an_unknown_one_is_refused() {
        let s = Settings::load_with_env(&Overrides::default(), false).unwrap();
        assert_eq!(s.branch.time_zone, "Asia/Shanghai");
        let s = load_file("[branch]\ntime_zone = \"Asia/Hong_Kong\"\n").unwrap();
        assert_eq!(s.branch.time_zone, "Asia/Hong_Kong");
        let err = load_file("[branch]\ntime_zone = \"Beijing\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("branch.time_zone"), "{err}");
        assert!(err.contains("`Beijing` is not an IANA time zone"), "{err}");
    }

    #[test]
    fn a_bad_backend_fails_the_load_naming_the_key_and_the_values_allowed() {
        let cases = [
            (
                "[speech]\nasr_backend = \"whsiper\"\n",
                "speech.asr_backend",
                "`whsiper` (use \"whisper\", \"openai\" or \"off\")",
            ),
            (
                "[banking]\nbackend = \"mainframe\"\n",
                "banking.backend",
                "`mainframe` (use \"sandbox\" or \"http\")",
            ),
            (
                "[speech.tts]\nbackend = \"festival\"\n",
                "speech.tts.backend",
                "`festival` (use \"espeak\", \"openai\" or \"off\")",
            ),
            (
                "[speech]\nasr_backend = \"Whisper\"\n",
                "speech.asr_backend",
                "`Whisper`",
            ),
        ];
        for (toml, key, value) in cases {
            let err = load_file(toml).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{err}");
            assert!(err.contains(value), "{err}");
        }
    }

    #[test]
    fn every_choice_reads_back_its_own_spelling() {
        for b in BankBackend::ALL {
            assert_eq!(b.as_str().parse::<BankBackend>(), Ok(*b));
        }
        for b in AsrBackend::ALL {
            assert_eq!(b.to_string().parse::<AsrBackend>(), Ok(*b));
        }
        for b in TtsBackend::ALL {
            assert_eq!(b.as_str().parse::<TtsBackend>(), Ok(*b));
        }
        let long = "x".repeat(10_000);
        let err = long.parse::<AsrBackend>().unwrap_err();
        assert_eq!(err.value.len(), 40, "a long value is not echoed whole");
    }

    #[test]
    fn voice_engines_and_tts_backends_map_both_ways() {
        for b in TtsBackend::ALL {
            match b.voice_engine() {
                Some(engine) => assert_eq!(TtsBackend::for_voice_engine(engine), Some(*b)),
                None => assert_eq!(*b, TtsBackend::Off),
            }
        }
        assert_eq!(TtsBackend::Espeak.voice_engine(), Some("espeak-ng"));
        assert_eq!(TtsBackend::for_voice_engine("espeak"), None);
        assert_eq!(TtsBackend::for_voice_engine("off"), None);
    }

    #[test]
    fn an_http_bank_needs_an_http_base_url() {
        let err = load_file("[banking]\nbackend = \"http\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("banking.base_url"), "{err}");
    }

    #[test]
    fn a_config_file_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[kiosk]\nrate_per_sec = 5\n").unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let s = Settings::load_with_env(&o, false).unwrap();
        assert_eq!(s.kiosk.rate_per_sec, 5);
        assert_eq!(s.kiosk.rate_burst, 40);
    }
}
