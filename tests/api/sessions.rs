//! Sessions persist: resume after reconnect and restart, replacement, ending, transcripts.

use kiosk_protocol::PeerRole;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_kiosk_that_reconnects_resumes_its_session_where_it_was() {
    let app = spawn_app().await;
    let (mut k, sid, token) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    let last = k.say("谢谢").await;
    drop(k);
    let mut k = app.connect().await;
    let (again, resumed) = k.hello("K001", &token, Some(&sid)).await;
    assert_eq!(again, sid);
    assert!(resumed);
    let replay = k.recv().await;
    assert_eq!(replay["type"], "bot.say");
    assert_eq!(
        replay["text"], last["text"],
        "the last reply is shown again"
    );
    assert_eq!(
        replay["turn_id"], last["turn_id"],
        "under its own turn: the kiosk sees its last input was answered"
    );
}

async fn resume_after_restart(engine: Engine) {
    let (url, _dir) = fresh_database(engine).await;
    let app = spawn_on(&url, &project_root(), |_| {}).await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut k = app.connect().await;
    let (sid, _) = k.hello("K001", &token, None).await;
    k.recv_type("bot.say").await;
    k.say("呜啦啦").await; // one misunderstanding…
    app.stop().await;
    let end = k.recv().await;
    assert_eq!(end, json!({"type": "session.end", "reason": "shutdown"}));
    assert_eq!(k.expect_closed().await, Some(1001));

    let app = spawn_on(&url, &project_root(), |_| {}).await;
    let mut k = app.connect().await;
    let (again, resumed) = k.hello("K001", &token, Some(&sid)).await;
    assert_eq!((again.as_str(), resumed), (sid.as_str(), true));
    k.recv_type("bot.say").await;
    // …and the second one after the restart offers a person: the state survived.
    let reply = k.say("叽里咕噜").await;
    assert!(
        reply["text"].as_str().unwrap().contains("工作人员"),
        "{reply}"
    );
    let lines = concierge::session::store::transcript(&app.state.db, &sid)
        .await
        .unwrap();
    let customer: Vec<&str> = lines
        .iter()
        .filter(|l| l.speaker == "customer")
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(customer, ["呜啦啦", "叽里咕噜"]);
}

#[tokio::test]
async fn a_session_resumes_after_a_server_restart_on_sqlite() {
    resume_after_restart(Engine::Sqlite).await;
}

#[tokio::test]
async fn a_session_resumes_after_a_server_restart_on_postgres() {
    resume_after_restart(Engine::Postgres).await;
}

#[tokio::test]
async fn a_resumed_session_replaces_its_old_connection() {
    let app = spawn_app().await;
    let (mut old, sid, token) = app.new_session("K001").await;
    old.recv_type("bot.say").await;
    let mut new = app.connect().await;
    let (again, resumed) = new.hello("K001", &token, Some(&sid)).await;
    assert!(resumed);
    assert_eq!(again, sid);
    assert_eq!(
        old.recv().await,
        json!({"type": "session.end", "reason": "replaced"})
    );
    old.expect_closed().await;
    assert_eq!(new.say("你好").await["type"], "bot.say");
}

#[tokio::test]
async fn a_session_of_another_kiosk_is_refused() {
    let app = spawn_app().await;
    let (mut k1, sid, _) = app.new_session("K001").await;
    k1.recv_type("bot.say").await;
    let token2 = app.kiosk("K002", "B001", PeerRole::Screen).await;
    let mut k2 = app.connect().await;
    k2.send(json!({"type": "hello", "kiosk_id": "K002", "token": token2, "session_id": sid}))
        .await;
    k2.expect_error("session_forbidden").await;
    assert_eq!(k2.expect_closed().await, Some(1008));
}

#[tokio::test]
async fn an_unknown_or_ended_session_id_starts_a_new_session() {
    let app = spawn_app().await;
    let (mut k, sid, token) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    let bye = k.say("好的再见").await;
    assert!(bye["text"].as_str().unwrap().contains("再见"));
    assert_eq!(
        k.recv().await,
        json!({"type": "session.end", "reason": "completed"})
    );
    k.expect_closed().await;

    let mut k = app.connect().await;
    let (new_sid, resumed) = k.hello("K001", &token, Some(&sid)).await;
    assert!(!resumed);
    assert_ne!(new_sid, sid);
    let mut k = app.connect().await;
    let (_, resumed) = k.hello("K001", &token, Some("no-such-session")).await;
    assert!(!resumed);
}

#[tokio::test]
async fn an_idle_session_expires_instead_of_resuming() {
    let app = spawn_app_with(Engine::Sqlite, |s| s.kiosk.session_idle_timeout_secs = 0).await;
    let (mut k, sid, token) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    drop(k);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut k = app.connect().await;
    let (new_sid, resumed) = k.hello("K001", &token, Some(&sid)).await;
    assert!(!resumed);
    assert_ne!(new_sid, sid);
}

#[tokio::test]
async fn the_customer_can_close_the_session() {
    let app = spawn_app().await;
    let (mut k, sid, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "session.close", "reason": "customer_left"}))
        .await;
    assert_eq!(
        k.recv().await,
        json!({"type": "session.end", "reason": "closed"})
    );
    let s = concierge::session::store::load(&app.state.db, &sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.status, "ended");
}

#[tokio::test]
async fn transcripts_are_stored_whole_and_masked() {
    let app = spawn_app().await;
    let (mut k, sid, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.say("我的身份证号是11010519491231002X，手机13812345678")
        .await;
    k.say("卡号6222021001123456789丢了").await;
    let teller = app.staff("t1", "teller").await;
    let res = reqwest::Client::new()
        .get(app.http(&format!("/v1/sessions/{sid}/transcript")))
        .bearer_auth(&teller)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let text = body.to_string();
    for secret in ["11010519491231002X", "13812345678", "6222021001123456789"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("110105********002X"));
    assert!(text.contains("138****5678"));
    assert!(text.contains("622202*********6789"));
    let lines = body["lines"].as_array().unwrap();
    // opening + two turns of (customer, one or more bot lines), numbered without gaps
    let customer = lines.iter().filter(|l| l["speaker"] == "customer").count();
    assert_eq!(customer, 2, "{body}");
    assert!(lines.len() >= 5, "{body}");
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=lines.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_lets_the_turn_in_flight_finish_and_then_ends_sessions() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "user.text", "text": "你好"})).await;
    // Give the turn a head start, then stop the server.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let state = app.state.clone();
    let stopping = tokio::spawn(app.stop());
    let reply = k.recv().await;
    assert_eq!(reply["type"], "bot.say", "{reply}");
    assert_eq!(
        k.recv().await,
        json!({"type": "session.end", "reason": "shutdown"})
    );
    stopping.await.unwrap();
    assert!(state.shutdown.is_cancelled());
}

/// Many sessions writing at once on SQLite: every opening and every turn is stored (a
/// deferred transaction that reads then writes used to fail with "database is locked").
#[tokio::test]
async fn concurrent_sessions_on_sqlite_lose_no_transcript_line() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    // Forty kiosks at once (one kiosk may hold only a few connections: [live]).
    for n in 0..40 {
        let url = app.ws_url();
        let id = format!("K{}", 100 + n);
        let token = app.kiosk(&id, "B001", PeerRole::Screen).await;
        tasks.push(tokio::spawn(async move {
            let mut k = Kiosk::connect(&url).await;
            let (sid, _) = k.hello(&id, &token, None).await;
            k.recv_type("bot.say").await;
            for _ in 0..3 {
                k.say("你好").await;
            }
            sid
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await.expect("session task"));
    }
    let admin = app.staff("boss", "teller").await;
    for sid in sessions {
        let lines = app
            .get_json(&format!("/v1/sessions/{sid}/transcript"), &admin)
            .await;
        let n = lines["lines"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(n, 7, "opening + 3 × (user, bot) for {sid}: {lines}");
    }
}
