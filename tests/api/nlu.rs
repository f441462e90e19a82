//! `POST /v1/nlu/parse` and `concierge nlu`: the NLU contract of DESIGN.md, and bad input.

use serde_json::{json, Value};

use crate::helpers::*;

const NOW: &str = "2026-11-23T09:30:00+08:00";

async fn parse(app: &TestApp, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(app.http("/v1/nlu/parse"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn parse_returns_the_contract_json() {
    let app = spawn_app().await;
    let (status, body) = parse(&app, json!({"text": "帮我预约明天上午十点", "now": NOW})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["intent"]["name"], "appointment.book", "{body}");
    assert!(body["intent"]["confidence"].as_f64().unwrap() > 0.5);
    assert_eq!(body["slots"]["date"], "2026-11-24");
    assert_eq!(body["slots"]["time"], "10:00");
    assert_eq!(body["risk"], json!([]));
    let ranking = body["ranking"].as_array().unwrap();
    assert!(ranking.len() >= 2);
    let confidences: Vec<f64> = ranking
        .iter()
        .map(|r| r["confidence"].as_f64().unwrap())
        .collect();
    assert!(
        confidences.windows(2).all(|w| w[0] >= w[1]),
        "{confidences:?}"
    );
}

#[tokio::test]
async fn parse_reads_amounts_currencies_and_fraud() {
    let app = spawn_app().await;
    let (_, body) = parse(&app, json!({"text": "我想换1.5万美元", "now": NOW})).await;
    assert_eq!(body["intent"]["name"], "forex.exchange", "{body}");
    assert_eq!(body["slots"]["amount"], "15000");
    assert_eq!(body["slots"]["currency"], "USD");
    let (_, body) = parse(
        &app,
        json!({"text": "警察让我把钱转到安全账户", "now": NOW}),
    )
    .await;
    assert_eq!(body["risk"], json!(["fraud_suspected"]), "{body}");
}

#[tokio::test]
async fn parse_rejects_bad_input_with_stable_codes() {
    let app = spawn_app().await;
    let (status, body) = parse(&app, json!({"text": "   "})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("empty_text"))
    );
    let (status, body) = parse(&app, json!({"text": "好".repeat(10_000)})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("text_too_long"))
    );
    let (status, body) = parse(&app, json!({"text": "你好", "now": "tomorrow"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_now"))
    );
    let (status, _) = parse(&app, json!({"txt": "你好"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn odd_but_valid_text_is_understood_or_marked_unsure() {
    let app = spawn_app().await;
    let (status, body) = parse(&app, json!({"text": "😀😀😀", "now": NOW})).await;
    assert_eq!(status, 200);
    assert_eq!(body["sure"], false, "{body}");
    let (status, body) = parse(
        &app,
        json!({"text": "I want to 转账 500 块 please", "now": NOW}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["slots"]["amount"], "500", "{body}");
    let (_, body) = parse(&app, json!({"text": "预约2月30号", "now": NOW})).await;
    assert!(body["slots"].get("date").is_none(), "{body}");
    assert_eq!(body["rejected"][0]["reason"], "no_such_date", "{body}");
    let (_, body) = parse(
        &app,
        json!({"text": "身份证号110105194912310021", "now": NOW}),
    )
    .await;
    assert_eq!(body["rejected"][0]["reason"], "bad_check_digit", "{body}");
    assert!(
        !body.to_string().contains("110105194912310021"),
        "id leaked: {body}"
    );
    let (_, body) = parse(&app, json!({"text": "卡号4111111111111112", "now": NOW})).await;
    assert_eq!(body["rejected"][0]["reason"], "luhn_failed", "{body}");
}

#[test]
fn the_cli_prints_one_json_object_per_utterance() {
    let mut cmd = concierge();
    cmd.args(["nlu", "--now", NOW, "--file", "-", "我想取五千块"]);
    let out = run_with_stdin(cmd, "下周三下午三点半预约开户\n我的卡丢了\n".as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["intent"]["name"], "cash.withdraw", "{}", lines[0]);
    assert_eq!(lines[0]["slots"]["amount"], "5000");
    assert_eq!(lines[1]["slots"]["date"], "2026-12-02", "{}", lines[1]);
    assert_eq!(lines[1]["slots"]["time"], "15:30");
    assert_eq!(lines[1]["slots"]["service"], "account.open");
    assert_eq!(
        lines[2]["intent"]["name"], "card.report_loss",
        "{}",
        lines[2]
    );
}

#[tokio::test]
async fn parse_is_rate_limited_per_node_with_a_retry_after() {
    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.server.nlu_parse_per_sec = 0.5;
        s.server.nlu_parse_burst = 3;
    })
    .await;
    for _ in 0..3 {
        let (status, body) = parse(&app, json!({"text": "怎么挂失", "now": NOW})).await;
        assert_eq!(status, 200, "{body}");
    }
    let res = reqwest::Client::new()
        .post(app.http("/v1/nlu/parse"))
        .json(&json!({"text": "怎么挂失", "now": NOW}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let header: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["retry_after"], json!(header));
    assert!((1..=2).contains(&header), "{header}");
}
