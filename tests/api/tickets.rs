//! Tickets and live handoff through the real APIs: a kiosk hands off, a teller on the staff
//! WebSocket sees it, accepts, talks through the relay and resolves; claims race; illegal
//! moves are refused; SLA warnings and escalations happen once, whatever the clock does.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app_with, Engine, TestApp, WAIT};

on_both_engines!(
    branch_scoped_staff_never_see_other_branches,
    a_handoff_is_accepted_relayed_and_resolved,
    two_tellers_claiming_one_ticket_one_wins,
    sla_warns_and_escalates_once_whatever_the_clock_does,
    the_sla_watcher_reads_only_tickets_whose_moment_has_come,
);

/// A staff console over the real staff WebSocket.
pub(crate) struct Console {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Console {
    pub(crate) async fn connect(app: &TestApp, token: &str) -> Console {
        let url = format!("ws://127.0.0.1:{}/v1/staff/ws?token={token}", app.port);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("staff ws");
        let mut c = Console { ws };
        let w = c.recv().await;
        assert_eq!(w["type"], "welcome", "{w}");
        c
    }

    async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub(crate) async fn recv(&mut self) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a staff message in time")
            {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("staff ws ended: {other:?}"),
            }
        }
    }

    /// Skips messages until a ticket event of `kind` arrives.
    pub(crate) async fn event(&mut self, kind: &str) -> Value {
        loop {
            let m = self.recv().await;
            if m["type"] == "ticket.event" && m["event"]["kind"] == kind {
                return m;
            }
        }
    }

    /// The answer to a command (skipping ticket events).
    async fn answer(&mut self) -> Value {
        loop {
            let m = self.recv().await;
            if m["type"] != "ticket.event" {
                return m;
            }
        }
    }
}

/// A webhook receiver on a random port: every request's headers and body.
pub(crate) async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let store = got.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, got)
}

async fn a_handoff_is_accepted_relayed_and_resolved(engine: Engine) {
    let (hook, delivered) = receiver().await;
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
    let teller = app.staff("chen", "teller").await;
    let mut console = Console::connect(&app, &teller).await;
    let (mut kiosk, session, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;

    // The customer asks for a person: a ticket, the kiosk waits, the teller hears of it.
    kiosk
        .send(json!({"type": "user.text", "text": "我要找人工柜员"}))
        .await;
    let asked = Instant::now();
    let waiting = kiosk.recv_type("handoff").await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    let number = waiting["ticket_number"].as_str().unwrap().to_string();
    assert!(number.starts_with("B001-"), "{number}");
    let offer = console.event("created").await;
    println!(
        "handoff seen by the teller {:?} after the request",
        asked.elapsed()
    );
    assert_eq!(offer["ticket"]["number"], number);
    assert_eq!(offer["ticket"]["session_id"], session);
    let id = offer["ticket"]["id"].as_str().unwrap().to_string();

    // Accept: the kiosk is connected to a person and the bot says so.
    console.send(json!({"type": "accept", "ticket": id})).await;
    assert_eq!(console.answer().await["type"], "ok");
    let connected = kiosk.recv_type("handoff").await;
    assert_eq!(connected["status"], "connected", "{connected}");
    let said = kiosk.recv_type("bot.say").await;
    assert!(
        said["text"].as_str().unwrap().contains("工作人员已接入"),
        "{said}"
    );

    // The relay: the customer's words reach the teller masked; the teller's reach the kiosk.
    kiosk
        .send(json!({"type": "user.text", "text": "我的手机号是13812345678，卡被冻结了"}))
        .await;
    let heard = console.event("relay_customer").await;
    let line = heard["event"]["comment"].as_str().unwrap();
    assert!(
        line.contains("138****5678") && !line.contains("13812345678"),
        "{line}"
    );
    console.send(json!({"type": "say", "ticket": id, "text": "您好，我是柜员小陈，请到3号窗口办理解冻。"})).await;
    assert_eq!(console.answer().await["type"], "ok");
    let agent = kiosk.recv_type("agent.say").await;
    assert!(
        agent["text"].as_str().unwrap().contains("3号窗口"),
        "{agent}"
    );

    // Resolved over REST: the kiosk is handed back to the bot.
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/transition"),
            &teller,
            json!({"to": "resolved", "comment": "已到柜台办理"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let ended = kiosk.recv_type("handoff").await;
    assert_eq!(ended["status"], "ended");
    let back = kiosk.recv_type("bot.say").await;
    assert!(back["text"].as_str().unwrap().contains("小安"), "{back}");
    // And the bot talks again.
    let reply = kiosk.say("你好").await;
    assert!(reply["text"].as_str().unwrap().contains("您好"), "{reply}");

    // History, case packet, audit chain, outbox.
    let detail = app.get_json(&format!("/v1/tickets/{id}"), &teller).await;
    let kinds: Vec<String> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "created:new",
            "state:assigned",
            "relay_customer:",
            "state:in_progress",
            "relay_staff:",
            "state:resolved"
        ],
        "{detail}"
    );
    let case = detail["ticket"]["case"].to_string();
    assert!(
        case.contains("我要找人工柜员"),
        "the case packet holds the transcript: {case}"
    );
    assert!(detail["ticket"]["first_response_at"].is_i64());
    let (links, broken) = concierge::tickets::verify_chain(&app.state.db)
        .await
        .unwrap();
    assert_eq!((links, broken), (6, None));
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE target = 'workflow'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(outbox, 6, "one delivery per event");
    // Delivered to the workflow engine, signed, each event once.
    let deadline = Instant::now() + WAIT;
    while delivered.lock().unwrap().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "the outbox did not deliver every event"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = delivered.lock().unwrap().clone();
    let mut ids = std::collections::BTreeSet::new();
    for (headers, body) in &got {
        let signature = headers["x-concierge-signature"].to_str().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert_eq!(
            concierge::ports::outbox::verify_signature(
                b"s3cret",
                signature,
                body.as_bytes(),
                now,
                300
            ),
            Ok(())
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["ticket"]["number"], number);
        assert!(!body.contains("13812345678"), "{body}");
        ids.insert(
            headers["x-concierge-event-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(ids.len(), 6, "six distinct events");
    // The transcript has the person's line as theirs.
    let transcript = app
        .get_json(&format!("/v1/sessions/{session}/transcript"), &teller)
        .await;
    assert!(transcript.to_string().contains("\"staff\""), "{transcript}");
    app.stop().await;
}

async fn two_tellers_claiming_one_ticket_one_wins(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let a = app.staff("chen", "teller").await;
    let b = app.staff("zhou", "teller").await;
    let (s, r) = app.post_json( "/v1/tickets", &a, json!({"kind": "card_reissue", "branch": "B001", "customer_ref": "13812345678", "note": "补卡，手机号13812345678"})).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let id = r["ticket"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r["ticket"]["state"], "new",
        "nobody online: it waits in the queue"
    );
    let mut claims = Vec::new();
    for i in 0..8 {
        let (app_url, token, id) = (
            app.http(&format!("/v1/tickets/{id}/claim")),
            if i % 2 == 0 { a.clone() } else { b.clone() },
            id.clone(),
        );
        let _ = id;
        claims.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(app_url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for c in claims {
        statuses.push(c.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        7,
        "{statuses:?}"
    );
    // The customer reference and note are stored masked.
    let detail = app.get_json(&format!("/v1/tickets/{id}"), &a).await;
    assert_eq!(detail["ticket"]["customer_ref"], "138****5678");
    assert!(!detail.to_string().contains("13812345678"), "{detail}");

    // Illegal moves and wrong roles.
    let owner = detail["ticket"]["assignee"].as_str().unwrap().to_string();
    let (owner_token, other_token) = if owner == "chen" { (&a, &b) } else { (&b, &a) };
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/transition"),
            owner_token,
            json!({"to": "closed"}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("illegal_transition")),
        "{r}"
    );
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/transition"),
            other_token,
            json!({"to": "in_progress"}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_owner")),
        "{r}"
    );
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/transition"),
            owner_token,
            json!({"to": "flying"}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_state")),
        "{r}"
    );
    let editor = app.staff("wang", "content_editor").await;
    let res = reqwest::Client::new()
        .get(app.http("/v1/tickets"))
        .bearer_auth(&editor)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let expert = app.staff("liu", "remote_expert").await;
    let res = reqwest::Client::new()
        .get(app.http(&format!("/v1/tickets/{id}")))
        .bearer_auth(&expert)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "back_office is worked by remote experts too"
    );
    let (s, _) = app
        .post_json(
            "/v1/tickets",
            &a,
            json!({"kind": "teleport", "branch": "B001"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A supervisor reassigns; a teller may not.
    let (s, _) = app
        .post_json(
            &format!("/v1/tickets/{id}/reassign"),
            other_token,
            json!({"to": "zhou"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let sup = app.staff("supervisor", "teller").await;
    let (s, r) = app
        .post_json(
            &format!("/v1/tickets/{id}/reassign"),
            &sup,
            json!({"to": "zhou", "comment": "chen 下班了"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["ticket"]["assignee"], "zhou");
    app.stop().await;
}

async fn sla_warns_and_escalates_once_whatever_the_clock_does(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let teller = app.staff("chen", "teller").await;
    let (s, r) = app
        .post_json(
            "/v1/tickets",
            &teller,
            json!({"kind": "complaint", "branch": "B001", "note": "排队太久"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        r["ticket"]["priority"], "high",
        "complaints are high priority by rule"
    );
    let id = r["ticket"]["id"].as_str().unwrap().to_string();
    let t = app.state.tickets.get(&id).await.unwrap();
    let due = t.first_response_due.unwrap();
    assert!(due > t.created_at);
    let tickets = app.state.tickets.clone();
    // Before 75 %: nothing. The clock jumps back: nothing either.
    tickets
        .check_sla(t.created_at + (due - t.created_at) / 2)
        .await
        .unwrap();
    tickets.check_sla(t.created_at - 3_600_000).await.unwrap();
    // At 80 %: one warning, however often (and on however many nodes) it is checked.
    let at80 = t.created_at + (due - t.created_at) * 4 / 5;
    let (x, y) = tokio::join!(tickets.check_sla(at80), tickets.check_sla(at80));
    x.unwrap();
    y.unwrap();
    // The clock jumps far past the deadline: one escalation.
    for _ in 0..3 {
        tickets.check_sla(due + 86_400_000).await.unwrap();
    }
    let events = app.state.tickets.history(&id).await.unwrap();
    let count = |k: &str, stage: &str| {
        events
            .iter()
            .filter(|e| e.kind == k && e.data["stage"] == stage)
            .count()
    };
    assert_eq!(count("sla_warning", "response"), 1, "{events:?}");
    assert_eq!(count("sla_escalated", "response"), 1, "{events:?}");
    let esc = events.iter().find(|e| e.kind == "sla_escalated").unwrap();
    assert_eq!(esc.data["supervisor"], "supervisor");
    // A teller who responds stops the response clock; the resolution clock goes on.
    app.state.tickets.claim(&id, "chen").await.unwrap();
    app.state
        .tickets
        .transition(
            &id,
            concierge::tickets::model::TicketState::InProgress,
            "chen",
            "",
            None,
        )
        .await
        .unwrap();
    let t = app.state.tickets.get(&id).await.unwrap();
    tickets
        .check_sla(t.resolution_due.unwrap() + 1)
        .await
        .unwrap();
    let events = app.state.tickets.history(&id).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == "sla_escalated").count(),
        2
    );
    assert_eq!(
        concierge::tickets::verify_chain(&app.state.db)
            .await
            .unwrap()
            .1,
        None
    );
    app.stop().await;
}

/// The ticket's `sla_next_at` as stored.
async fn sla_next_at(app: &TestApp, id: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT sla_next_at FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn the_sla_watcher_reads_only_tickets_whose_moment_has_come(engine: Engine) {
    use concierge::tickets::model::TicketState;
    let app = spawn_app_with(engine, |s| s.tickets.sla_check_secs = 3600).await;
    let tickets = app.state.tickets.clone();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let t = tickets
            .open(
                "complaint",
                "B001",
                None,
                None,
                None,
                json!({}),
                &[],
                "test",
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    let t = tickets.get(&ids[0]).await.unwrap();
    let due = t.first_response_due.unwrap();
    let warn = concierge::tickets::sla::warn_at(t.created_at, due);
    // A new ticket's next moment is its response warning.
    assert_eq!(sla_next_at(&app, &ids[0]).await, Some(warn));
    // Before it, the watcher reads nothing at all.
    assert_eq!(tickets.check_sla(warn - 1).await.unwrap(), 0);
    // Resolved: nothing left to watch, so it is not read again.
    tickets.claim(&ids[1], "chen").await.unwrap();
    tickets
        .transition(&ids[1], TicketState::InProgress, "chen", "", None)
        .await
        .unwrap();
    let responded = tickets.get(&ids[1]).await.unwrap();
    assert_eq!(
        sla_next_at(&app, &ids[1]).await,
        Some(concierge::tickets::sla::warn_at(
            responded.created_at,
            responded.resolution_due.unwrap()
        )),
        "a response moves the next moment to the resolution warning"
    );
    tickets
        .transition(&ids[1], TicketState::Resolved, "chen", "", None)
        .await
        .unwrap();
    assert_eq!(sla_next_at(&app, &ids[1]).await, None);
    // A ticket from before the column existed (the migration makes it due at once) is
    // read once and gets its real moment.
    sqlx::query("UPDATE tickets SET sla_next_at = 0 WHERE id = $1")
        .bind(&ids[2])
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(tickets.check_sla(warn - 1).await.unwrap(), 1);
    assert!(sla_next_at(&app, &ids[2]).await.unwrap() >= warn);
    assert_eq!(tickets.check_sla(warn - 1).await.unwrap(), 0);
    // At the warning moment, the two open tickets are read and warned; then their next
    // moment is the deadline.
    assert_eq!(tickets.check_sla(warn + 1000).await.unwrap(), 2);
    assert_eq!(sla_next_at(&app, &ids[0]).await, Some(due));
    assert_eq!(tickets.check_sla(warn + 1000).await.unwrap(), 0);
    let warned = tickets.history(&ids[0]).await.unwrap();
    assert_eq!(
        warned.iter().filter(|e| e.kind == "sla_warning").count(),
        1,
        "{warned:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn nobody_accepting_in_time_offers_a_number_and_keeps_the_ticket() {
    let app = spawn_app_with(Engine::Sqlite, |s| s.tickets.handoff_wait_secs = 1).await;
    let (mut kiosk, session, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;
    kiosk
        .send(json!({"type": "user.text", "text": "转人工"}))
        .await;
    let waiting = kiosk.recv_type("handoff").await;
    assert_eq!(waiting["status"], "waiting");
    loop {
        let m = kiosk.recv_type("bot.say").await;
        if m["text"].as_str().unwrap().contains("都在忙") {
            let choices: Vec<&str> = m["ui"]["choices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["value"].as_str().unwrap())
                .collect();
            assert_eq!(choices, vec!["queue.take_number", "appointment.book"]);
            break;
        }
    }
    let list = app
        .state
        .tickets
        .list(&concierge::tickets::model::Filter {
            session: Some(session),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();

    assert_eq!(
        list[0].state,
        concierge::tickets::model::TicketState::New,
        "still queued"
    );
    // The customer takes a number meanwhile: the bot serves them again.
    kiosk
        .send(json!({"type": "user.choice", "value": "queue.take_number"}))
        .await;
    let next = kiosk.recv_type("bot.say").await;
    assert!(!next["text"].as_str().unwrap().is_empty());
    // The customer walks away: the ticket says so (staff need not look for them).
    kiosk
        .send(json!({"type": "session.close", "reason": "walked_away"}))
        .await;
    let id = list[0].id.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let events = app.state.tickets.history(&id).await.unwrap();
        if events.iter().any(|e| e.kind == "customer_left") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "customer_left never recorded: {events:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}

async fn branch_scoped_staff_never_see_other_branches(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let here = app.staff("chen", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "chen", Some("B001"))
        .await
        .unwrap();
    let there = app.staff("zhou", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "zhou", Some("B002"))
        .await
        .unwrap();
    let (s, r) = app
        .post_json(
            "/v1/tickets",
            &here,
            json!({"kind": "card_reissue", "branch": "B001"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let id = r["ticket"]["id"].as_str().unwrap().to_string();
    // Another branch's ticket is "not found" for them — by id, by list, by claim.
    let res = reqwest::Client::new()
        .get(app.http(&format!("/v1/tickets/{id}")))
        .bearer_auth(&there)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let list = app.get_json("/v1/tickets", &there).await;
    assert_eq!(list["tickets"], json!([]), "{list}");
    let (s, _) = app
        .post_json(&format!("/v1/tickets/{id}/claim"), &there, json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut console = Console::connect(&app, &there).await;
    console.send(json!({"type": "accept", "ticket": id})).await;
    assert_eq!(console.answer().await["code"], "not_found");
    // Nor may they open tickets for it.
    let (s, r) = app
        .post_json(
            "/v1/tickets",
            &there,
            json!({"kind": "card_reissue", "branch": "B001"}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("other_branch"))
    );
    // Their own branch's teller can.
    let (s, _) = app
        .post_json(&format!("/v1/tickets/{id}/claim"), &here, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Resolved long ago: closed automatically, once.
    let tickets = app.state.tickets.clone();
    tickets
        .transition(
            &id,
            concierge::tickets::model::TicketState::InProgress,
            "chen",
            "",
            None,
        )
        .await
        .unwrap();
    tickets
        .transition(
            &id,
            concierge::tickets::model::TicketState::Resolved,
            "chen",
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        tickets
            .auto_close(concierge::store::now_ms())
            .await
            .unwrap(),
        0,
        "not yet"
    );
    let later = concierge::store::now_ms() + 73 * 3_600_000;
    assert_eq!(tickets.auto_close(later).await.unwrap(), 1);
    assert_eq!(tickets.auto_close(later).await.unwrap(), 0);
    let t = tickets.get(&id).await.unwrap();
    assert_eq!(t.state, concierge::tickets::model::TicketState::Closed);
    app.stop().await;
}

#[tokio::test]
async fn release_hands_back_routing_balances_and_bad_console_input_is_answered() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    let chen = app.staff("chen", "teller").await;
    let zhou = app.staff("zhou", "teller").await;
    let mut c1 = Console::connect(&app, &chen).await;
    let _c2 = Console::connect(&app, &zhou).await;

    // Bad input on the console: clear errors, the connection stays.
    c1.ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(c1.answer().await["code"], "malformed_message");
    c1.send(json!({"type": "dance", "ticket": "x"})).await;
    assert_eq!(c1.answer().await["code"], "unknown_message_type");
    c1.send(json!({"type": "accept", "ticket": "x"})).await;
    assert_eq!(c1.answer().await["code"], "not_found");
    c1.send(json!({"type": "accept"})).await;
    assert_eq!(c1.answer().await["code"], "malformed_message");
    c1.send(json!({"type": "accept", "ticket": "9".repeat(65)}))
        .await;
    assert_eq!(c1.answer().await["code"], "malformed_message");
    c1.ws
        .send(Message::Text("x".repeat(20_000).into()))
        .await
        .unwrap();
    assert_eq!(c1.answer().await["code"], "frame_too_large");
    c1.send(json!({"type": "ping"})).await;
    assert_eq!(c1.answer().await["type"], "pong");
    let res = reqwest::Client::new()
        .get(app.http("/v1/staff/ws?token=cs_expired"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Back-office tickets go to the least-loaded online teller, ties in turn.
    let mut owners = Vec::new();
    for _ in 0..4 {
        let (s, r) = app
            .post_json(
                "/v1/tickets",
                &chen,
                json!({"kind": "card_reissue", "branch": "B001"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        owners.push(r["ticket"]["assignee"].as_str().unwrap().to_string());
    }
    owners.sort();
    assert_eq!(owners, vec!["chen", "chen", "zhou", "zhou"], "balanced");

    // A handoff accepted, then handed back to the bot by the teller.
    let (mut kiosk, _, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;
    kiosk
        .send(json!({"type": "user.text", "text": "转人工"}))
        .await;
    kiosk.recv_type("handoff").await;
    let offer = loop {
        let e = c1.event("created").await;
        if e["ticket"]["kind"] == "handoff" {
            break e;
        }
    };
    let id = offer["ticket"]["id"].as_str().unwrap().to_string();
    c1.send(json!({"type": "say", "ticket": id, "text": "在吗"}))
        .await;
    assert_eq!(c1.answer().await["code"], "not_owner", "not accepted yet");
    c1.send(json!({"type": "accept", "ticket": id})).await;
    assert_eq!(
        c1.answer().await,
        json!({"type": "ok", "for": "accept", "ticket": id})
    );
    assert_eq!(kiosk.recv_type("handoff").await["status"], "connected");
    c1.send(json!({"type": "accept", "ticket": id})).await;
    assert_eq!(c1.answer().await["code"], "already_claimed");
    c1.send(json!({"type": "say", "ticket": id, "text": "  "}))
        .await;
    assert_eq!(c1.answer().await["code"], "invalid_text");
    c1.send(json!({"type": "release", "ticket": id})).await;
    assert_eq!(c1.answer().await["type"], "ok");
    assert_eq!(kiosk.recv_type("handoff").await["status"], "ended");
    let back = kiosk.recv_type("bot.say").await;
    assert!(back["text"].as_str().unwrap().contains("小安"), "{back}");
    let reply = kiosk.say("你好").await;
    assert!(
        reply["text"].as_str().unwrap().contains("您好"),
        "the bot is back: {reply}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_remote_expert_gets_a_call_link() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    let expert = app.staff("liu", "remote_expert").await;
    let teller = app.staff("chen", "teller").await;
    let mut console = Console::connect(&app, &expert).await;
    let mut counter = Console::connect(&app, &teller).await;
    let (mut kiosk, _, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;
    kiosk
        .send(json!({"type": "user.text", "text": "我要视频连线远程专家"}))
        .await;
    let waiting = kiosk.recv_type("handoff").await;
    assert_eq!(
        (waiting["kind"].as_str(), waiting["status"].as_str()),
        (Some("remote_expert"), Some("waiting")),
        "{waiting}"
    );
    let offer = console.event("created").await;
    assert_eq!(offer["ticket"]["queue"], "remote");
    // A teller does not work the remote queue.
    counter
        .send(json!({"type": "accept", "ticket": offer["ticket"]["id"]}))
        .await;
    assert_eq!(counter.answer().await["code"], "not_found");
    console
        .send(json!({"type": "accept", "ticket": offer["ticket"]["id"]}))
        .await;
    assert_eq!(console.answer().await["type"], "ok");
    let connected = kiosk.recv_type("handoff").await;
    assert_eq!(connected["status"], "connected");
    let number = waiting["ticket_number"].as_str().unwrap();
    assert_eq!(
        connected["call_link"],
        format!("https://video.bank.example/room/{number}")
    );
    app.stop().await;
}
