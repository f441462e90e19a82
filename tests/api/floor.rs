//! The branch floor: queue numbers called by tellers (no number twice), people ahead and
//! the pace, the day's appointments for staff, holidays, and reminders sent once.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Engine};

on_both_engines!(
    tellers_call_numbers_in_order_and_never_the_same_one,
    appointments_list_holidays_and_reminders
);

async fn tellers_call_numbers_in_order_and_never_the_same_one(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let a = app.staff("chen", "teller").await;
    let b = app.staff("zhou", "teller").await;
    let day = concierge::domain::clock::now_local()
        .date_naive()
        .to_string();
    for n in 1..=6 {
        sqlx::query("INSERT INTO queue_tickets (id, branch_id, day, line, number, service, session_id, created_at) VALUES ($1, 'B001', $2, 'A', $3, 'cash.withdraw', NULL, $4)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&day)
            .bind(n as i64)
            .bind(concierge::store::now_ms())
            .execute(&app.state.db.pool)
            .await
            .unwrap();
    }
    assert_eq!(
        concierge::branch::queue::waiting(&app.state.db, "B001", "A", Some(4))
            .await
            .unwrap(),
        3,
        "three ahead of A004"
    );
    // Two tellers call at once, three times each: six different numbers, lowest first.
    let mut calls = Vec::new();
    for i in 0..6 {
        let (url, token) = (
            app.http("/v1/queue/call-next"),
            if i % 2 == 0 { a.clone() } else { b.clone() },
        );
        calls.push(tokio::spawn(async move {
            let res = reqwest::Client::new().post(url).bearer_auth(token).json(&json!({"branch": "B001", "line": "A", "counter": format!("{}号窗口", i % 2 + 1)})).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()["called"]["ticket"].as_str().unwrap().to_string()
        }));
    }
    let mut called = Vec::new();
    for c in calls {
        called.push(c.await.unwrap());
    }
    called.sort();
    assert_eq!(called, vec!["A001", "A002", "A003", "A004", "A005", "A006"]);
    let (s, r) = app
        .post_json(
            "/v1/queue/call-next",
            &a,
            json!({"branch": "B001", "line": "A", "counter": "1号窗口"}),
        )
        .await;
    assert_eq!(
        (s, r["called"].clone()),
        (StatusCode::OK, Value::Null),
        "nobody waits"
    );
    let board = app.get_json("/v1/queue?branch=B001&line=A", &a).await;
    assert_eq!(board["waiting"], json!([]));
    assert_eq!(board["called"].as_array().unwrap().len(), 6);
    assert!(
        board["minutes_per_customer"].as_f64().unwrap() >= 0.5,
        "{board}"
    );
    // Bad input.
    let (s, r) = app
        .post_json(
            "/v1/queue/call-next",
            &a,
            json!({"branch": "B001", "line": "Z", "counter": "1号窗口"}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_line"))
    );
    let (s, _) = app
        .post_json(
            "/v1/queue/call-next",
            &a,
            json!({"branch": "B001", "line": "A", "counter": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let editor = app.staff("wang", "content_editor").await;
    let (s, _) = app
        .post_json(
            "/v1/queue/call-next",
            &editor,
            json!({"branch": "B001", "line": "A", "counter": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn appointments_list_holidays_and_reminders(engine: Engine) {
    let app = spawn_app_with(engine, |s| {
        s.outbox.webhooks = vec![concierge::config::WebhookSettings {
            name: "sms".into(),
            url: "http://127.0.0.1:9/sms".into(),
            secret: "k".to_string().into(),
            reminders: true,
        }];
    })
    .await;
    let teller = app.staff("chen", "teller").await;
    let (mut kiosk, _, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;
    // A holiday of the rules' calendar: no appointments.
    let reply = kiosk.say("帮我预约2027年1月1日上午10点办理开户").await;
    let mut text = reply["text"].as_str().unwrap().to_string();
    for _ in 0..4 {
        if text.contains("不办理预约") {
            break;
        }
        let answer = if text.contains("确认吗") {
            "确认"
        } else {
            "13812345678"
        };
        text = kiosk.say(answer).await["text"]
            .as_str()
            .unwrap()
            .to_string();
    }
    assert!(text.contains("那天网点不办理预约业务"), "{text}");

    // Staff see the day's appointments, phones masked; another branch's teller may not ask.
    let tomorrow = concierge::domain::clock::now_local().date_naive() + chrono::Duration::days(1);
    sqlx::query("INSERT INTO appointments (code, branch_id, service, day, slot, phone_hash, phone_masked, session_id, status, created_at) VALUES ('K7P3QX', 'B001', 'account.open', $1, '10:00', 'h', '138****5678', NULL, 'booked', 0)")
        .bind(tomorrow.to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let list = app
        .get_json(
            &format!("/v1/appointments?branch=B001&day={tomorrow}"),
            &teller,
        )
        .await;
    assert_eq!(list["appointments"][0]["code"], "K7P3QX", "{list}");
    assert_eq!(list["appointments"][0]["phone_masked"], "138****5678");
    let other = app.staff("zhou", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "zhou", Some("B002"))
        .await
        .unwrap();
    let res = reqwest::Client::new()
        .get(app.http(&format!("/v1/appointments?branch=B001&day={tomorrow}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = reqwest::Client::new()
        .get(app.http("/v1/appointments?branch=B001&day=2026-13-01"))
        .bearer_auth(&teller)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // The reminder: not two days before, once within 24 hours, never twice.
    let starts =
        chrono::NaiveDateTime::parse_from_str(&format!("{tomorrow} 10:00"), "%Y-%m-%d %H:%M")
            .unwrap()
            .and_local_timezone(concierge::domain::clock::branch_offset())
            .unwrap()
            .timestamp_millis();
    let hooks = vec!["sms".to_string()];
    let db = &app.state.db;
    assert_eq!(
        concierge::branch::appointments::remind(db, starts - 48 * 3_600_000, 24, &hooks)
            .await
            .unwrap(),
        0
    );
    let near = starts - 2 * 3_600_000;
    let (x, y) = tokio::join!(
        concierge::branch::appointments::remind(db, near, 24, &hooks),
        concierge::branch::appointments::remind(db, near, 24, &hooks)
    );
    assert_eq!(x.unwrap() + y.unwrap(), 1, "exactly one reminder");
    let payload: String = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_id = 'appointment-reminder-K7P3QX'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        payload.contains("K7P3QX") && payload.contains("138****5678"),
        "{payload}"
    );
    app.stop().await;
}
