//! `concierge bench kiosks`: opens N real kiosk WebSocket sessions, each sending one turn
//! per second (starts spread over the first second), and reports turns/s, turn latency
//! percentiles (time from sending `user.text` to receiving its `bot.say`) and errors.

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

/// Runs the load and returns what it measured.
pub async fn measure(args: &BenchArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.sessions > 0, "--sessions must be at least 1");
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
    let start = Arc::new(tokio::sync::Barrier::new(args.sessions + 1));
    let mut tasks = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        let (url, connector, args, shared, gate, start) = (
            url.clone(),
            connector.clone(),
            args.clone(),
            shared.clone(),
            gate.clone(),
            start.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let peer = Peer {
                url: &url,
                connector: &connector,
                args: &args,
            };
            session(i, peer, &shared, &gate, &start).await
        }));
    }
    start.wait().await;
    let began = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let seconds = began.elapsed().as_secs_f64();
    let h = shared.latencies.lock().unwrap();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let report = Report {
        sessions: args.sessions,
        connected: *shared.connected.lock().unwrap(),
        turns: *shared.turns.lock().unwrap(),
        errors: *shared.errors.lock().unwrap(),
        seconds,
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        max_ms: h.max() as f64 / 1000.0,
    };
    Ok(report)
}

/// Where and how one session connects.
#[derive(Clone, Copy)]
struct Peer<'a> {
    url: &'a str,
    connector: &'a kiosk_connect::Connector,
    args: &'a BenchArgs,
}

async fn session(
    i: usize,
    peer: Peer<'_>,
    shared: &Shared,
    gate: &Semaphore,
    start: &tokio::sync::Barrier,
) {
    let error = || *shared.errors.lock().unwrap() += 1;
    let ws = {
        let _permit = gate.acquire().await;
        connect(peer).await
    };
    let args = peer.args;
    let Some(ws) = ws else {
        error();
        start.wait().await;
        return;
    };
    *shared.connected.lock().unwrap() += 1;
    let (mut tx, mut rx) = ws.split();
    start.wait().await;
    // Spread the sessions over the first second.
    let offset = Duration::from_micros((i as u64 * 1_000_000 / args.sessions as u64) % 1_000_000);
    tokio::time::sleep(offset).await;
    let until = Instant::now() + Duration::from_secs(args.duration);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = i;
    // A turn may answer with several bot.say (a journey's steps); only the first of each
    // turn is the latency, the rest carry the same turn id and are skipped.
    let mut last_turn = String::new();
    while Instant::now() < until {
        tick.tick().await;
        let text = PHRASES[n % PHRASES.len()];
        n += 1;
        let msg = serde_json::to_string(&ClientMessage::UserText { text: text.into() }).unwrap();
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
