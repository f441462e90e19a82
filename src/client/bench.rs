//! `concierge bench kiosks`: opens N real kiosk WebSocket sessions, each sending one turn
//! every `--interval` seconds (starts spread over the first interval) from a phrase mix
//! (built in, or `--phrases FILE`), and reports turns/s, turn latency percentiles (time
//! from sending `user.text` to receiving its `bot.say`) and errors — and, from the
//! server's `/metrics` (`[concierge_]process_cpu_seconds_total`, `…resident_memory_bytes`), its
//! CPU per turn and memory, idle and per idle session, which do not depend on how busy the
//! machine running the load is.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use kiosk_protocol::{ClientMessage, PeerRole, ServerMessage};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::kiosk_ws_url;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The Concierge server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent kiosk sessions.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Seconds of sending turns (after all sessions are connected).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds between two turns of one session (a lobby's pace is about 5).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// What the sessions say, one phrase a line (blank lines and `#` comments skipped),
    /// taken in turn by each session from a different starting line. Default: six
    /// built-in phrases.
    #[arg(long, value_name = "FILE")]
    pub phrases: Option<std::path::PathBuf>,
    /// The kiosk the sessions connect as.
    #[arg(long, env = "CONCIERGE_KIOSK")]
    pub kiosk: String,
    /// Its token.
    #[arg(long, env = "CONCIERGE_KIOSK_TOKEN", hide_env_values = true)]
    pub token: String,
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub sessions: usize,
    pub connected: usize,
    pub turns: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// What the server's `/metrics` said, when it said it.
    pub server: Option<ServerCost>,
}

/// The server's own cost, from its `/metrics` before the sessions connected, once they
/// were all connected (idle) and after the load.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCost {
    /// CPU milliseconds the server spent per turn during the load.
    pub cpu_ms_per_turn: f64,
    /// Resident memory before the sessions, with them idle, and after the load (MB).
    pub rss_mb: [f64; 3],
    /// (idle − before) / sessions, in KB: what an idle session holds.
    pub idle_session_kb: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sessions: {} requested, {} connected",
            self.sessions, self.connected
        )?;
        writeln!(
            f,
            "turns: {} in {:.1} s = {:.1} turns/s",
            self.turns,
            self.seconds,
            self.turns as f64 / self.seconds.max(f64::EPSILON)
        )?;
        writeln!(
            f,
            "turn latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )?;
        if let Some(c) = &self.server {
            writeln!(
                f,
                "server CPU per turn: {:.3} ms (process_cpu_seconds_total over the load / turns)",
                c.cpu_ms_per_turn
            )?;
            writeln!(
                f,
                "server resident memory MB: {:.1} before, {:.1} with the sessions idle, {:.1} after; \
                 an idle session ≈ {:.1} KB",
                c.rss_mb[0], c.rss_mb[1], c.rss_mb[2], c.idle_session_kb
            )?;
        } else {
            writeln!(
                f,
                "server cost: not measured (its /metrics has no process_cpu_seconds_total)"
            )?;
        }
        write!(f, "errors: {}", self.errors)?;
        if self.connected < self.sessions {
            write!(
                f,
                "\nnot every session connected: all of them are one kiosk, and a node admits \
                 [live] max_connections_per_kiosk connections per kiosk; on the server under \
                 test set CONCIERGE__LIVE__MAX_CONNECTIONS_PER_KIOSK to at least {}",
                self.sessions
            )?;
        }
        Ok(())
    }
}

/// The built-in phrase mix.
const PHRASES: [&str; 6] = [
    "你好",
    "我想取个号",
    "怎么挂失银行卡",
    "营业时间是几点",
    "谢谢你",
    "呜啦啦",
];

struct Shared {
    latencies: Mutex<Histogram<u64>>,
    turns: Mutex<u64>,
    errors: Mutex<u64>,
    connected: Mutex<usize>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let report = measure(&args).await?;
    println!("{report}");
    Ok(
        if report.errors == 0 && report.connected == report.sessions {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Longest phrases file, in lines and bytes, and longest phrase, in characters.
const MAX_PHRASES: usize = 10_000;
const MAX_PHRASES_BYTES: u64 = 2 * 1024 * 1024;
const MAX_PHRASE_CHARS: usize = 200;

/// The phrases of `path`: one a line, blank lines and `#` comments skipped; errors name
/// `path:line`.
pub fn load_phrases(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{shown}:1: cannot read: {e}"))?
        .len();
    anyhow::ensure!(
        size <= MAX_PHRASES_BYTES,
        "{shown}:1: {size} bytes; a phrases file holds at most {MAX_PHRASES_BYTES}"
    );
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{shown}:1: cannot read as UTF-8 text: {e}"))?;
    let mut phrases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        anyhow::ensure!(
            line.chars().count() <= MAX_PHRASE_CHARS,
            "{shown}:{n}: a phrase of more than {MAX_PHRASE_CHARS} characters"
        );
        anyhow::ensure!(
            !line.chars().any(char::is_control),
            "{shown}:{n}: a control character in the phrase"
        );
        phrases.push(line.to_string());
        anyhow::ensure!(
            phrases.len() <= MAX_PHRASES,
            "{shown}:{n}: more than {MAX_PHRASES} phrases"
        );
    }
    anyhow::ensure!(!phrases.is_empty(), "{shown}:1: no phrases in the file");
    Ok(phrases)
}

/// `process_cpu_seconds_total` and `process_resident_memory_bytes` from the server's
/// `/metrics`, or None when it does not say.
async fn server_figures(client: &reqwest::Client, base: &str) -> Option<(f64, f64)> {
    let url = format!("{}/metrics", base.trim_end_matches('/'));
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    // Concierge's registry prefixes them; other exporters do not.
    let either = |name: &str| value(&format!("concierge_{name}")).or_else(|| value(name));
    Some((
        either("process_cpu_seconds_total")?,
        either("process_resident_memory_bytes")?,
    ))
}

/// Runs the load and returns what it measured.
pub async fn measure(args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.sessions > 0, "--sessions must be at least 1");
    anyhow::ensure!(
        args.interval.is_finite() && (0.01..=3600.0).contains(&args.interval),
        "--interval must be between 0.01 and 3600 seconds"
    );
    let phrases: Arc<Vec<String>> = Arc::new(match &args.phrases {
        Some(path) => load_phrases(path)?,
        None => PHRASES.iter().map(|p| p.to_string()).collect(),
    });
    let metrics_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let before = server_figures(&metrics_client, &args.url).await;
    let url = kiosk_ws_url(&args.url);
    let connector = args.tls.connector()?;
    let shared = Arc::new(Shared {
        latencies: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        turns: Mutex::new(0),
        errors: Mutex::new(0),
        connected: Mutex::new(0),
    });
    // Connect everyone first (at most 64 handshakes at once), then run the clock.
    let gate = Arc::new(Semaphore::new(64));
    // `ready`: every session connected (or failed); `start`: the clock runs.
    let ready = Arc::new(tokio::sync::Barrier::new(args.sessions + 1));
    let start = Arc::new(tokio::sync::Barrier::new(args.sessions + 1));
    let mut tasks = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        let (url, connector, args, shared, gate, phrases) = (
            url.clone(),
            connector.clone(),
            args.clone(),
            shared.clone(),
            gate.clone(),
            phrases.clone(),
        );
        let barriers = (ready.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let peer = Peer {
                url: &url,
                connector: &connector,
                args: &args,
                phrases: &phrases,
            };
            session(i, peer, &shared, &gate, &barriers).await
        }));
    }
    ready.wait().await;
    // Everyone connected and idle: the server's figures now, then the load.
    let idle = server_figures(&metrics_client, &args.url).await;
    start.wait().await;
    let began = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let seconds = began.elapsed().as_secs_f64();
    let after = server_figures(&metrics_client, &args.url).await;
    let turns = *shared.turns.lock().unwrap();
    let server = match (before, idle, after) {
        (Some(b), Some(i), Some(a)) => Some(ServerCost {
            cpu_ms_per_turn: (a.0 - i.0) * 1000.0 / (turns.max(1) as f64),
            rss_mb: [b.1 / 1e6, i.1 / 1e6, a.1 / 1e6],
            idle_session_kb: (i.1 - b.1) / 1000.0 / args.sessions as f64,
        }),
        _ => None,
    };
    let h = shared.latencies.lock().unwrap();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let report = Report {
        sessions: args.sessions,
        connected: *shared.connected.lock().unwrap(),
        turns,
        errors: *shared.errors.lock().unwrap(),
        seconds,
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        max_ms: h.max() as f64 / 1000.0,
        server,
    };
    Ok(report)
}

/// Where and how one session connects.
#[derive(Clone, Copy)]
struct Peer<'a> {
    url: &'a str,
    connector: &'a kiosk_connect::Connector,
    args: &'a BenchArgs,
    phrases: &'a [String],
}

async fn session(
    i: usize,
    peer: Peer<'_>,
    shared: &Shared,
    gate: &Semaphore,
    (ready, start): &(Arc<tokio::sync::Barrier>, Arc<tokio::sync::Barrier>),
) {
    let error = || *shared.errors.lock().unwrap() += 1;
    let ws = {
        let _permit = gate.acquire().await;
        connect(peer).await
    };
    let args = peer.args;
    let Some(ws) = ws else {
        error();
        ready.wait().await;
        start.wait().await;
        return;
    };
    *shared.connected.lock().unwrap() += 1;
    let (mut tx, mut rx) = ws.split();
    ready.wait().await;
    start.wait().await;
    // Spread the sessions over the first interval.
    let every = Duration::from_secs_f64(args.interval);
    let offset = every.mul_f64((i % args.sessions) as f64 / args.sessions as f64);
    tokio::time::sleep(offset).await;
    let until = Instant::now() + Duration::from_secs(args.duration);
    let mut tick = tokio::time::interval(every);
    let mut n = i;
    // A turn may answer with several bot.say (a journey's steps); only the first of each
    // turn is the latency, the rest carry the same turn id and are skipped.
    let mut last_turn = String::new();
    while Instant::now() < until {
        tick.tick().await;
        let text = &peer.phrases[n % peer.phrases.len()];
        n += 1;
        let msg = serde_json::to_string(&ClientMessage::UserText { text: text.clone() }).unwrap();
        let sent = Instant::now();
        if tx.send(Message::Text(msg.into())).await.is_err() {
            error();
            return;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ServerMessage>(&t) {
                    Ok(ServerMessage::BotSay { turn_id, .. }) if turn_id == last_turn => continue,
                    Ok(ServerMessage::BotSay { turn_id, .. }) => {
                        last_turn = turn_id;
                        let us = sent.elapsed().as_micros() as u64;
                        let _ = shared.latencies.lock().unwrap().record(us.max(1));
                        *shared.turns.lock().unwrap() += 1;
                        break;
                    }
                    Ok(ServerMessage::Error { .. }) | Err(_) => {
                        error();
                        break;
                    }
                    Ok(_) => continue,
                },
                Ok(Some(Ok(_))) => continue,
                _ => {
                    error();
                    return;
                }
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
}

/// Connects and completes the hello; the opening bot message is consumed.
async fn connect(peer: Peer<'_>) -> Option<kiosk_connect::Ws> {
    let args = peer.args;
    let mut ws = peer.connector.connect(peer.url).await.ok()?;
    let hello = ClientMessage::Hello {
        kiosk_id: args.kiosk.clone(),
        token: Some(args.token.clone()),
        session_id: None,
        role: PeerRole::Screen,
        capabilities: vec!["text".into(), "choices".into()],
    };
    ws.send(Message::Text(serde_json::to_string(&hello).ok()?.into()))
        .await
        .ok()?;
    let mut welcomed = false;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        if let Message::Text(t) = frame {
            match serde_json::from_str::<ServerMessage>(&t).ok()? {
                ServerMessage::Welcome { .. } => welcomed = true,
                ServerMessage::BotSay { .. } if welcomed => return Some(ws),
                ServerMessage::Error { .. } => return None,
                _ => {}
            }
        }
    }
    None
}
