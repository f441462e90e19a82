//! The compliance record of a session (issue #19, 事后追溯) through the real API: a kiosk
//! session asks a knowledge question, says a phone number and hands off; the record holds
//! the masked transcript, the citation with its version, the device call, the handoff, the
//! ticket with its audit links; every view is written down and shown in the next one;
//! another branch, another role and a malformed id are refused.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Engine, TestApp};

on_both_engines!(the_record_holds_the_whole_session_and_every_view_is_written_down);

/// GET the record of `session` with `token`: status and body.
async fn record(app: &TestApp, session: &str, token: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(app.http(&format!("/v1/sessions/{session}/record")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn the_record_holds_the_whole_session_and_every_view_is_written_down(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let (mut kiosk, session, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;
    let answer = kiosk.say("跨行转账一般多久能到账").await;
    let article = answer["ui"]["article"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a knowledge answer: {answer}"))
        .to_string();
    let version = answer["ui"]["article"]["version"].as_i64().unwrap();
    kiosk.say("我的手机号是13812345678").await;
    kiosk
        .send(json!({"type": "user.text", "text": "转人工"}))
        .await;
    kiosk.recv_type("handoff").await;
    // A device call of the session, as the broker records it (result masked).
    sqlx::query(
        "INSERT INTO device_calls (id, kiosk_id, session_id, device, action, ok, code, duration_ms, result_masked, at) \
         VALUES ('dc-1', 'K001', $1, 'id_card', 'read', 1, NULL, 812, $2, $3)",
    )
    .bind(&session)
    .bind(json!({"name": "张*", "id_number": "1101**********1234"}).to_string())
    .bind(concierge::store::now_ms())
    .execute(&app.state.db.pool)
    .await
    .unwrap();

    let chen = app.staff("chen", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "chen", Some("B001"))
        .await
        .unwrap();
    let (s, r) = record(&app, &session, &chen).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["session"]["id"], session.as_str());
    assert_eq!(r["session"]["branch_id"], "B001");
    let transcript = r["transcript"].as_array().unwrap();
    assert!(
        transcript.iter().any(|l| l["text"] == "转人工"),
        "{transcript:?}"
    );
    assert!(
        r["citations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["article"] == article.as_str() && c["version"] == version),
        "{}",
        r["citations"]
    );
    assert!(!r["steps"].as_array().unwrap().is_empty(), "{}", r["steps"]);
    assert_eq!(r["device_calls"][0]["device"], "id_card", "{r}");
    assert_eq!(r["device_calls"][0]["duration_ms"], 812);
    assert_eq!(r["handoffs"].as_array().unwrap().len(), 1, "{r}");
    let ticket = &r["tickets"][0];
    assert!(ticket["ticket"]["number"].as_str().is_some(), "{r}");
    let events = ticket["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|e| e["chain_seq"].as_i64().unwrap() > 0 && e["hash"].as_str().unwrap().len() == 64));
    assert_eq!(r["views"], json!([]), "nobody viewed it before");
    assert_eq!(r["generated_for"], "chen");
    let text = r.to_string();
    assert!(!text.contains("13812345678"), "a raw phone number: {text}");

    // A second viewer sees the first view.
    let admin = app.staff("li", "admin").await;
    let (s, r) = record(&app, &session, &admin).await;
    assert_eq!(s, StatusCode::OK);
    let views = r["views"].as_array().unwrap();
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!(views[0]["staff"], "chen");

    // Refused: another branch (as if the session did not exist), a role without cases,
    // a malformed id, no token. None of them is written down as a view.
    let zhou = app.staff("zhou", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "zhou", Some("B002"))
        .await
        .unwrap();
    assert_eq!(record(&app, &session, &zhou).await.0, StatusCode::NOT_FOUND);
    let editor = app.staff("wang", "content_editor").await;
    assert_eq!(
        record(&app, &session, &editor).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, r) = record(&app, &"x".repeat(65), &chen).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(r["error"]["code"], "invalid_id", "{r}");
    assert_eq!(
        record(&app, "no-such-session", &chen).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        record(&app, &session, "not-a-token").await.0,
        StatusCode::UNAUTHORIZED
    );
    let written: Vec<(String,)> =
        sqlx::query_as("SELECT staff FROM record_views WHERE session_id = $1 ORDER BY at, id")
            .bind(&session)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(written, vec![("chen".to_string(),), ("li".to_string(),)]);
    app.stop().await;
}
