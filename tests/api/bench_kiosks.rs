//! `concierge bench kiosks` against a live app: it runs a phrase mix at a given pace and
//! reports the server's CPU per turn and memory from `/metrics`; a bad phrases file is
//! refused with its `file:line`; with `--reconnect`, sessions cut off from one node resume
//! on another through the same address (what `scripts/soak` relies on).

use std::process::Output;

use crate::helpers::{concierge, project_root, spawn_app, TestApp};
use kiosk_protocol::PeerRole;

async fn bench(app: &TestApp, token: &str, extra: &[&str]) -> Output {
    let mut cmd = concierge();
    cmd.args(["bench", "kiosks", "--url"])
        .arg(app.http(""))
        .args(["--kiosk", "K001", "--token", token])
        .args(extra);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_kiosks_paces_a_phrase_mix_and_reports_the_servers_cost() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let phrases = project_root().join("benches/lobby-phrases.txt");
    let out = bench(
        &app,
        &token,
        &[
            "--sessions",
            "3",
            "--duration",
            "3",
            "--interval",
            "0.5",
            "--phrases",
            phrases.to_str().unwrap(),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("sessions: 3 requested, 3 connected"),
        "{text}"
    );
    assert!(text.contains("errors: 0"), "{text}");
    // 3 sessions × 3 s at one turn every 0.5 s: about 18 turns (not 9, as at 1 s).
    let turns: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("turns: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((12..=24).contains(&turns), "{turns} turns: {text}");
    let cpu: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("server CPU per turn: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no server CPU figure: {text}"));
    assert!(cpu > 0.0, "{text}");
    assert!(text.contains("an idle session ≈"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_phrases_file_or_pace_is_refused_clearly() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phrases.txt");
    std::fs::write(&file, format!("# mix\n你好\n{}\n", "长".repeat(201))).unwrap();
    let out = bench(&app, &token, &["--phrases", file.to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{}:3:", file.display())) && err.contains("200 characters"),
        "{err}"
    );
    std::fs::write(&file, "# only a comment\n\n").unwrap();
    let out = bench(&app, &token, &["--phrases", file.to_str().unwrap()]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no phrases"));
    let out = bench(&app, &token, &["--interval", "0"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}

/// A TCP forwarder on a fixed port to a node that can be switched; `cut` drops every
/// connection it carries (a node gone, for the client).
struct Switch {
    port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Switch {
    async fn start(target: u16) -> Switch {
        use std::sync::atomic::{AtomicU16, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = std::sync::Arc::new(AtomicU16::new(target));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let to = target.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = to.load(Ordering::SeqCst);
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Switch { port, target, cut }
    }

    /// Drops every connection and sends new ones to `port`.
    fn fail_over(&self, port: u16) {
        self.target.store(port, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reconnect_sessions_cut_off_from_a_node_resume_on_another() {
    use crate::helpers::{fresh_database, spawn_on, Engine};
    let (url, _dir) = fresh_database(Engine::Sqlite).await;
    let first = spawn_on(&url, &project_root(), |_| {}).await;
    let second = spawn_on(&url, &project_root(), |_| {}).await;
    let token = first.kiosk("K001", "B001", PeerRole::Screen).await;
    let switch = Switch::start(first.port).await;
    let mut cmd = concierge();
    cmd.args(["bench", "kiosks", "--url"])
        .arg(format!("http://127.0.0.1:{}", switch.port))
        .args(["--kiosk", "K001", "--token", &token])
        .args(["--sessions", "4", "--duration", "4", "--interval", "0.25"])
        .arg("--reconnect");
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    // Mid-run, every connection is cut and the address now leads to the other node.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    switch.fail_over(second.port);
    let out = run.await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("failover: "))
        .unwrap_or_else(|| panic!("{text}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // broke, resumed, did not, answered on resume, sent again, silently lost, slow, and
    // the 10 of "more than 10 s"
    let [broke, resumed, not_resumed, _, _, silent, _, 10] = numbers[..] else {
        panic!("{line}");
    };
    assert!(broke >= 4, "{text}");
    assert_eq!((resumed, not_resumed, silent), (broke, 0, 0), "{text}");
    assert!(text.contains("errors: 0"), "{text}");
    assert!(text.contains("server cost: not measured"), "{text}");
    first.stop().await;
    second.stop().await;
}
