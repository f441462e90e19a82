//! Staff security (issue 17, items 3, 5 and 7): staff free text reaches the audit chain and
//! webhooks only masked; logins are throttled (429 with `retry_after`), hashed off the
//! executor, and a flood of them leaves kiosk turns fast; operators disable accounts, reset
//! passwords and revoke tokens; branch and queue scope hold for transcripts, reassignment,
//! the ticket list (in the query, before its limit) and the admin device route.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiosk_protocol::PeerRole;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{concierge, run_with_stdin, spawn_app_with, spawn_on, Engine, TestApp};

on_both_engines!(
    staff_text_is_masked_before_the_audit_chain_and_webhooks,
    the_ticket_list_is_scoped_in_the_query_before_its_limit,
);

const PHONE: &str = "13812345678";
const ID_NUMBER: &str = "110101199003071234";

/// Creates a staff user (optionally scoped to a branch) and logs in; the token.
async fn staff_in(app: &TestApp, name: &str, roles: &str, branch: Option<&str>) -> String {
    let token = app.staff(name, roles).await;
    concierge::access::staff::set_branch(&app.state.db, name, branch)
        .await
        .unwrap();
    token
}

/// Opens a ticket of `kind` in `branch` as `token`; its id.
async fn open_ticket(app: &TestApp, token: &str, kind: &str, branch: &str) -> String {
    let (s, r) = app
        .post_json(
            "/v1/tickets",
            token,
            json!({"kind": kind, "branch": branch}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    r["ticket"]["id"].as_str().unwrap().to_string()
}

fn holds_raw(text: &str) -> bool {
    text.contains(PHONE) || text.contains(ID_NUMBER)
}

async fn staff_text_is_masked_before_the_audit_chain_and_webhooks(engine: Engine) {
    let (hook, delivered) = crate::tickets::receiver().await;
    let app = spawn_app_with(engine, |s| {
        s.outbox.webhooks = vec![concierge::config::WebhookSettings {
            name: "workflow".into(),
            url: hook,
            secret: "s3cret".to_string().into(),
            reminders: false,
        }];
        s.outbox.poll_ms = 50;
    })
    .await;
    let chen = app.staff("chen", "teller").await;
    let sup = app.staff("supervisor", "teller").await;
    let id = open_ticket(&app, &chen, "card_reissue", "B001").await;
    let (s, _) = app
        .post_json(&format!("/v1/tickets/{id}/claim"), &chen, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = format!("客户手机{PHONE}，身份证{ID_NUMBER}");
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/transition"),
            &chen,
            json!({"to": "in_progress", "comment": text}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/comments"),
            &chen,
            json!({"text": text}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/reassign"),
            &sup,
            json!({"to": "zhou", "comment": text}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Too long is refused with a stable code, not stored.
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/reassign"),
            &sup,
            json!({"to": "chen", "comment": "长".repeat(2001)}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_comment"))
    );

    // History (what staff read).
    let detail = app
        .get_json(&format!("/v1/tickets/{id}"), &chen)
        .await
        .to_string();
    assert!(!holds_raw(&detail), "{detail}");
    assert!(detail.contains("138****5678"), "{detail}");
    // The audit chain as stored (what was hashed), still intact.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT comment, data_json FROM ticket_events WHERE ticket_id = $1")
            .bind(&id)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    assert!(rows.len() >= 5, "{rows:?}");
    for (comment, data) in &rows {
        assert!(!holds_raw(comment) && !holds_raw(data), "{comment} {data}");
    }
    let (_, broken) = concierge::tickets::verify_chain(&app.state.db)
        .await
        .unwrap();
    assert_eq!(broken, None);
    // Webhook payloads (what left the bank's core).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bodies: Vec<String> = delivered
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect();
        if bodies.iter().any(|b| b.contains("ticket.reassigned")) {
            assert!(bodies.iter().all(|b| !holds_raw(b)), "{bodies:?}");
            assert!(
                bodies.iter().filter(|b| b.contains("138****5678")).count() >= 3,
                "{bodies:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks not delivered: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

async fn the_ticket_list_is_scoped_in_the_query_before_its_limit(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let li = app.staff("li", "teller").await;
    let chen = staff_in(&app, "chen", "teller", Some("B001")).await;
    let liu = app.staff("liu", "remote_expert").await;
    let mine = open_ticket(&app, &li, "card_reissue", "B001").await;
    // Newer tickets chen and liu may not see: another branch's; a queue liu does not work.
    for _ in 0..3 {
        open_ticket(&app, &li, "account_opening_prep", "B002").await;
    }
    let list = app.get_json("/v1/tickets?limit=1", &chen).await;
    assert_eq!(list["tickets"][0]["id"], mine, "{list}");
    let list = app.get_json("/v1/tickets?limit=1", &liu).await;
    assert_eq!(list["tickets"][0]["id"], mine, "{list}");
    // Asking for another branch gives nothing; an unscoped teller sees everything.
    let list = app.get_json("/v1/tickets?branch=B002", &chen).await;
    assert_eq!(list["tickets"], json!([]), "{list}");
    let list = app.get_json("/v1/tickets?branch=B002", &li).await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 3, "{list}");
    app.stop().await;
}

#[tokio::test]
async fn reassign_checks_role_branch_and_answers_hidden_like_missing() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    let chen = staff_in(&app, "chen", "teller", Some("B001")).await;
    let sup = staff_in(&app, "supervisor", "teller", Some("B002")).await;
    let far_admin = staff_in(&app, "ops", "admin", Some("B002")).await;
    let editor = app.staff("wang", "content_editor").await;
    let id = open_ticket(&app, &chen, "card_reissue", "B001").await;
    let reassign = |token: String, ticket: String| {
        let app = &app;
        async move {
            app.post_json(
                &format!("/v1/tickets/{ticket}/reassign"),
                &token,
                json!({"to": "zhou"}),
            )
            .await
        }
    };
    let missing = reassign(sup.clone(), "no-such-ticket".into()).await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    // The queue's supervisor and an admin, both of another branch: as if it did not exist.
    assert_eq!(reassign(sup.clone(), id.clone()).await, missing);
    assert_eq!(reassign(far_admin, id.clone()).await, missing);
    // A role that works no ticket: the same answer whether the ticket exists or not.
    let hidden = reassign(editor.clone(), id.clone()).await;
    let absent = reassign(editor, "no-such-ticket".into()).await;
    assert_eq!(hidden, absent);
    assert_eq!(hidden.0, StatusCode::FORBIDDEN);
    // A bad target name is refused.
    let admin = app.staff("root", "admin").await;
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/reassign"),
            &admin,
            json!({"to": " "}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_assignee"))
    );
    let t = app.state.tickets.get(&id).await.unwrap();
    assert_eq!(t.assignee, None, "nobody reassigned it");
    app.stop().await;
}

#[tokio::test]
async fn a_transcript_of_another_branch_is_not_found() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    let (mut k, session, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.say("你好").await;
    let here = staff_in(&app, "chen", "teller", Some("B001")).await;
    let there = staff_in(&app, "zhou", "teller", Some("B002")).await;
    let path = format!("/v1/sessions/{session}/transcript");
    let res = reqwest::Client::new()
        .get(app.http(&path))
        .bearer_auth(&there)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let mine = app.get_json(&path, &here).await;
    assert_eq!(mine["branch_id"], "B001", "{mine}");
    assert!(!mine["lines"].as_array().unwrap().is_empty(), "{mine}");
    app.stop().await;
}

#[tokio::test]
async fn the_admin_device_route_runs_only_diagnostics_masked_audited_and_scoped() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let mut peer = app.connect().await;
    peer.send(
        json!({"type": "hello", "kiosk_id": "K001", "token": token, "role": "devices",
        "capabilities": ["device:id_card", "device:pin_pad", "device:receipt_printer"]}),
    )
    .await;
    peer.recv_type("welcome").await;
    let admin = app.staff("ops", "admin").await;
    let far_admin = staff_in(&app, "far", "admin", Some("B002")).await;
    let call = |token: &str, device: &str, action: &str| {
        let (url, token) = (
            app.http("/v1/admin/kiosks/K001/devices/invoke"),
            token.to_string(),
        );
        let body = json!({"device": device, "action": action, "timeout_ms": 2000});
        tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        })
    };
    // Reading an ID card or taking a PIN is no diagnostic.
    for (device, action) in [("id_card", "read"), ("pin_pad", "enter_pin")] {
        let (s, r) = call(&admin, device, action).await.unwrap();
        assert_eq!(
            (s, r["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("action_not_allowed")),
            "{r}"
        );
    }
    // Another branch's kiosk is not found for a branch-scoped admin.
    let (s, _) = call(&far_admin, "receipt_printer", "print").await.unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A reader status that leaks an ID number comes back masked, and is audited.
    let pending = call(&admin, "id_card", "status");
    let invoke = peer.recv_type("device.invoke").await;
    assert_eq!(invoke["action"], "status");
    peer.send(
        json!({"type": "device.result", "call_id": invoke["call_id"], "ok": true,
        "data": {"state": "ok", "last": ID_NUMBER, "pin_block": "0412AC"}}),
    )
    .await;
    let (s, r) = pending.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["data"]["state"], "ok", "{r}");
    assert!(
        !holds_raw(&r.to_string()) && r["data"].get("pin_block").is_none(),
        "{r}"
    );
    let audited: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT session_id, action, result_masked FROM device_calls WHERE kiosk_id = 'K001'",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0, "admin:ops");
    assert_eq!(audited[0].1, "status");
    assert!(!holds_raw(&audited[0].2), "{audited:?}");
    app.stop().await;
}

/// Log lines written while it lives, on this thread (the app of a current-thread test
/// runs here too).
struct CapturedLogs {
    lines: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

impl CapturedLogs {
    fn start() -> CapturedLogs {
        // With a single registered dispatcher, tracing computes a callsite's interest from
        // the default of whichever thread hits it first (another test's: "never"); a second
        // one makes it ask every registered dispatcher.
        let second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let lines: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        CapturedLogs {
            lines,
            _guard: tracing::subscriber::set_default(subscriber),
            _second: second,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().unwrap()).into_owned()
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// POST /v1/auth/login; the status, the `Retry-After` header and the body.
async fn login(app: &TestApp, name: &str, password: &str) -> (StatusCode, Option<u64>, Value) {
    let res = reqwest::Client::new()
        .post(app.http("/v1/auth/login"))
        .json(&json!({"name": name, "password": password}))
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (res.status(), retry, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn logins_are_throttled_per_name_and_address_and_failures_log_no_name() {
    let logs = CapturedLogs::start();
    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.login.max_failures_per_name = 3;
        s.login.max_failures_per_ip = 6;
        s.login.lock_secs = 30;
    })
    .await;
    let db = &app.state.db;
    for name in ["bob", "carol"] {
        concierge::access::staff::add_user(db, name, "teller", "correct horse battery")
            .await
            .unwrap();
    }
    for _ in 0..3 {
        assert_eq!(
            login(&app, "bob", "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password waits.
    let (s, retry, body) = login(&app, "bob", "correct horse battery").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "login_throttled");
    let after = body["retry_after"].as_u64().unwrap();
    assert!((1..=30).contains(&after), "{body}");
    assert_eq!(retry, Some(after));
    // Another account from the same address is still served…
    assert_eq!(
        login(&app, "carol", "correct horse battery").await.0,
        StatusCode::OK
    );
    // …until the address has failed too often, whatever the names (typed phone numbers).
    for i in 0..3 {
        let (s, _, _) = login(&app, &format!("{PHONE}{i}"), "wrong").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _, body) = login(&app, "carol", "correct horse battery").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let text = logs.text();
    assert!(
        text.contains("login_failed") && text.contains("login_throttled"),
        "{text}"
    );
    assert!(text.contains("name_tag"), "{text}");
    assert!(
        !text.contains(PHONE),
        "a typed name reached the log: {text}"
    );
    drop(logs);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_leaves_a_concurrent_kiosk_turn_under_100_ms() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    concierge::access::staff::add_user(&app.state.db, "bob", "teller", "correct horse battery")
        .await
        .unwrap();
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.say("你好").await;
    let client = reqwest::Client::new();
    let url = app.http("/v1/auth/login");
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let name = if i % 2 == 0 {
                "bob".to_string()
            } else {
                format!("nobody{i}")
            };
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"name": name, "password": "not the password"}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    while latencies.len() < 5 || flood.iter().any(|f| !f.is_finished()) {
        let t = Instant::now();
        k.say("你好").await;
        latencies.push(t.elapsed());
        // Within the kiosk's message rate (20 a second).
        tokio::time::sleep(Duration::from_millis(60)).await;
        if latencies.len() >= 50 {
            break;
        }
    }
    let mut throttled = 0;
    for f in flood {
        match f.await.unwrap() {
            Ok(s) if s == StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            Ok(s) => assert_eq!(s, StatusCode::UNAUTHORIZED),
            Err(e) => panic!("a login of the flood failed: {e}"),
        }
    }
    println!("turn latencies during the flood: {latencies:?}; {throttled} throttled");
    assert!(throttled >= 150, "{throttled} of 200 throttled");
    // Every turn is meant to stay under 100 ms; the test machine is shared with other
    // tests and builds, so one turn in ten may miss it (a scheduler hiccup), none by much.
    let slow = latencies
        .iter()
        .filter(|l| **l >= Duration::from_millis(100))
        .count();
    assert!(
        slow <= latencies.len() / 10 && latencies.iter().all(|l| l.as_millis() < 1000),
        "{slow} kiosk turns took 100 ms or more during the login flood: {latencies:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn operators_disable_users_reset_passwords_and_revoke_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let app = spawn_on(&url, &crate::helpers::project_root(), |_| {}).await;
    let cli = |args: &[&str], stdin: &[u8]| {
        let mut cmd = concierge();
        cmd.arg("user").args(args).args(["--database-url", &url]);
        run_with_stdin(cmd, stdin)
    };
    let me = |token: String| {
        let url = app.http("/v1/auth/me");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let first = app.staff("bob", "teller").await;
    assert_eq!(me(first.clone()).await, StatusCode::OK);
    let out = cli(&["revoke-tokens", "bob"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(me(first).await, StatusCode::UNAUTHORIZED);

    let (s, _, body) = login(&app, "bob", "correct horse battery").await;
    assert_eq!(s, StatusCode::OK);
    let second = body["token"].as_str().unwrap().to_string();
    let out = cli(&["reset-password", "bob"], b"a brand new password\n");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing secret is printed");
    assert_eq!(me(second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&app, "bob", "correct horse battery").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, body) = login(&app, "bob", "a brand new password").await;
    assert_eq!(s, StatusCode::OK);
    let third = body["token"].as_str().unwrap().to_string();
    // A password on the command line is not accepted.
    let out = cli(&["reset-password", "bob", "a brand new password"], b"");
    assert!(!out.status.success());
    let out = cli(&["reset-password", "bob"], b"short\n");
    assert!(!out.status.success());

    let out = cli(&["disable", "bob"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(me(third).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&app, "bob", "a brand new password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let out = cli(&["disable", "nobody"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
    app.stop().await;
}

#[tokio::test]
async fn a_branch_scoped_admin_manages_only_their_branch_kiosks() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    app.kiosk("K001", "B001", PeerRole::Screen).await;
    app.kiosk("K201", "B002", PeerRole::Screen).await;
    let near = staff_in(&app, "near", "admin", Some("B001")).await;
    let client = reqwest::Client::new();

    let list: Value = client
        .get(app.http("/v1/admin/kiosks"))
        .bearer_auth(&near)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["kiosks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["K001"], "{list}");

    let register = |id: &str, branch: &str| {
        client
            .post(app.http("/v1/admin/kiosks"))
            .bearer_auth(&near)
            .json(&json!({"id": id, "branch": branch}))
            .send()
    };
    // A token for another branch's kiosk would let this admin pose as it.
    for (id, branch) in [("K201", "B001"), ("K201", "B002"), ("K202", "B002")] {
        let res = register(id, branch).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{id} {branch}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "other_branch");
    }
    assert_eq!(
        register("K002", "B001").await.unwrap().status(),
        StatusCode::CREATED
    );

    let revoke = |id: &str| {
        client
            .post(app.http(&format!("/v1/admin/kiosks/{id}/revoke")))
            .bearer_auth(&near)
            .send()
    };
    assert_eq!(
        revoke("K201").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(revoke("K001").await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}
