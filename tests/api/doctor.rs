//! `concierge doctor`: on a fresh installation it names each missing piece with the command
//! that fixes it, exits 1 when a check fails, and says the same in `--json`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::*;

/// `concierge --database-url URL doctor [--json]` with an empty models folder.
fn doctor(database_url: &str, models: &Path, json: bool) -> Command {
    let mut c = concierge();
    c.arg("--database-url").arg(database_url).arg("doctor");
    if json {
        c.arg("--json");
    }
    c.env("CONCIERGE__SPEECH__MODELS_DIR", models);
    c.env("CONCIERGE__SERVER__LISTEN", "127.0.0.1:0");
    c
}

/// The findings of a `--json` run.
fn findings(out: &Output) -> Vec<Value> {
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
        .as_array()
        .expect("an array")
        .clone()
}

/// The finding of `check`.
fn finding<'a>(all: &'a [Value], check: &str) -> &'a Value {
    all.iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {all:?}"))
}

#[test]
fn doctor_on_a_fresh_installation_names_each_missing_piece_and_its_command() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let url = format!("sqlite://{}", dir.path().join("concierge.db").display());

    // No database yet: the doctor says so and creates nothing.
    let out = doctor(&url, &models, false).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("fail  database   no database file at")
            && text.contains("fix: concierge migrate"),
        "{text}"
    );
    assert!(!dir.path().join("concierge.db").exists());

    let migrated = concierge()
        .args(["--database-url", &url, "migrate"])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");

    let out = doctor(&url, &models, false).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "models are missing: {text}");
    assert!(text.contains("ok    database"), "{text}");
    assert!(text.contains("ok    data "), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {text}"))
    };
    let m = at("fail  models");
    for name in [
        "ggml-base-q8_0.bin",
        concierge::speech::models::SILERO,
        concierge::speech::models::E5,
    ] {
        assert!(lines[m].contains(name), "{}", lines[m]);
    }
    assert_eq!(lines[m + 1].trim(), "fix: concierge models fetch");
    let k = at("warn  kiosks");
    assert!(
        lines[k + 1].contains("fix: concierge kiosk register --id"),
        "{text}"
    );
    let s = at("warn  staff");
    assert!(
        lines[s + 1].contains("fix: concierge user add --name"),
        "{text}"
    );

    // A kiosk and an admin later, and espeak-ng gone: --json says so.
    let k = concierge()
        .args([
            "--database-url",
            &url,
            "kiosk",
            "register",
            "--id",
            "K001",
            "--branch",
            "B001",
        ])
        .output()
        .unwrap();
    assert!(k.status.success(), "{k:?}");
    let u = concierge()
        .args([
            "--database-url",
            &url,
            "user",
            "add",
            "--name",
            "ops",
            "--role",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(u.status.success(), "{u:?}");
    let out = doctor(&url, &models, true)
        .env(
            "CONCIERGE__SPEECH__TTS__ESPEAK_BINARY",
            "/nonexistent/espeak-ng",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = findings(&out);
    for f in &all {
        let status = f["status"].as_str().unwrap();
        assert!(["ok", "warn", "fail"].contains(&status), "{f}");
        assert!(f["check"].is_string() && f["detail"].is_string(), "{f}");
        assert_eq!(f["fix"].is_null(), status == "ok", "{f}");
    }
    assert_eq!(finding(&all, "kiosks")["status"], "ok");
    assert!(finding(&all, "kiosks")["detail"]
        .as_str()
        .unwrap()
        .contains("K001"));
    assert_eq!(finding(&all, "staff")["status"], "ok");
    assert_eq!(finding(&all, "models")["fix"], "concierge models fetch");
    let espeak = finding(&all, "espeak");
    assert_eq!(espeak["status"], "fail", "{espeak}");
    assert!(espeak["fix"]
        .as_str()
        .unwrap()
        .contains("apt-get install espeak-ng"));
}

#[test]
fn doctor_fails_the_database_check_of_an_unreachable_database_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = doctor(
        "postgres://ops:s3cret@127.0.0.1:1/concierge",
        dir.path(),
        true,
    )
    .output()
    .unwrap();
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
    let all = findings(&out);
    let db = finding(&all, "database");
    assert_eq!(db["status"], "fail", "{db}");
    assert!(
        db["detail"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach postgres://127.0.0.1:1/concierge"),
        "{db}"
    );
    assert!(
        db["fix"]
            .as_str()
            .unwrap()
            .contains("pg_isready -h 127.0.0.1 -p 1"),
        "{db}"
    );
    assert!(finding(&all, "kiosks")["detail"]
        .as_str()
        .unwrap()
        .starts_with("not checked"));
}

#[tokio::test]
async fn doctor_tells_a_running_concierge_on_the_port_and_checks_the_webhooks() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[[outbox.webhooks]]\nname = \"up\"\nurl = \"http://127.0.0.1:{}/healthz\"\nsecret = \"k\"\n\n\
             [[outbox.webhooks]]\nname = \"down\"\nurl = \"http://127.0.0.1:{closed_port}/hook\"\nsecret = \"k\"\n",
            app.port
        ),
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("none.db").display());
    let mut cmd = doctor(&url, dir.path(), true);
    cmd.arg("--config").arg(&config);
    cmd.env(
        "CONCIERGE__SERVER__LISTEN",
        format!("127.0.0.1:{}", app.port),
    );
    // The app is served by this test's runtime: wait for the doctor off it.
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let all = findings(&out);
    let port = finding(&all, "port");
    assert_eq!(port["status"], "warn", "{port}");
    assert!(
        port["detail"]
            .as_str()
            .unwrap()
            .contains("running Concierge"),
        "{port}"
    );
    let hooks = finding(&all, "webhooks");
    assert_eq!(hooks["status"], "fail", "{hooks}");
    let detail = hooks["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("down (http://127.0.0.1:{closed_port})")),
        "{detail}"
    );
    assert!(
        !detail.contains("up ("),
        "the reachable one is not listed as unreachable: {detail}"
    );

    // Something else on the port (accepting, never answering) is a failure.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let mut cmd = doctor(&url, dir.path(), true);
    cmd.env(
        "CONCIERGE__SERVER__LISTEN",
        format!("127.0.0.1:{other_port}"),
    );
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let all = findings(&out);
    let port = finding(&all, "port");
    assert_eq!(port["status"], "fail", "{port}");
    assert!(
        port["fix"].as_str().unwrap().contains("[server] listen"),
        "{port}"
    );
    drop(other);
}

#[tokio::test]
async fn doctor_reads_the_clock_and_the_schema_of_postgresql() {
    let url = fresh_postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = secrecy::SecretString::from(url.clone());
    let db = concierge::store::Db::connect(&secret, 2).await.unwrap();
    let before = tokio::task::spawn_blocking({
        let mut cmd = doctor(&url, dir.path(), true);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let all = findings(&before);
    assert!(finding(&all, "database")["detail"]
        .as_str()
        .unwrap()
        .contains("migrations to apply"));
    db.migrate().await.unwrap();
    let mut cmd = doctor(&url, dir.path(), true);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let all = findings(&out);
    assert_eq!(finding(&all, "database")["status"], "ok", "{all:?}");
    let clock = finding(&all, "clock");
    assert_eq!(clock["status"], "ok", "{clock}");
    assert!(
        clock["detail"].as_str().unwrap().contains(" ms "),
        "{clock}"
    );
}
