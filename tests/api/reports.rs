//! Reports (issue #19) through the real API after real traffic: kiosk sessions take a queue
//! number and leave, start an appointment and cancel it, ask for a person; a teller calls
//! the number. After the rollup job's pass, the reports' figures equal what this test
//! counts itself from the raw tables, a second pass changes nothing, the journeys report
//! shows how each journey ended and its funnel, branch scoping holds, CSV downloads, and
//! bad windows are refused with a stable code.

use std::collections::BTreeSet;

use chrono::Duration as Days;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Engine, Kiosk, TestApp};

on_both_engines!(
    the_reports_match_the_raw_tables_after_a_day_of_traffic,
    questions_nobody_answered_reach_content_staff_grouped_by_wording,
);

/// GET a report with `token`: status and body (JSON, or the text as a string).
async fn report(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(app.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let csv = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/csv"));
    let body = if csv {
        Value::String(res.text().await.unwrap())
    } else {
        res.json().await.unwrap_or(Value::Null)
    };
    (status, body)
}

async fn choose(k: &mut Kiosk, value: &str) -> Value {
    k.send(json!({"type": "user.choice", "value": value})).await;
    k.recv_type("bot.say").await
}

/// Counts from the raw tables, the way a person checking the dashboard would.
async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn the_reports_match_the_raw_tables_after_a_day_of_traffic(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    // A queue number, then goodbye: a journey completed in a session without a person.
    let (mut a, _, _) = app.new_session("K001").await;
    a.recv_type("bot.say").await;
    a.say("我要取个号").await;
    let printed = choose(&mut a, "cash.withdraw").await;
    assert!(
        printed["text"].as_str().unwrap().contains("号"),
        "{printed}"
    );
    a.say("再见").await;
    // An appointment started and cancelled.
    let (mut b, _, _) = app.new_session("K002").await;
    b.recv_type("bot.say").await;
    b.say("我想预约开户").await;
    b.say("算了不办了").await;
    // A person asked for.
    let (mut c, _, _) = app.new_session("K001").await;
    c.recv_type("bot.say").await;
    c.send(json!({"type": "user.text", "text": "转人工"})).await;
    c.recv_type("handoff").await;
    // A teller calls the number.
    let teller = app.staff("chen", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "chen", Some("B001"))
        .await
        .unwrap();
    let (s, r) = app
        .post_json(
            "/v1/queue/call-next",
            &teller,
            json!({"branch": "B001", "line": "A", "counter": "1号窗口"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["called"]["ticket"].is_string(), "{r}");

    let db = &app.state.db;
    let now = concierge::store::now_ms();
    assert!(concierge::reports::rollup::catch_up(db, now).await.unwrap() >= 1);
    let admin = app.staff("li", "admin").await;
    let today = concierge::domain::clock::now_local().date_naive();
    let window = format!(
        "from={}&to={}",
        today - Days::days(1),
        today + Days::days(1)
    );
    let (s, summary) = report(&app, &format!("/v1/reports/summary?{window}"), &admin).await;
    assert_eq!(s, StatusCode::OK, "{summary}");
    let t = &summary["totals"];

    // Every figure, recomputed from the raw tables.
    let ended_contained = count(
        &app,
        "SELECT COUNT(*) FROM sessions s WHERE s.ended_at IS NOT NULL AND s.turn_count > 0 \
         AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.session_id = s.id)",
    )
    .await;
    for (figure, sql) in [
        ("sessions", "SELECT COUNT(*) FROM sessions"),
        (
            "turns",
            "SELECT COUNT(*) FROM transcript_lines WHERE speaker = 'customer'",
        ),
        (
            "sessions_ended",
            "SELECT COUNT(*) FROM sessions WHERE ended_at IS NOT NULL",
        ),
        ("handoffs", "SELECT COUNT(*) FROM handoffs"),
        (
            "journeys_started",
            "SELECT COUNT(*) FROM journey_events WHERE event = 'started'",
        ),
        (
            "journeys_completed",
            "SELECT COUNT(*) FROM journey_events WHERE event = 'completed'",
        ),
        ("queue_issued", "SELECT COUNT(*) FROM queue_tickets"),
        (
            "queue_called",
            "SELECT COUNT(*) FROM queue_tickets WHERE called_at IS NOT NULL",
        ),
        ("tickets_created", "SELECT COUNT(*) FROM tickets"),
    ] {
        assert_eq!(t[figure], json!(count(&app, sql).await), "{figure}: {t}");
    }
    assert_eq!(t["contained"], json!(ended_contained), "{t}");
    // And what the traffic was: 3 sessions, one ended without a person.
    assert_eq!(t["sessions"], 3, "{t}");
    assert_eq!(t["contained"], 1, "{t}");
    assert_eq!(t["containment"], 1.0, "{t}");
    assert_eq!(t["queue_issued"], 1);
    assert_eq!(t["queue_called"], 1);
    assert!(t["queue_wait_minutes"].as_f64().unwrap() >= 0.0);

    // A second pass (or another node's) writes the same rows.
    concierge::reports::rollup::catch_up(db, concierge::store::now_ms())
        .await
        .unwrap();
    let (_, again) = report(&app, &format!("/v1/reports/summary?{window}"), &admin).await;
    assert_eq!(again["totals"], summary["totals"]);

    // How each journey ended, and the appointment's funnel in its flow's order.
    let (s, j) = report(&app, &format!("/v1/reports/journeys?{window}"), &admin).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let journey = |flow: &str| -> Value {
        j["journeys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["flow"] == flow)
            .cloned()
            .unwrap_or_else(|| panic!("{flow} in {j}"))
    };
    let queue = journey("queue.take_number");
    assert_eq!(
        (queue["started"].clone(), queue["completed"].clone()),
        (json!(1), json!(1)),
        "{queue}"
    );
    assert_eq!(queue["completion"], 1.0);
    let booking = journey("appointment.book");
    assert_eq!(booking["cancelled"], 1, "{booking}");
    assert_eq!(booking["unfinished"], 0, "{booking}");
    let funnel = booking["funnel"].as_array().unwrap();
    assert!(!funnel.is_empty(), "{booking}");
    let order = app.state.engine.step_order("appointment.book");
    let positions: Vec<usize> = funnel
        .iter()
        .map(|f| {
            order
                .iter()
                .position(|s| *s == f["step"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{f} is a step of the flow: {order:?}"))
        })
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
    let stepped = count(
        &app,
        "SELECT COUNT(*) FROM journey_events WHERE flow = 'appointment.book' AND event = 'step'",
    )
    .await;
    let reached: i64 = funnel.iter().map(|f| f["reached"].as_i64().unwrap()).sum();
    assert_eq!(reached, stepped);

    let (_, h) = report(&app, &format!("/v1/reports/handoffs?{window}"), &admin).await;
    assert_eq!(h["total"], 1, "{h}");
    assert_eq!(h["by_target"]["teller"], 1, "{h}");
    let (_, sla) = report(&app, &format!("/v1/reports/sla?{window}"), &admin).await;
    assert_eq!(sla["tickets_created"], t["tickets_created"], "{sla}");

    // This minute: the person asked for still waits; the number was called.
    let (s, now) = report(&app, "/v1/reports/now", &admin).await;
    assert_eq!(s, StatusCode::OK, "{now}");
    assert_eq!(now["handoffs_waiting"], 1, "{now}");
    assert_eq!(now["queue_waiting"], 0, "{now}");
    assert_eq!(now["sla_breached"], 0, "{now}");

    // Per kiosk: K002 had one session and no queue number.
    let (_, k2) = report(
        &app,
        &format!("/v1/reports/summary?{window}&kiosk=K002"),
        &admin,
    )
    .await;
    assert_eq!(k2["totals"]["sessions"], 1, "{k2}");
    assert_eq!(k2["totals"]["queue_issued"], 0, "{k2}");

    // Hourly buckets add up to the totals.
    let (_, hourly) = report(
        &app,
        &format!("/v1/reports/summary?{window}&group_by=hour"),
        &admin,
    )
    .await;
    let sessions: i64 = hourly["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sessions"].as_i64().unwrap())
        .sum();
    assert_eq!(sessions, 3, "{hourly}");

    // Branch scoping: a teller of B001 sees B001; one of B002 sees nothing of it and may
    // not ask for it.
    let (s, own) = report(&app, &format!("/v1/reports/summary?{window}"), &teller).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(own["window"]["branch"], "B001");
    assert_eq!(own["totals"]["sessions"], 3);
    let zhou = app.staff("zhou", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "zhou", Some("B002"))
        .await
        .unwrap();
    let (_, other) = report(&app, &format!("/v1/reports/summary?{window}"), &zhou).await;
    assert_eq!(other["totals"]["sessions"], 0, "{other}");
    let (s, r) = report(
        &app,
        &format!("/v1/reports/summary?{window}&branch=B001"),
        &zhou,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(r["error"]["code"], "other_branch", "{r}");

    // CSV: one line per bucket under a header.
    let (s, csv) = report(
        &app,
        &format!("/v1/reports/journeys?{window}&format=csv"),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let csv = csv.as_str().unwrap();
    let header: BTreeSet<&str> = csv.lines().next().unwrap().split(',').collect();
    assert!(
        header.contains("flow") && header.contains("completed"),
        "{csv}"
    );
    assert!(csv.contains("queue.take_number"), "{csv}");

    // Refused: a bad window, an unknown report or format, a role without reports.
    for (path, status, code) in [
        ("/v1/reports/summary?from=2026-02-30", 400, "invalid_window"),
        (
            "/v1/reports/summary?from=2026-12-09&to=2026-12-01",
            400,
            "invalid_window",
        ),
        ("/v1/reports/summary?format=xlsx", 400, "invalid_format"),
        ("/v1/reports/weather", 404, "not_found"),
    ] {
        let (s, r) = report(&app, path, &admin).await;
        assert_eq!(
            (s.as_u16(), r["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {r}"
        );
    }
    let editor = app.staff("wang", "content_editor").await;
    assert_eq!(
        report(&app, "/v1/reports/summary", &editor).await.0,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

async fn questions_nobody_answered_reach_content_staff_grouped_by_wording(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    for (kiosk, asked) in [
        ("K001", "你们网点的猫叫什么名字"),
        ("K002", "你们网点那只猫叫什么名字"),
    ] {
        let (mut k, _, _) = app.new_session(kiosk).await;
        k.recv_type("bot.say").await;
        let reply = k.say(asked).await;
        assert!(
            reply["ui"]["article"].is_null(),
            "answered {asked}: {reply}"
        );
    }
    let missed = count(
        &app,
        "SELECT COUNT(*) FROM transcript_lines WHERE unanswered IS NOT NULL",
    )
    .await;
    assert_eq!(missed, 2, "both questions are marked unanswered");

    let editor = app.staff("wang", "content_editor").await;
    let (s, r) = report(&app, "/v1/reports/unanswered", &editor).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let group = &r["groups"][0];
    assert_eq!(group["count"], 2, "one question in two wordings: {r}");
    assert_eq!(group["sessions"], 2, "{r}");
    assert_eq!(group["samples"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(
        group["text"], "你们网点那只猫叫什么名字",
        "the newest wording leads"
    );
    // The floor's roles do not read content staff's queue.
    let teller = app.staff("chen", "teller").await;
    assert_eq!(
        report(&app, "/v1/reports/unanswered", &teller).await.0,
        StatusCode::FORBIDDEN
    );
    // The reports count them.
    concierge::reports::rollup::catch_up(&app.state.db, concierge::store::now_ms())
        .await
        .unwrap();
    let admin = app.staff("li", "admin").await;
    let today = concierge::domain::clock::now_local().date_naive();
    let (_, summary) = report(
        &app,
        &format!(
            "/v1/reports/summary?from={}&to={}",
            today - Days::days(1),
            today + Days::days(1)
        ),
        &admin,
    )
    .await;
    assert_eq!(summary["totals"]["unanswered"], 2, "{summary}");
    app.stop().await;
}
