//! Shutdown as an orchestrator drives it: `concierge serve` on PostgreSQL receives SIGTERM.
//! First `/readyz` answers 503 while the node still serves (the drain), then it stops; and
//! when the database has gone away under a running node with a kiosk in mid-session —
//! stopped (connections refused) or hung (connections open, nothing answered) — the process
//! still ends within `server.stop_timeout_secs`.
//!
//! The database goes away through a TCP proxy between the node and the test's PostgreSQL
//! server (shared by every test, so it cannot be stopped itself): cutting the proxy is,
//! for the node, PostgreSQL stopping; freezing it is PostgreSQL hanging.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{concierge, fresh_postgres, Kiosk};

/// What the proxy does with the database's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    /// Forwards both ways.
    Up,
    /// Closes every connection and refuses new ones: the server stopped.
    Stopped,
    /// Keeps connections open and forwards nothing: the server hangs.
    Hung,
}

/// A TCP proxy on 127.0.0.1:0 in front of `upstream` (host:port).
struct Proxy {
    port: u16,
    mode: watch::Sender<Db>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, watching) = watch::channel(Db::Up);
        tokio::spawn(async move {
            let mut stopped = watching.clone();
            loop {
                let (client, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    _ = stopped.wait_for(|m| *m == Db::Stopped) => return,
                };
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, watching.clone()));
                tokio::spawn(pipe(sr, cw, watching.clone()));
            }
        });
        Proxy { port, mode }
    }

    fn set(&self, db: Db) {
        self.mode.send_replace(db);
    }
}

/// Copies `from` to `to` while the database is up; holds what it read once it hangs, and
/// drops both halves (closing the connection) once it is stopped.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Db>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| *m == Db::Stopped) => return,
        };
        let now = *mode.borrow();
        match now {
            Db::Up => {}
            Db::Stopped => return,
            Db::Hung => {
                // Never forwarded; the connection stays open until the test ends.
                let _ = mode.wait_for(|m| *m == Db::Stopped).await;
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `concierge serve` on `database_url`, killed when dropped if still running; its stderr
/// lines as they come.
struct Node {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data key and lookup secret (base64 of 32 bytes): PostgreSQL needs them set.
const KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn command(database_url: &str, args: &[&str]) -> std::process::Command {
    let mut c = concierge();
    c.args(args)
        .env("CONCIERGE__DATABASE__URL", database_url)
        .env("CONCIERGE__SECURITY__DATA_KEYS__K1", KEY)
        .env("CONCIERGE__SECURITY__ACTIVE_KEY", "k1")
        .env("CONCIERGE__SECURITY__LOOKUP_SECRET", KEY)
        .env("CONCIERGE__EMBEDDING__BACKEND", "off")
        .env("CONCIERGE__SPEECH__MODELS_DIR", "/nonexistent")
        .env("CONCIERGE__SERVER__DRAIN_SECS", "2")
        .env("CONCIERGE__SERVER__SHUTDOWN_GRACE_SECS", "3");
    c
}

impl Node {
    /// Started with `server.stop_timeout_secs` = `stop_timeout` (drain 2 s, grace 3 s).
    async fn start(database_url: &str, stop_timeout: u64) -> Node {
        let mut child = command(database_url, &["serve", "--listen", "127.0.0.1:0"])
            .env(
                "CONCIERGE__SERVER__STOP_TIMEOUT_SECS",
                stop_timeout.to_string(),
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(at) = line.strip_prefix("concierge: serving on http://") {
                    let _ = tx.send(at.to_string());
                }
                l.lock().unwrap().push(line);
            }
        });
        let node_log = log.clone();
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("serve did not start: {:?}", node_log.lock().unwrap()));
        Node { child, addr, log }
    }

    fn terminate(&self) -> Instant {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        Instant::now()
    }

    /// Waits up to `limit` for the process to end: its exit code, or None if it still runs.
    async fn exited_within(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// A database URL through the proxy, and the proxy.
async fn database_behind_proxy() -> (String, Proxy) {
    let direct = fresh_postgres().await;
    let url = url::Url::parse(&direct).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    let mut through = url.clone();
    through.set_port(Some(proxy.port)).unwrap();
    (through.to_string(), proxy)
}

/// A kiosk registered on `database_url`, connected to `node`, greeted, with one answered
/// turn behind it.
async fn kiosk_in_session(database_url: &str, node: &Node) -> Kiosk {
    // The command's database connections go through the proxy, which runs on this
    // runtime: wait for it off the runtime's threads.
    let mut register = command(
        database_url,
        &["kiosk", "register", "--id", "K001", "--branch", "B001"],
    );
    let out = tokio::task::spawn_blocking(move || register.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut k = Kiosk::connect(&format!("ws://{}/v1/kiosk/ws", node.addr)).await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token, "capabilities": ["text"]}))
        .await;
    k.recv_type("welcome").await;
    k.recv_type("bot.say").await;
    k.say("你们几点开门").await;
    k
}

async fn readyz(addr: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_readiness_first_then_stops_promptly() {
    let (url, _proxy) = database_behind_proxy().await;
    let mut node = Node::start(&url, 8).await;
    let _kiosk = kiosk_in_session(&url, &node).await;
    assert_eq!(readyz(&node.addr).await.0, 200);

    let signalled = node.terminate();
    // Draining: still serving, but not ready, so the load balancer stops sending kiosks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = readyz(&node.addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["shutting_down"], true, "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    let health = reqwest::get(format!("http://{}/healthz", node.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Drain (2 s) + the kiosk told to go; well before the deadline (8 s), status 0.
    let code = node.exited_within(Duration::from_secs(15)).await;
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "{}", node.log());
    assert!(took >= Duration::from_secs(2), "drained for {took:?}");
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}: {}",
        node.log()
    );
    assert!(node.log().contains("draining"), "{}", node.log());
}

/// The database goes `away` under a node with a kiosk in session and a turn in flight;
/// SIGTERM still ends the process within the deadline, `stop_timeout` seconds. Drain (2 s),
/// grace for the turn (3 s) and closing the pool (at most 2 s) fit in 8 s: the node stops
/// by itself; in 6 s they do not, and the deadline ends it.
async fn stops_in_time_with_the_database(away: Db, stop_timeout: u64) {
    let (url, proxy) = database_behind_proxy().await;
    let mut node = Node::start(&url, stop_timeout).await;
    let mut kiosk = kiosk_in_session(&url, &node).await;

    proxy.set(away);
    // A turn that needs the database while it is gone.
    kiosk
        .send(json!({"type": "user.text", "text": "我想查一下我的预约"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = node.terminate();
    let code = node
        .exited_within(Duration::from_secs(stop_timeout + 6))
        .await;
    let took = signalled.elapsed();
    let log = node.log();
    eprintln!("database {away:?}: exit {code:?} {took:?} after SIGTERM");
    assert!(
        code.is_some(),
        "{away:?}: still running {took:?} after SIGTERM (stop_timeout_secs = {stop_timeout}): {log}"
    );
    assert!(
        took <= Duration::from_secs(stop_timeout + 1),
        "{away:?}: took {took:?}: {log}"
    );
    if stop_timeout >= 8 {
        assert_eq!(code, Some(0), "{away:?}: {log}");
    } else {
        // Only the deadline ends a node that way, and it says so.
        assert_eq!(code, Some(1), "{away:?}: {log}");
        assert!(log.contains("server.stop_timeout_secs"), "{away:?}: {log}");
    }
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_node_in_time_when_postgres_has_stopped() {
    stops_in_time_with_the_database(Db::Stopped, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_node_in_time_when_postgres_hangs() {
    stops_in_time_with_the_database(Db::Hung, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_deadline_ends_a_node_whose_shutdown_hangs() {
    stops_in_time_with_the_database(Db::Hung, 6).await;
}
