//! Spawning apps and talking to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use concierge::config::Settings;
use concierge::startup::Application;
use concierge::state::AppState;
use futures_util::{SinkExt, StreamExt};
use kiosk_protocol::PeerRole;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// `on_both_engines!(a, b)`: each `async fn a(engine: Engine)` becomes two tests,
/// `sqlite::a` and `postgres::a`.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::Postgres).await })*
        }
    };
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        concierge::telemetry::init_tracing(
            concierge::telemetry::LogFormat::Text,
            "debug,sqlx=warn",
            None,
        )
        .expect("logs");
    }
}

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of `engine`; the returned guard keeps its files alive.
pub async fn fresh_database(engine: Engine) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    match engine {
        Engine::Sqlite => (
            format!("sqlite://{}", dir.path().join("concierge.db").display()),
            dir,
        ),
        Engine::Postgres => (fresh_postgres().await, dir),
    }
}

/// A new database on the PostgreSQL server of `CONCIERGE_TEST_PG_URL`.
pub async fn fresh_postgres() -> String {
    let base = std::env::var("CONCIERGE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "CONCIERGE_TEST_PG_URL is not set: run the suite with ./scripts/test, which starts a \
             throwaway PostgreSQL, or point CONCIERGE_TEST_PG_URL at a server"
        )
    });
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to CONCIERGE_TEST_PG_URL");
    let name = format!("concierge_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::Executor::execute(&mut conn, format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .expect("create test database");
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("a database url ends with /dbname");
    format!("{prefix}/{name}")
}

pub struct TestApp {
    pub port: u16,
    pub state: AppState,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Engine::Sqlite, |_| {}).await
}

pub async fn spawn_app_with(engine: Engine, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let (url, dir) = fresh_database(engine).await;
    let mut app = spawn_on(&url, &project_root(), tweak).await;
    app._dir = Some(dir);
    app
}

/// Starts an app on an existing database (a restart keeps the database).
pub async fn spawn_on(
    database_url: &str,
    data_root: &Path,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    init_logs();
    let mut settings = Settings::for_tests(database_url, data_root);
    tweak(&mut settings);
    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    let state = app.state();
    // With the embedding model, answers depend on the articles' vectors: every test
    // starts once they are all there (a process embeds the seed articles once).
    state.knowledge.embedded().await;
    let stop = CancellationToken::new();
    let s = stop.clone();
    let handle = tokio::spawn(async move {
        app.run_until_stopped(async move { s.cancelled().await })
            .await
            .expect("run app");
    });
    TestApp {
        port,
        state,
        stop,
        handle,
        _dir: None,
    }
}

impl TestApp {
    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/kiosk/ws", self.port)
    }

    /// Registers a kiosk and returns the token for `role`.
    pub async fn kiosk(&self, id: &str, branch: &str, role: PeerRole) -> String {
        concierge::access::kiosks::register(&self.state.db, id, branch, role)
            .await
            .unwrap()
    }

    /// Creates a staff user and logs in over HTTP; returns the bearer token.
    pub async fn staff(&self, name: &str, roles: &str) -> String {
        concierge::access::staff::add_user(&self.state.db, name, roles, "correct horse battery")
            .await
            .unwrap();
        let res = reqwest::Client::new()
            .post(self.http("/v1/auth/login"))
            .json(&json!({"name": name, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn connect(&self) -> Kiosk {
        Kiosk::connect(&self.ws_url()).await
    }

    /// Connects a screen peer of a newly registered kiosk and completes the hello;
    /// returns the client, the session id and the opening message.
    pub async fn new_session(&self, kiosk_id: &str) -> (Kiosk, String, String) {
        let token = self.kiosk(kiosk_id, "B001", PeerRole::Screen).await;
        let mut k = self.connect().await;
        let (sid, _) = k.hello(kiosk_id, &token, None).await;
        (k, sid, token)
    }

    /// GET `path` with a staff bearer token; the JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        reqwest::Client::new()
            .get(self.http(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POST a JSON body with a staff bearer token; the status and the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        let res = reqwest::Client::new()
            .post(self.http(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("app stops")
            .unwrap();
    }
}

/// A kiosk peer over a real WebSocket.
pub struct Kiosk {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Kiosk {
    pub async fn connect(url: &str) -> Kiosk {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Kiosk { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    /// The next JSON message; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t).expect("server sends JSON")
                }
                Some(Ok(Message::Close(c))) => panic!("connection closed: {c:?}"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// Skips messages until one of `kind` arrives.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let m = self.recv().await;
            if m["type"] == kind {
                return m;
            }
        }
    }

    /// Expects an error frame with `code` next (skipping nothing).
    pub async fn expect_error(&mut self, code: &str) {
        let m = self.recv().await;
        assert_eq!(m["type"], "error", "expected an error {code}, got {m}");
        assert_eq!(m["code"], code, "{m}");
        assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()));
    }

    /// Waits for the server to close; returns the close code.
    pub async fn expect_closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(c))) => return c.map(|c| c.code.into()),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    }

    /// Says hello as a screen; returns the session id and whether it was resumed.
    pub async fn hello(
        &mut self,
        kiosk_id: &str,
        token: &str,
        session_id: Option<&str>,
    ) -> (String, bool) {
        self.send(json!({"type": "hello", "kiosk_id": kiosk_id, "token": token, "session_id": session_id, "capabilities": ["text", "choices"]}))
            .await;
        let w = self.recv().await;
        assert_eq!(w["type"], "welcome", "{w}");
        assert_eq!(w["protocol"], 1);
        (
            w["session_id"].as_str().unwrap().to_string(),
            w["resumed"].as_bool().unwrap(),
        )
    }

    /// Sends a sentence and returns the bot's reply.
    pub async fn say(&mut self, text: &str) -> Value {
        self.send(json!({"type": "user.text", "text": text})).await;
        self.recv_type("bot.say").await
    }
}

/// The `concierge` binary, run from the project root as an operator would.
pub fn concierge() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_concierge"));
    c.current_dir(project_root());
    c.env_remove("RUST_LOG");
    c
}

/// Runs `cmd` with `input` on its standard input; its output.
pub fn run_with_stdin(mut cmd: std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The fetched speech models (`CONCIERGE_MODELS_DIR`, set by scripts/test after
/// `concierge models fetch`). Without them a test is skipped with a printed reason, unless
/// `CONCIERGE_REQUIRE_MODELS=1` (set by scripts/test when the fetch worked): then it fails.
pub fn models_dir(test: &str) -> Option<PathBuf> {
    let manifest = concierge::speech::models::MANIFEST;
    let dir = std::env::var_os("CONCIERGE_MODELS_DIR").map(PathBuf::from);
    if let Some(d) = dir.as_ref().filter(|d| d.join(manifest).is_file()) {
        return Some(d.clone());
    }
    let why = match &dir {
        Some(d) => format!("no {manifest} in {}", d.display()),
        None => "CONCIERGE_MODELS_DIR is not set".to_string(),
    };
    if std::env::var("CONCIERGE_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("{test}: model files required (CONCIERGE_REQUIRE_MODELS=1) but {why}");
    }
    eprintln!("skipped {test}: {why} (run scripts/test, which fetches them)");
    None
}

/// The app's log lines as production writes them (JSON, one object a line), captured in
/// memory for the test that holds the guard of [`CapturedLogs::start`]. The subscriber is
/// the thread's default: a `#[tokio::test]` runs the app's tasks on its own thread, so
/// every line of its app is caught (and no other test's).
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Starts capturing at debug level (sqlx and the HTTP stack at info).
    pub fn start() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        static INERT: std::sync::Once = std::sync::Once::new();
        INERT.call_once(|| {
            // Ignored if something else set a global subscriber first.
            let _ = tracing::subscriber::set_global_default(Inert);
        });
        let logs = CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,sqlx=info,hyper=info,hyper_util=info,h2=info,tower=info,reqwest=info,tungstenite=info,tokio_tungstenite=info",
            ))
            .with_writer(logs.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (logs, guard)
    }

    /// Every line captured so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The process's global subscriber in the tests: it records nothing, but is interested in
/// every callsite "sometimes". tracing caches one interest per callsite for the whole process,
/// computed by the first thread that reaches it; without this, a test running without a
/// subscriber could cache "never" for a callsite and blind a parallel test that captures
/// logs ([`CapturedLogs`]) — its events would never be built.
struct Inert;

impl tracing::Subscriber for Inert {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
