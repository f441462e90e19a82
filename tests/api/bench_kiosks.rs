//! `concierge bench kiosks` against a live app: it runs a phrase mix at a given pace and
//! reports the server's CPU per turn and memory from `/metrics`; a bad phrases file is
//! refused with its `file:line`.

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
