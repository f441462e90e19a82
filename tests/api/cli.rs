//! The `concierge` binary as an operator uses it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kiosk_protocol::PeerRole;

use crate::helpers::*;

/// `out` of a command that must have succeeded (else the test fails with its stderr).
fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn validate_accepts_the_project_data() {
    let out = succeeded(concierge().arg("validate").output().unwrap());
    assert!(String::from_utf8_lossy(&out.stdout).contains("32 intents"));
}

#[test]
fn validate_reports_every_bad_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["dialogs", "knowledge", "voices"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy(
        project_root().join("dialogs/responses.yaml"),
        root.join("dialogs/responses.yaml"),
    )
    .unwrap();
    std::fs::write(
        root.join("dialogs/intents.yaml"),
        "intents:\n  - name: greet\n    exact: [你好]\n  - name: teleport\n    exact: [传送]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("knowledge/a.md"),
        "---\nid: a\ntitle: T\naudience: martians\n---\nbody\n",
    )
    .unwrap();
    std::fs::write(
        root.join("voices/v.yaml"),
        "name: v\nengine: espeak-ng\nvoice: cmn\nrate: 1000\npitch: 50\n",
    )
    .unwrap();
    let config = root.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndialogs_dir = {:?}\nknowledge_dir = {:?}\nvoices_dir = {:?}\n",
            root.join("dialogs"),
            root.join("knowledge"),
            root.join("voices")
        ),
    )
    .unwrap();
    let out = concierge()
        .arg("validate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("intents.yaml:4: unknown intent `teleport`"),
        "{err}"
    );
    assert!(err.contains("a.md:4: audience `martians`"), "{err}");
    assert!(err.contains("v.yaml:4: rate 1000"), "{err}");
}

#[test]
fn a_bad_config_value_is_named() {
    let out = concierge()
        .args(["validate"])
        .env("CONCIERGE__SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[test]
fn kiosk_register_prints_a_token_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let out = concierge()
        .args([
            "kiosk",
            "register",
            "--id",
            "K7",
            "--branch",
            "B7",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    let out = succeeded(out);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("ck_"));
    let db_bytes = std::fs::read(dir.path().join("c.db")).unwrap();
    let wal = std::fs::read(dir.path().join("c.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for bytes in [&db_bytes, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the plain token is stored"
        );
    }
    let out = concierge()
        .args(["kiosk", "list", "--database-url", &url])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("K7\tB7\tenabled"));
}

#[test]
fn user_add_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let mut cmd = concierge();
    cmd.args([
        "user",
        "add",
        "--name",
        "zhang",
        "--role",
        "teller,admin",
        "--password-stdin",
        "--database-url",
        &url,
    ]);
    let out = succeeded(run_with_stdin(cmd, b"a good long password\n"));
    assert!(out.stdout.is_empty(), "nothing secret is printed");
    let out = concierge()
        .args([
            "user",
            "add",
            "--name",
            "li",
            "--role",
            "janitor",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role `janitor`"));
}

/// `concierge chat` against `app` as kiosk K001, keeping its session id in `session_file`.
fn chat_as_k001(app: &TestApp, token: &str, session_file: &Path) -> Command {
    let mut chat = concierge();
    chat.args([
        "chat",
        "--url",
        &app.http(""),
        "--kiosk",
        "K001",
        "--token",
        token,
        "--session-file",
    ])
    .arg(session_file);
    chat
}

#[tokio::test]
async fn chat_holds_a_session_and_a_second_chat_resumes_it() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let dir = tempfile::tempdir().unwrap();
    let session_file = dir.path().join("chat.session");
    let chat = chat_as_k001(&app, &token, &session_file);
    let out = tokio::task::spawn_blocking(move || run_with_stdin(chat, "你好\n3\n".as_bytes()))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("小安：您好！请问有什么可以帮您？"),
        "{stdout}"
    );
    assert!(stdout.contains("[点选：我能办什么]"), "{stdout}");
    let sid = std::fs::read_to_string(&session_file).unwrap();
    assert!(stdout.contains(sid.trim()));

    // A second chat resumes the same session.
    let mut chat = chat_as_k001(&app, &token, &session_file);
    let out = tokio::task::spawn_blocking(move || chat.stdin(Stdio::null()).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("（已恢复）"), "{stdout}");
}

#[tokio::test]
async fn chat_answers_device_requests_from_its_simulated_devices() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let admin = app.staff("ops", "admin").await;
    let dir = tempfile::tempdir().unwrap();
    let session_file = dir.path().join("chat.session");
    let mut child = chat_as_k001(&app, &token, &session_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if !app.state.broker.devices_of("K001").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (_, body) = app
        .post_json(
            "/v1/admin/kiosks/K001/devices/invoke",
            &admin,
            serde_json::json!({"device": "queue_printer", "action": "print_ticket"}),
        )
        .await;
    assert_eq!(body["ok"], true, "{body}");
    child.stdin.take().unwrap().write_all(b"/quit\n").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[设备] queue_printer.print_ticket 完成（模拟）"),
        "{stdout}"
    );
    assert!(stdout.contains("[会话结束：closed]"), "{stdout}");
}

#[tokio::test]
async fn audit_verify_finds_a_tampered_event_and_outbox_replay_requeues() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let app = crate::helpers::spawn_on(&url, &crate::helpers::project_root(), |s| {
        s.outbox.webhooks = vec![concierge::config::WebhookSettings {
            name: "workflow".into(),
            url: "http://127.0.0.1:9/down".into(),
            secret: "k".to_string().into(),
            reminders: false,
        }];
        s.outbox.max_attempts = 1;
        s.outbox.poll_ms = 50;
    })
    .await;
    let tickets = app.state.tickets.clone();
    let t = tickets
        .open(
            "card_reissue",
            "B001",
            None,
            None,
            None,
            serde_json::json!({}),
            &[],
            "test",
        )
        .await
        .unwrap();
    tickets.claim(&t.id, "chen").await.unwrap();
    // The receiver is down and one attempt is allowed: both deliveries die.
    let deadline = std::time::Instant::now() + crate::helpers::WAIT;
    loop {
        let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'dead'")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        if dead == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries never died"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;

    let run = |args: &[&str]| {
        let out = concierge()
            .args(args)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run(&["audit", "verify"]);
    assert!(ok && text.contains("2 link(s)"), "{text}");
    let (ok, text) = run(&["outbox", "status"]);
    assert!(ok && text.contains("dead: 2"), "{text}");
    let (ok, text) = run(&["outbox", "replay"]);
    assert!(ok && text.contains("2 deliver"), "{text}");
    let (_, text) = run(&["outbox", "status"]);
    assert!(text.contains("pending: 2"), "{text}");

    // Someone edits history behind the application's back: verify names the link.
    let db = concierge::store::Db::connect(&secrecy::SecretString::from(url.clone()), 1)
        .await
        .unwrap();
    sqlx::query("UPDATE ticket_events SET actor = 'mallory' WHERE seq = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    db.pool.close().await;
    let (ok, text) = run(&["audit", "verify"]);
    assert!(!ok && text.contains("link 2"), "{text}");
}
