//! The knowledge base through its real APIs and the kiosk WebSocket: the write → review →
//! publish → answered path, the teller helper's audience, golden questions guarding a
//! publish, the lifecycle's refusals, scheduled publishing, several nodes on one database,
//! and import/export — on SQLite and PostgreSQL alike.

use std::time::{Duration, Instant};

use kiosk_protocol::PeerRole;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, spawn_on, Engine, TestApp};

on_both_engines!(
    an_approved_article_is_answered_at_the_kiosk,
    the_lifecycle_refuses_what_it_must,
    retired_articles_are_never_found_and_rollback_restores,
    golden_questions_block_a_breaking_publish,
    a_scheduled_publish_goes_live_on_every_node,
    a_scheduled_publish_is_checked_at_approval_and_when_due,
);

/// An article nobody else writes about: a water dispenser in the lobby.
pub(crate) fn water_article() -> Value {
    json!({
        "id": "lobby-water",
        "title": "大堂饮水机的位置",
        "audience": "customer",
        "questions": ["哪里有水喝", "饮水机在哪"],
        "tags": ["饮水机", "喝水"],
        "summary": "饮水机在大堂东侧休息区，一次性纸杯放在旁边的柜子里。",
        "body": "饮水机在大堂东侧休息区，提供温水和热水。\n\n一次性纸杯放在旁边的柜子里，用完请丢进垃圾桶。"
    })
}

pub(crate) async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut req = match method {
        "GET" => client.get(app.http(path)),
        "PUT" => client.put(app.http(path)),
        _ => client.post(app.http(path)),
    }
    .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Editor writes and submits, reviewer approves: the article is live. Returns its version.
pub(crate) async fn publish(app: &TestApp, editor: &str, reviewer: &str, article: Value) -> i64 {
    let id = article["id"].as_str().unwrap().to_string();
    let (s, saved) = call(app, "POST", "/v1/knowledge/articles", editor, Some(article)).await;
    assert_eq!(s, StatusCode::CREATED, "{saved}");
    let v = saved["version"].as_i64().unwrap();
    let (s, r) = call(
        app,
        "POST",
        &format!("/v1/knowledge/articles/{id}/versions/{v}/submit"),
        editor,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = call(
        app,
        "POST",
        &format!("/v1/knowledge/articles/{id}/versions/{v}/approve"),
        reviewer,
        Some(json!({"comment": "内容核对无误"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"], "published");
    v
}

async fn search(app: &TestApp, token: &str, q: &str, audience: &str) -> Vec<String> {
    let path = format!(
        "/v1/knowledge/search?q={}&audience={audience}",
        urlencode(q)
    );
    let (s, r) = call(app, "GET", &path, token, None).await;
    assert_eq!(s, 200, "{r}");
    r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn an_approved_article_is_answered_at_the_kiosk(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let editor = app.staff("wang", "content_editor").await;
    let reviewer = app.staff("li", "content_reviewer").await;
    let (mut kiosk, session, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await; // the greeting
                                      // Before: nothing to say about it.
    let before = kiosk.say("请问饮水机在哪里").await;
    assert!(before["ui"]["article"].is_null(), "{before}");

    let v = publish(&app, &editor, &reviewer, water_article()).await;
    let published = Instant::now();
    let reply = kiosk.say("请问饮水机在哪里").await;
    assert!(
        published.elapsed() < Duration::from_secs(1),
        "answered {:?} after approval",
        published.elapsed()
    );
    assert!(
        reply["text"].as_str().unwrap().contains("大堂东侧休息区"),
        "{reply}"
    );
    let article = &reply["ui"]["article"];
    assert_eq!(article["id"], "lobby-water", "{reply}");
    assert_eq!(article["version"], v);
    assert!(article["body"].as_str().unwrap().contains("纸杯"));
    // The spoken text is the summary, not the whole body.
    assert!(
        !reply["text"].as_str().unwrap().contains("垃圾桶"),
        "{reply}"
    );
    // The transcript names the citation.
    let teller = app.staff("chen", "teller").await;
    let transcript = app
        .get_json(&format!("/v1/sessions/{session}/transcript"), &teller)
        .await;
    assert!(
        transcript
            .to_string()
            .contains(&format!("引用 lobby-water 第{v}版")),
        "{transcript}"
    );
    app.stop().await;
}

async fn the_lifecycle_refuses_what_it_must(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let editor = app.staff("wang", "content_editor").await;
    let other_editor = app.staff("zhao", "content_editor").await;
    let reviewer = app.staff("li", "content_reviewer,content_editor").await;
    let teller = app.staff("chen", "teller").await;
    let kiosk = app.kiosk("K001", "B001", PeerRole::Screen).await;

    // Roles: a teller may search but not write; a kiosk token is no staff token.
    let (s, _) = call(
        &app,
        "POST",
        "/v1/knowledge/articles",
        &teller,
        Some(water_article()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&app, "GET", "/v1/knowledge/search?q=挂失", &kiosk, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Too big a body, broken fields: a clear 400, nothing stored.
    let mut huge = water_article();
    huge["body"] = json!("长".repeat(30_000));
    let (s, r) = call(&app, "POST", "/v1/knowledge/articles", &editor, Some(huge)).await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::BAD_REQUEST, "invalid_article"),
        "{r}"
    );
    let mut bad = water_article();
    bad["audience"] = json!("public");
    bad["effective_from"] = json!("2026-02-30");
    let (s, r) = call(&app, "POST", "/v1/knowledge/articles", &editor, Some(bad)).await;
    assert_eq!(code(&r), "invalid_article", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("effective_from"),
        "{r}"
    );
    let mut far_too_big = water_article();
    far_too_big["body"] = json!("x".repeat(200_000));
    let (s2, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles",
        &editor,
        Some(far_too_big),
    )
    .await;
    assert_eq!(
        (s, s2, code(&r)),
        (
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
            "body_too_large"
        ),
        "{r}"
    );

    // Create, then two editors edit version 1 at once: the second gets a conflict.
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles",
        &editor,
        Some(water_article()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles",
        &editor,
        Some(water_article()),
    )
    .await;
    assert_eq!((s, code(&r)), (StatusCode::CONFLICT, "article_exists"));
    let mut first = water_article();
    first.as_object_mut().unwrap().remove("id");
    first["base_version"] = json!(1);
    first["title"] = json!("大堂饮水机在哪里");
    let mut second = first.clone();
    second["title"] = json!("饮水机位置说明");
    let (s, r) = call(
        &app,
        "PUT",
        "/v1/knowledge/articles/lobby-water",
        &editor,
        Some(first.clone()),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["version"], 2);
    let (s, r) = call(
        &app,
        "PUT",
        "/v1/knowledge/articles/lobby-water",
        &other_editor,
        Some(second),
    )
    .await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::CONFLICT, "version_conflict"),
        "{r}"
    );
    assert!(
        r["error"]["message"].as_str().unwrap().contains("wang"),
        "{r}"
    );
    // Saving the same content again makes no version.
    first["base_version"] = json!(2);
    let (_, r) = call(
        &app,
        "PUT",
        "/v1/knowledge/articles/lobby-water",
        &editor,
        Some(first),
    )
    .await;
    assert_eq!(
        (r["version"].as_i64(), r["created"].as_bool()),
        (Some(2), Some(false)),
        "{r}"
    );

    // Approving a draft that was never submitted, or one's own version: refused.
    let approve = "/v1/knowledge/articles/lobby-water/versions/2/approve";
    let (s, r) = call(&app, "POST", approve, &reviewer, Some(json!({}))).await;
    assert_eq!((s, code(&r)), (StatusCode::CONFLICT, "wrong_state"), "{r}");
    let (s, _) = call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/2/submit",
        &editor,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&app, "POST", approve, &editor, Some(json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an editor is no reviewer");
    // The reviewer edits and submits a version of their own: they may not approve it.
    let mut own = water_article();
    own.as_object_mut().unwrap().remove("id");
    own["base_version"] = json!(2);
    own["summary"] = json!("饮水机在大堂东侧。");
    let (_, r) = call(
        &app,
        "PUT",
        "/v1/knowledge/articles/lobby-water",
        &reviewer,
        Some(own),
    )
    .await;
    assert_eq!(r["version"], 3, "{r}");
    call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/3/submit",
        &reviewer,
        Some(json!({})),
    )
    .await;
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/3/approve",
        &reviewer,
        Some(json!({})),
    )
    .await;
    assert_eq!((s, code(&r)), (StatusCode::FORBIDDEN, "self_review"), "{r}");
    // Rejecting needs a reason; then version 2 is approved by the reviewer.
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/2/reject",
        &reviewer,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::BAD_REQUEST, "invalid_article"),
        "{r}"
    );
    let (s, r) = call(
        &app,
        "POST",
        approve,
        &reviewer,
        Some(json!({"comment": "可以发布"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = call(&app, "POST", approve, &reviewer, Some(json!({}))).await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::CONFLICT, "wrong_state"),
        "approving twice: {r}"
    );

    // Queries: punctuation only, query syntax, nothing at all.
    for q in [
        "？？！！……",
        "title:饮水机 AND (",
        "\"饮水机",
        "*:*",
        "饮水机 -[1 TO 9]",
    ] {
        let (s, r) = call(
            &app,
            "GET",
            &format!("/v1/knowledge/search?q={}", urlencode(q)),
            &teller,
            None,
        )
        .await;
        assert_eq!(s, 200, "{q}: {r}");
    }
    let hits = search(&app, &teller, "title:饮水机 AND (", "customer").await;
    assert_eq!(hits.first().map(String::as_str), Some("lobby-water"));
    assert!(search(&app, &teller, "？？！！", "customer")
        .await
        .is_empty());
    let (s, r) = call(&app, "GET", "/v1/knowledge/search?q=", &teller, None).await;
    assert_eq!((s, code(&r)), (StatusCode::BAD_REQUEST, "missing_query"));
    let (s, r) = call(
        &app,
        "GET",
        &format!("/v1/knowledge/search?q={}", "挂".repeat(201)),
        &teller,
        None,
    )
    .await;
    assert_eq!((s, code(&r)), (StatusCode::BAD_REQUEST, "query_too_long"));
    let (s, r) = call(
        &app,
        "GET",
        "/v1/knowledge/search?q=x&audience=everyone",
        &teller,
        None,
    )
    .await;
    assert_eq!((s, code(&r)), (StatusCode::BAD_REQUEST, "invalid_audience"));

    // Hit-testing says why: matched words (synonyms too), scores, what the kiosk would do.
    let (s, r) = call(
        &app,
        "GET",
        &format!("/v1/knowledge/hit-test?q={}", urlencode("饮水机在哪")),
        &editor,
        None,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["hits"][0]["id"], "lobby-water");
    let terms = r["hits"][0]["explanation"]["terms"].as_array().unwrap();
    assert!(
        terms
            .iter()
            .any(|t| t["field"] == "questions" && t["score"].as_f64().unwrap() > 0.0),
        "{r}"
    );
    assert!(!r["hits"][0]["matched"][0]["fields"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        r["hits"][0]["highlight"].as_str().unwrap().contains("<b>"),
        "{r}"
    );
    assert_eq!(r["kiosk"]["does"], "answer", "{r}");

    // Versions, diff and history record who did what.
    let (_, r) = call(
        &app,
        "GET",
        "/v1/knowledge/articles/lobby-water/diff?from=1&to=2",
        &editor,
        None,
    )
    .await;
    assert_eq!(r["changed"], json!(["title"]), "{r}");
    assert!(
        r["unified"]
            .as_str()
            .unwrap()
            .contains("+title: 大堂饮水机在哪里"),
        "{r}"
    );
    let (_, r) = call(
        &app,
        "GET",
        "/v1/knowledge/articles/lobby-water",
        &editor,
        None,
    )
    .await;
    assert_eq!(r["live"]["version"], 2, "{r}");
    assert_eq!(r["head"]["version"], 3);
    let steps: Vec<(String, String, String)> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["to"].as_str().unwrap().into(),
                t["actor"].as_str().unwrap().into(),
                t["version"].to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("draft", "wang", "1"),
        ("draft", "wang", "2"),
        ("in_review", "wang", "2"),
        ("draft", "li", "3"),
        ("in_review", "li", "3"),
        ("published", "li", "2"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(steps, expected);
    let (_, r) = call(
        &app,
        "GET",
        "/v1/knowledge/articles?state=in_review",
        &editor,
        None,
    )
    .await;
    assert_eq!(r["articles"][0]["id"], "lobby-water", "{r}");
    app.stop().await;
}

async fn retired_articles_are_never_found_and_rollback_restores(engine: Engine) {
    let (url, _dir) = crate::helpers::fresh_database(engine).await;
    let root = crate::helpers::project_root();
    let app = spawn_on(&url, &root, |_| {}).await;
    let editor = app.staff("wang", "content_editor").await;
    let reviewer = app.staff("li", "content_reviewer").await;
    let teller = app.staff("chen", "teller").await;
    publish(&app, &editor, &reviewer, water_article()).await;
    // Version 2 changes the summary; then version 1 is rolled back to.
    let mut v2 = water_article();
    v2.as_object_mut().unwrap().remove("id");
    v2["base_version"] = json!(1);
    v2["summary"] = json!("饮水机已搬到二楼贵宾区旁边。");
    call(
        &app,
        "PUT",
        "/v1/knowledge/articles/lobby-water",
        &editor,
        Some(v2),
    )
    .await;
    call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/2/submit",
        &editor,
        Some(json!({})),
    )
    .await;
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/2/approve",
        &reviewer,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (_, r) = call(&app, "GET", "/v1/knowledge/search?q=饮水机", &teller, None).await;
    assert_eq!(r["hits"][0]["version"], 2);
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/rollback",
        &reviewer,
        Some(json!({"version": 1, "comment": "二楼的说法有误"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (_, r) = call(&app, "GET", "/v1/knowledge/search?q=饮水机", &teller, None).await;
    assert_eq!(r["hits"][0]["version"], 1, "{r}");

    // Retired: gone from search, for staff, kiosks, and after a restart.
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/retire",
        &reviewer,
        Some(json!({"comment": "饮水机撤掉了"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert!(!search(&app, &teller, "饮水机在哪", "staff")
        .await
        .contains(&"lobby-water".to_string()));
    let (mut kiosk, _, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await; // the greeting
    let reply = kiosk.say("饮水机在哪里").await;
    assert_ne!(reply["ui"]["article"]["id"], "lobby-water", "{reply}");
    let (s, r) = call(
        &app,
        "POST",
        "/v1/knowledge/articles/lobby-water/retire",
        &reviewer,
        Some(json!({})),
    )
    .await;
    assert_eq!((s, code(&r)), (StatusCode::CONFLICT, "not_published"));
    drop(kiosk);
    app.stop().await;
    let app = spawn_on(&url, &root, |_| {}).await;
    let teller = {
        let res = reqwest::Client::new()
            .post(app.http("/v1/auth/login"))
            .json(&json!({"name": "chen", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(!search(&app, &teller, "饮水机在哪", "staff")
        .await
        .contains(&"lobby-water".to_string()));
    // The seed ran once: a restart does not re-import over the database.
    let (_, r) = call(
        &app,
        "GET",
        "/v1/knowledge/search?q=挂失&audience=staff",
        &teller,
        None,
    )
    .await;
    assert!(r["hits"][0]["version"] == 1, "{r}");
    app.stop().await;
}

async fn golden_questions_block_a_breaking_publish(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let editor = app.staff("wang", "content_editor").await;
    let reviewer = app.staff("li", "content_reviewer").await;
    let admin = app.staff("root", "admin").await;
    // The seeded golden set passes as it stands.
    let (s, r) = call(&app, "GET", "/v1/knowledge/golden", &editor, None).await;
    assert_eq!(s, 200);
    let total = r["results"].as_array().unwrap().len();
    assert!(total >= 60, "{total} golden questions");
    let passing_before = r["passing"].as_u64().unwrap();

    // An article that would take over the card-loss questions.
    let hijack = json!({
        "id": "card-loss-hijack",
        "title": "银行卡丢了怎么办 卡丢了 挂失 银行卡挂失",
        "audience": "customer",
        "questions": ["银行卡丢了怎么办", "卡丢了怎么挂失", "银行卡找不到了", "卡被偷了", "挂失银行卡", "丢卡了怎么办", "卡掉了第一步做什么", "怕被盗刷"],
        "tags": ["挂失", "丢卡", "银行卡", "盗刷"],
        "body": "卡丢了请到柜台。"
    });
    let (_, saved) = call(
        &app,
        "POST",
        "/v1/knowledge/articles",
        &editor,
        Some(hijack),
    )
    .await;
    assert_eq!(saved["version"], 1, "{saved}");
    call(
        &app,
        "POST",
        "/v1/knowledge/articles/card-loss-hijack/versions/1/submit",
        &editor,
        Some(json!({})),
    )
    .await;
    let approve = "/v1/knowledge/articles/card-loss-hijack/versions/1/approve";
    let (s, r) = call(&app, "POST", approve, &reviewer, Some(json!({}))).await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::CONFLICT, "golden_regression"),
        "{r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("card-loss"),
        "{r}"
    );
    // Only an admin may override, and only with a reason.
    let (s, r) = call(
        &app,
        "POST",
        approve,
        &reviewer,
        Some(json!({"override_reason": "我确定"})),
    )
    .await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::FORBIDDEN, "override_not_allowed"),
        "{r}"
    );
    let (s, r) = call(
        &app,
        "POST",
        approve,
        &admin,
        Some(json!({"override_reason": "  "})),
    )
    .await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::CONFLICT, "golden_regression"),
        "{r}"
    );
    let (s, r) = call(
        &app,
        "POST",
        approve,
        &admin,
        Some(json!({"comment": "临时通知", "override_reason": "挂失流程临时调整，已报合规备案"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (_, r) = call(
        &app,
        "GET",
        "/v1/knowledge/articles/card-loss-hijack/history",
        &editor,
        None,
    )
    .await;
    let last = r["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to"], "published");
    assert_eq!(last["actor"], "root");
    assert_eq!(last["override_reason"], "挂失流程临时调整，已报合规备案");
    let (_, r) = call(&app, "GET", "/v1/knowledge/golden", &editor, None).await;
    assert!(r["passing"].as_u64().unwrap() < passing_before);

    // The golden set itself is checked when edited, with line numbers.
    let (s, r) = call(
        &app,
        "PUT",
        "/v1/knowledge/golden",
        &reviewer,
        Some(json!({"text": "- question: 卡丢了\n  expect: Bad Id\n"})),
    )
    .await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::BAD_REQUEST, "invalid_article"),
        "{r}"
    );
    assert!(
        r["error"]["message"].as_str().unwrap().contains("line 1"),
        "{r}"
    );
    let (s, _) = call(
        &app,
        "PUT",
        "/v1/knowledge/golden",
        &editor,
        Some(json!({"text": "[]"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "editors do not edit the gate");
    app.stop().await;
}

/// The golden gate holds for scheduled publishing too: a breaking version cannot be
/// scheduled, and one that passed when scheduled but breaks the golden questions by the
/// time it is due goes back to review instead of live.
async fn a_scheduled_publish_is_checked_at_approval_and_when_due(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let editor = app.staff("wang", "content_editor").await;
    let reviewer = app.staff("li", "content_reviewer").await;
    let hijack = json!({
        "id": "card-loss-hijack",
        "title": "银行卡丢了怎么办 卡丢了 挂失 银行卡挂失",
        "audience": "customer",
        "questions": ["银行卡丢了怎么办", "卡丢了怎么挂失", "银行卡找不到了", "卡被偷了", "挂失银行卡", "丢卡了怎么办", "卡掉了第一步做什么", "怕被盗刷"],
        "tags": ["挂失", "丢卡", "银行卡", "盗刷"],
        "body": "卡丢了请到柜台。"
    });
    call(
        &app,
        "POST",
        "/v1/knowledge/articles",
        &editor,
        Some(hijack),
    )
    .await;
    let submit = "/v1/knowledge/articles/card-loss-hijack/versions/1/submit";
    call(&app, "POST", submit, &editor, Some(json!({}))).await;
    let approve = "/v1/knowledge/articles/card-loss-hijack/versions/1/approve";
    let later = |ms| json!({"publish_at": (chrono::Utc::now() + chrono::Duration::milliseconds(ms)).to_rfc3339()});
    let (s, r) = call(&app, "POST", approve, &reviewer, Some(later(60_000))).await;
    assert_eq!(
        (s, code(&r)),
        (StatusCode::CONFLICT, "golden_regression"),
        "scheduling skips the golden check: {r}"
    );

    // With the golden set emptied the version may be scheduled; the set is back before
    // the version is due.
    let golden =
        std::fs::read_to_string(crate::helpers::project_root().join("knowledge/golden.yaml"))
            .expect("golden questions");
    let put = |text: &str| json!({ "text": text });
    let (s, r) = call(
        &app,
        "PUT",
        "/v1/knowledge/golden",
        &reviewer,
        Some(put("[]")),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = call(&app, "POST", approve, &reviewer, Some(later(1500))).await;
    assert_eq!(
        (s, r["state"].as_str()),
        (StatusCode::OK, Some("scheduled")),
        "{r}"
    );
    let (s, r) = call(
        &app,
        "PUT",
        "/v1/knowledge/golden",
        &reviewer,
        Some(put(&golden)),
    )
    .await;
    assert_eq!(s, 200, "{r}");

    let history = "/v1/knowledge/articles/card-loss-hijack/history";
    let deadline = Instant::now() + Duration::from_secs(40);
    let last = loop {
        let (_, r) = call(&app, "GET", history, &editor, None).await;
        let last = r["history"].as_array().unwrap().last().unwrap().clone();
        if last["from"] == "scheduled" {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled version was never handled: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last["to"], "in_review", "{last}");
    assert_eq!(last["actor"], "scheduler");
    assert!(
        last["comment"].as_str().unwrap().contains("golden"),
        "{last}"
    );
    assert_ne!(
        search(&app, &editor, "银行卡丢了怎么办", "customer")
            .await
            .first()
            .map(String::as_str),
        Some("card-loss-hijack")
    );
    app.stop().await;
}

async fn a_scheduled_publish_goes_live_on_every_node(engine: Engine) {
    let (url, _dir) = crate::helpers::fresh_database(engine).await;
    let root = crate::helpers::project_root();
    let node_a = spawn_on(&url, &root, |_| {}).await;
    let node_b = spawn_on(&url, &root, |_| {}).await;
    let editor = node_a.staff("wang", "content_editor").await;
    let reviewer = node_a.staff("li", "content_reviewer").await;
    let teller = node_b.staff("chen", "teller").await;
    let (_, _) = call(
        &node_a,
        "POST",
        "/v1/knowledge/articles",
        &editor,
        Some(water_article()),
    )
    .await;
    call(
        &node_a,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/1/submit",
        &editor,
        Some(json!({})),
    )
    .await;
    // Far enough ahead that the approval (golden questions checked) is done before it.
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(5000);
    let (s, r) = call(
        &node_a,
        "POST",
        "/v1/knowledge/articles/lobby-water/versions/1/approve",
        &reviewer,
        Some(json!({"publish_at": at.to_rfc3339()})),
    )
    .await;
    assert_eq!(
        (s, r["state"].as_str()),
        (StatusCode::OK, Some("scheduled")),
        "{r}"
    );
    if chrono::Utc::now() < at - chrono::Duration::milliseconds(500) {
        assert!(search(&node_b, &teller, "饮水机", "customer")
            .await
            .is_empty());
    }
    // Both nodes follow the database: the version goes live once, on each node's index.
    let deadline = Instant::now() + Duration::from_secs(40);
    for node in [&node_b, &node_a] {
        let token = if std::ptr::eq(node, &node_b) {
            teller.clone()
        } else {
            editor.clone()
        };
        loop {
            if search(node, &token, "饮水机", "customer")
                .await
                .first()
                .map(String::as_str)
                == Some("lobby-water")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the scheduled article never became searchable"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (_, r) = call(
        &node_a,
        "GET",
        "/v1/knowledge/articles/lobby-water/history",
        &editor,
        None,
    )
    .await;
    let published: Vec<&Value> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "published")
        .collect();
    assert_eq!(published.len(), 1, "published exactly once: {r}");
    assert_eq!(published[0]["actor"], "scheduler");
    node_a.stop().await;
    node_b.stop().await;
}

#[tokio::test]
async fn the_teller_helper_shows_staff_articles_and_kiosks_never_get_them() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    let teller = app.staff("chen", "teller").await;
    let q = "客户没预约要取六万现金柜员怎么处理";
    let staff_hits = search(&app, &teller, q, "staff").await;
    assert!(
        staff_hits
            .iter()
            .any(|h| h.starts_with("staff-") || h.contains("-staff-")),
        "{staff_hits:?}"
    );
    for id in search(&app, &teller, q, "customer").await {
        let (_, r) = call(
            &app,
            "GET",
            &format!(
                "/v1/knowledge/search?q={}&audience=customer&limit=50",
                urlencode(q)
            ),
            &teller,
            None,
        )
        .await;
        assert!(
            r["hits"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["audience"] == "customer"),
            "{id}: {r}"
        );
    }
    // Every staff article, asked at the kiosk with its own title: never cited there.
    let (mut kiosk, _, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await; // the greeting
    let docs = app.state.knowledge.index().live_docs();
    let staff_titles: Vec<String> = docs
        .iter()
        .filter(|d| d.draft.audience == "staff")
        .map(|d| d.draft.title.clone())
        .collect();
    assert!(staff_titles.len() >= 10);
    for title in staff_titles.iter().take(6) {
        let reply = kiosk.say(&format!("我想了解{title}")).await;
        let cited = reply["ui"]["article"]["id"].as_str().unwrap_or("");
        assert!(
            docs.iter()
                .all(|d| d.id != cited || d.draft.audience == "customer"),
            "{title}: {reply}"
        );
        // Whatever happened, go back to the start.
        kiosk.say("算了").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn import_is_idempotent_export_round_trips_and_bad_files_point_at_lines() {
    let app = spawn_app_with(Engine::Sqlite, |s| s.knowledge.seed_when_empty = false).await;
    let kb = app.state.knowledge.clone();
    let root = crate::helpers::project_root();
    let r = concierge::knowledge::files::import(&kb, &root.join("knowledge"), "import")
        .await
        .unwrap();
    assert!(r.created >= 60, "{r:?}");
    assert_eq!(r.documents, 2);
    let again = concierge::knowledge::files::import(&kb, &root.join("knowledge"), "import")
        .await
        .unwrap();
    assert_eq!(
        (again.created, again.unchanged, again.documents),
        (0, r.created, 0)
    );
    // Export, import the export: still nothing new.
    let out = tempfile::tempdir().unwrap();
    let n = concierge::knowledge::files::export(&kb, out.path())
        .await
        .unwrap();
    assert_eq!(n, r.created);
    let back = concierge::knowledge::files::import(&kb, out.path(), "import")
        .await
        .unwrap();
    assert_eq!((back.created, back.documents), (0, 0), "{back:?}");
    // A broken file: file:line, and nothing at all is written.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("good.md"),
        "---\nid: good-one\ntitle: 好的\naudience: customer\n---\n正文。\n",
    )
    .unwrap();
    std::fs::write(bad.path().join("broken.md"), "---\nid: broken\ntitle: 坏的\naudience: customer\neffective_from: 2026-13-40\n---\n正文。\n").unwrap();
    std::fs::write(
        bad.path().join("synonyms.yaml"),
        "- [挂失, 止付]\n- [挂失, 冻结]\n",
    )
    .unwrap();
    match concierge::knowledge::files::import(&kb, bad.path(), "import").await {
        Err(concierge::knowledge::files::ImportError::Files(errors)) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert!(text.iter().any(|e| e.contains("broken.md:5:")), "{text:?}");
            assert!(
                text.iter().any(|e| e.contains("synonyms.yaml:2:")),
                "{text:?}"
            );
        }
        other => panic!("expected file errors, got {other:?}"),
    }
    assert!(kb.heads("good-one").await.is_err(), "nothing imported");
    app.stop().await;
}
