//! HTTP: auth, roles, JSON errors, operations endpoints.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn staff_log_in_with_their_password_and_get_a_bearer_token() {
    let app = spawn_app().await;
    let token = app.staff("alice", "teller,remote_expert").await;
    let me: Value = reqwest::Client::new()
        .get(app.http("/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "alice");
    assert_eq!(me["roles"], json!(["teller", "remote_expert"]));
}

#[tokio::test]
async fn a_wrong_password_gets_a_json_401() {
    let app = spawn_app().await;
    app.staff("alice", "teller").await;
    let res = reqwest::Client::new()
        .post(app.http("/v1/auth/login"))
        .json(&json!({"name": "alice", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn a_logged_out_token_no_longer_works() {
    let app = spawn_app().await;
    let token = app.staff("alice", "teller").await;
    let c = reqwest::Client::new();
    assert_eq!(
        c.post(app.http("/v1/auth/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(app.http("/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn routes_admit_only_their_roles() {
    let app = spawn_app().await;
    let teller = app.staff("t", "teller").await;
    let admin = app.staff("a", "admin").await;
    let c = reqwest::Client::new();
    let res = c.get(app.http("/v1/admin/kiosks")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let res = c
        .get(app.http("/v1/admin/kiosks"))
        .bearer_auth(&teller)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "forbidden"
    );
    let res = c
        .get(app.http("/v1/admin/kiosks"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_admin_registers_a_kiosk_whose_token_then_works() {
    let app = spawn_app().await;
    let admin = app.staff("a", "admin").await;
    let c = reqwest::Client::new();
    let res = c
        .post(app.http("/v1/admin/kiosks"))
        .bearer_auth(&admin)
        .json(&json!({"id": "K009", "branch": "B002"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut k = app.connect().await;
    k.hello("K009", &token, None).await;
    let res = c
        .post(app.http("/v1/admin/kiosks"))
        .bearer_auth(&admin)
        .json(&json!({"id": "K009", "branch": "B003"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = c
        .post(app.http("/v1/admin/kiosks"))
        .bearer_auth(&admin)
        .json(&json!({"id": "bad id!", "branch": "B003"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_id"
    );
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let app = spawn_app().await;
    let c = reqwest::Client::new();
    let res = c
        .post(app.http("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_body"
    );
    let res = c
        .post(app.http("/v1/auth/login"))
        .json(&json!({"name": "a", "password": "x".repeat(70 * 1024)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "body_too_large"
    );
    let res = c
        .post(app.http("/v1/auth/login"))
        .body("name=a")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = c.get(app.http("/v1/nothing/here")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let app = spawn_app().await;
    let c = reqwest::Client::new();
    let res = c.get(app.http("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let ready: Value = c
        .get(app.http("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["data"]["intents"], 32);

    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.say("你好").await;
    let metrics = c
        .get(app.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("concierge_sessions_open 1"), "{metrics}");
    assert!(
        metrics.contains(r#"concierge_turns_total{outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"concierge_stage_seconds_count{stage="turn"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"concierge_stage_seconds_count{stage="nlu"} 1"#),
        "{metrics}"
    );
}
