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
    /// A session whose connection breaks (a node stopped or killed) connects again through
    /// the same URL, with backoff for up to 60 s, and resumes its session; the turn in
    /// flight is then either answered by the resumed session's last reply or sent again.
    /// Failover figures are reported; a turn with no reply on an open connection (10 s)
    /// is a silent loss and an error (`scripts/soak`).
    #[arg(long)]
    pub reconnect: bool,
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
    /// With `--reconnect`: what the broken connections came to.
    pub failover: Option<Failover>,
}

/// What happened to sessions whose connection broke (`--reconnect`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failover {
    /// Connections that broke.
    pub broken: u64,
    /// Reconnections that resumed their session.
    pub resumed: u64,
    /// Reconnections that got a new session instead (the old one was lost) or none.
    pub not_resumed: u64,
    /// Turns in flight answered by the resumed session (processed before the break).
    pub answered_on_resume: u64,
    /// Turns in flight that the resumed session had not processed: sent again.
    pub resent: u64,
    /// Turns whose reply took more than 10 s (answered in the end).
    pub slow: u64,
    /// Turns with no reply while the connection stayed open for 60 s: silently lost.
    pub silent: u64,
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
        } else if self.failover.is_some() {
            writeln!(
                f,
                "server cost: not measured (with --reconnect the URL is a balancer in front of \
                 several nodes)"
            )?;
        } else {
            writeln!(
                f,
                "server cost: not measured (its /metrics has no process_cpu_seconds_total)"
            )?;
        }
        if let Some(x) = &self.failover {
            writeln!(
                f,
                "failover: {} connections broke; {} resumed, {} did not; in-flight turns: {} \
                 answered on resume, {} sent again; {} silently lost; {} answered after more \
                 than 10 s",
                x.broken,
                x.resumed,
                x.not_resumed,
                x.answered_on_resume,
                x.resent,
                x.silent,
                x.slow
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
    failover: Mutex<Failover>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let report = measure(&args).await?;
    println!("{report}");
    let failed_over = report
        .failover
        .is_none_or(|f| f.not_resumed == 0 && f.silent == 0);
    Ok(
        if report.errors == 0 && report.connected == report.sessions && failed_over {
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
        failover: Mutex::new(Failover::default()),
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
    // Behind a balancer (`--reconnect` runs against several nodes) /metrics is one node's.
    let server = match (before, idle, after) {
        _ if args.reconnect => None,
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
        failover: args.reconnect.then(|| *shared.failover.lock().unwrap()),
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
    let opened = {
        let _permit = gate.acquire().await;
        connect(peer, None).await
    };
    let args = peer.args;
    let Some((ws, hello)) = opened else {
        error();
        ready.wait().await;
        start.wait().await;
        return;
    };
    *shared.connected.lock().unwrap() += 1;
    let (mut tx, mut rx) = ws.split();
    let mut session_id = hello.session_id;
    // A turn may answer with several bot.say (a journey's steps); only the first of each
    // turn is the latency, the rest carry the same turn id and are skipped.
    let mut last_turn = hello.last_turn;
    ready.wait().await;
    start.wait().await;
    // Spread the sessions over the first interval.
    let every = Duration::from_secs_f64(args.interval);
    let offset = every.mul_f64((i % args.sessions) as f64 / args.sessions as f64);
    tokio::time::sleep(offset).await;
    let until = Instant::now() + Duration::from_secs(args.duration);
    let mut tick = tokio::time::interval(every);
    let mut n = i;
    while Instant::now() < until {
        tick.tick().await;
        // What arrived between turns: a session that ended (a goodbye) starts anew; a
        // connection that broke while idle is resumed.
        match pending(&mut rx, &mut last_turn) {
            Some(Reply::Ended) => {
                let Some((ws, fresh)) = connect(peer, None).await else {
                    error();
                    return;
                };
                (tx, rx) = ws.split();
                (session_id, last_turn) = (fresh.session_id, fresh.last_turn);
            }
            Some(Reply::Broken) if args.reconnect => {
                shared.failover.lock().unwrap().broken += 1;
                match reconnect(peer, &session_id).await {
                    Some((ws, again)) => {
                        (tx, rx) = ws.split();
                        let mut f = shared.failover.lock().unwrap();
                        if again.resumed {
                            f.resumed += 1;
                        } else {
                            f.not_resumed += 1;
                            drop(f);
                            error();
                        }
                        (session_id, last_turn) = (again.session_id, again.last_turn);
                    }
                    None => {
                        shared.failover.lock().unwrap().not_resumed += 1;
                        error();
                        return;
                    }
                }
            }
            Some(Reply::Broken) => {
                error();
                return;
            }
            _ => {}
        }
        let text = &peer.phrases[n % peer.phrases.len()];
        n += 1;
        let msg = serde_json::to_string(&ClientMessage::UserText { text: text.clone() }).unwrap();
        let sent = Instant::now();
        loop {
            let outcome = if tx.send(Message::Text(msg.clone().into())).await.is_err() {
                Reply::Broken
            } else {
                // Without --reconnect a reply later than 10 s is an error, as before; with
                // it (a soak on a loaded machine) a slow reply is counted, and only one that
                // never comes within 60 s is a loss.
                let patience = if args.reconnect { 60 } else { 10 };
                let outcome = reply(&mut rx, &mut last_turn, patience).await;
                if args.reconnect && sent.elapsed() > Duration::from_secs(10) {
                    if let Reply::Said = outcome {
                        shared.failover.lock().unwrap().slow += 1;
                    }
                }
                outcome
            };
            match outcome {
                Reply::Said => {
                    let us = sent.elapsed().as_micros() as u64;
                    let _ = shared.latencies.lock().unwrap().record(us.max(1));
                    *shared.turns.lock().unwrap() += 1;
                    break;
                }
                Reply::Error => {
                    error();
                    break;
                }
                Reply::Ended => {
                    // The reply ended the session (its bot.say came first); a new one
                    // starts at the next turn.
                    let Some((ws, fresh)) = connect(peer, None).await else {
                        error();
                        return;
                    };
                    (tx, rx) = ws.split();
                    (session_id, last_turn) = (fresh.session_id, fresh.last_turn);
                    break;
                }
                Reply::Silent => {
                    error();
                    if args.reconnect {
                        shared.failover.lock().unwrap().silent += 1;
                    }
                    break;
                }
                Reply::Broken if !args.reconnect => {
                    error();
                    return;
                }
                Reply::Broken => {
                    shared.failover.lock().unwrap().broken += 1;
                    let Some((ws, again)) = reconnect(peer, &session_id).await else {
                        shared.failover.lock().unwrap().not_resumed += 1;
                        error();
                        return;
                    };
                    (tx, rx) = ws.split();
                    if !again.resumed {
                        // The session is gone: what it held is lost, and that is a failure.
                        shared.failover.lock().unwrap().not_resumed += 1;
                        error();
                        session_id = again.session_id;
                        last_turn = again.last_turn;
                        break;
                    }
                    shared.failover.lock().unwrap().resumed += 1;
                    if again.last_turn != last_turn {
                        // The resumed session's last reply is this turn's: it was processed.
                        last_turn = again.last_turn;
                        shared.failover.lock().unwrap().answered_on_resume += 1;
                        let us = sent.elapsed().as_micros() as u64;
                        let _ = shared.latencies.lock().unwrap().record(us.max(1));
                        *shared.turns.lock().unwrap() += 1;
                        break;
                    }
                    // Not processed (the node went before storing it): say it again.
                    shared.failover.lock().unwrap().resent += 1;
                }
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
}

/// How a turn ended for the load generator.
enum Reply {
    /// Its first `bot.say` arrived.
    Said,
    /// An `error` (or a frame that is not a server message).
    Error,
    /// Nothing within 10 s while the connection stayed open.
    Silent,
    /// The connection closed or failed (or the server is shutting down).
    Broken,
    /// The conversation ended (`session.end` for a reason other than shutdown).
    Ended,
}

/// Whether a session ended this way comes back by resuming (the server stopped or dropped
/// the connection) rather than by starting anew (the conversation is over).
fn ended(reason: &str) -> Reply {
    match reason {
        "shutdown" | "lagging" => Reply::Broken,
        _ => Reply::Ended,
    }
}

/// What already arrived without waiting: `None` when nothing says the session ended or
/// the connection broke. A `bot.say` the server sent on its own (a handoff that nobody
/// took, a reminder) becomes `last_turn`, so that a resumed session's last reply is not
/// taken for the answer to a turn it never processed.
fn pending<S>(rx: &mut S, last_turn: &mut String) -> Option<Reply>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    use futures_util::FutureExt;
    loop {
        match rx.next().now_or_never()? {
            Some(Ok(Message::Text(t))) => match serde_json::from_str(&t) {
                Ok(ServerMessage::SessionEnd { reason }) => return Some(ended(&reason)),
                Ok(ServerMessage::BotSay { turn_id, .. }) => *last_turn = turn_id,
                _ => {}
            },
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Some(Reply::Broken),
            Some(Ok(_)) => {}
        }
    }
}

/// Waits for the reply to the turn just sent (the first `bot.say` of a new turn) for at
/// most `patience` seconds.
async fn reply<S>(rx: &mut S, last_turn: &mut String, patience: u64) -> Reply
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(patience);
    loop {
        match tokio::time::timeout_at(deadline, rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ServerMessage>(&t) {
                Ok(ServerMessage::BotSay { turn_id, .. }) if turn_id == *last_turn => continue,
                Ok(ServerMessage::BotSay { turn_id, .. }) => {
                    *last_turn = turn_id;
                    return Reply::Said;
                }
                Ok(ServerMessage::SessionEnd { reason }) => return ended(&reason),
                Ok(ServerMessage::Error { .. }) | Err(_) => return Reply::Error,
                Ok(_) => continue,
            },
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return Reply::Broken,
            Ok(Some(Ok(_))) => continue,
            Err(_) => return Reply::Silent,
        }
    }
}

/// Connects again and resumes `session_id`, with backoff for up to 60 s.
async fn reconnect(peer: Peer<'_>, session_id: &str) -> Option<(kiosk_connect::Ws, Hello)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(100);
    while Instant::now() < deadline {
        if let Some(done) = connect(peer, Some(session_id)).await {
            return Some(done);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
    None
}

/// What the hello came to.
struct Hello {
    session_id: String,
    resumed: bool,
    /// The turn of the bot message sent after `welcome` (the opening, or on a resumed
    /// session its last reply).
    last_turn: String,
}

/// Connects and completes the hello (resuming `session_id` if given); the bot message
/// sent after `welcome` is consumed.
async fn connect(peer: Peer<'_>, session_id: Option<&str>) -> Option<(kiosk_connect::Ws, Hello)> {
    let args = peer.args;
    let mut ws = peer.connector.connect(peer.url).await.ok()?;
    let hello = ClientMessage::Hello {
        kiosk_id: args.kiosk.clone(),
        token: Some(args.token.clone()),
        session_id: session_id.map(str::to_string),
        role: PeerRole::Screen,
        capabilities: vec!["text".into(), "choices".into()],
    };
    ws.send(Message::Text(serde_json::to_string(&hello).ok()?.into()))
        .await
        .ok()?;
    let mut welcomed: Option<(String, bool)> = None;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        if let Message::Text(t) = frame {
            match serde_json::from_str::<ServerMessage>(&t).ok()? {
                ServerMessage::Welcome {
                    session_id,
                    resumed,
                    ..
                } => welcomed = Some((session_id.unwrap_or_default(), resumed)),
                ServerMessage::BotSay { turn_id, .. } => {
                    if let Some((session_id, resumed)) = welcomed {
                        return Some((
                            ws,
                            Hello {
                                session_id,
                                resumed,
                                last_turn: turn_id,
                            },
                        ));
                    }
                }
                ServerMessage::Error { .. } => return None,
                _ => {}
            }
        }
    }
    None
}
