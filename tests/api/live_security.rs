//! Live connections that cannot be abused: revocation reaches open sockets, screens do not
//! stand in for identity devices, a stuck or half-open kiosk never stalls the others, one
//! kiosk cannot hold unlimited connections, and staff consoles hear only their branch.

use std::time::{Duration, Instant};

use concierge::config::{Overrides, Settings};
use concierge::live::Kick;
use concierge::tickets::model::NewEvent;
use kiosk_protocol::PeerRole;
use serde_json::json;

use crate::helpers::{
    fresh_postgres, project_root, spawn_app_with, spawn_on, Engine, Kiosk, TestApp,
};

/// A staff console over the real staff WebSocket, its welcome read.
async fn console(app: &TestApp, token: &str) -> Kiosk {
    let mut c = Kiosk::connect(&format!(
        "ws://127.0.0.1:{}/v1/staff/ws?token={token}",
        app.port
    ))
    .await;
    assert_eq!(c.recv().await["type"], "welcome");
    c
}

/// Says hello as a peer of `kiosk` with `role` and `capabilities`; the welcome.
async fn hello(app: &TestApp, kiosk: &str, token: &str, role: &str, caps: &[&str]) -> Kiosk {
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": kiosk, "token": token, "role": role, "capabilities": caps}))
        .await;
    assert_eq!(k.recv().await["type"], "welcome");
    k
}

#[tokio::test]
async fn a_revoked_kiosk_token_ends_its_live_connections_within_seconds() {
    let app = spawn_app_with(Engine::Sqlite, |s| s.live.recheck_secs = 1).await;
    let (mut screen, _, _) = app.new_session("K001").await;
    screen.recv_type("bot.say").await;
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let mut adapter = hello(&app, "K001", &token, "devices", &["device:camera"]).await;
    let admin = app.staff("ops", "admin").await;
    let revoked_at = Instant::now();
    let (status, body) = app
        .post_json("/v1/admin/kiosks/K001/revoke", &admin, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let end = screen.recv_type("session.end").await;
    assert_eq!(end["reason"], "revoked", "{end}");
    assert_eq!(screen.expect_closed().await, Some(1008));
    assert_eq!(adapter.recv_type("session.end").await["reason"], "revoked");
    assert_eq!(adapter.expect_closed().await, Some(1008));
    assert!(revoked_at.elapsed() < Duration::from_secs(4));
}

/// Revocation reaches every node: the token is revoked through one node, the kiosk's live
/// connection is on another (both on one PostgreSQL database).
#[tokio::test]
async fn a_token_revoked_on_one_node_closes_the_connection_on_another() {
    let url = fresh_postgres().await;
    let a = spawn_on(&url, &project_root(), |s| s.live.recheck_secs = 1).await;
    let b = spawn_on(&url, &project_root(), |s| s.live.recheck_secs = 1).await;
    let (mut screen, _, _) = b.new_session("K001").await;
    screen.recv_type("bot.say").await;
    let admin = a.staff("ops", "admin").await;
    let revoked_at = Instant::now();
    let (status, body) = a
        .post_json("/v1/admin/kiosks/K001/revoke", &admin, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(screen.recv_type("session.end").await["reason"], "revoked");
    assert_eq!(screen.expect_closed().await, Some(1008));
    assert!(revoked_at.elapsed() < Duration::from_secs(4));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_logged_out_or_disabled_staff_member_loses_the_console() {
    let app = spawn_app_with(Engine::Sqlite, |s| s.live.recheck_secs = 1).await;
    let chen = app.staff("chen", "teller").await;
    let zhou = app.staff("zhou", "teller").await;
    let mut chen_console = console(&app, &chen).await;
    let mut zhou_console = console(&app, &zhou).await;
    let (status, _) = app.post_json("/v1/auth/logout", &chen, json!({})).await;
    assert_eq!(status, 200);
    sqlx::query("UPDATE staff_users SET enabled = 0 WHERE name = 'zhou'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(chen_console.expect_closed().await, Some(1008));
    assert_eq!(zhou_console.expect_closed().await, Some(1008));
}

#[tokio::test]
async fn an_expired_staff_token_closes_the_console() {
    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.live.recheck_secs = 1;
        s.auth.staff_token_ttl_secs = 2;
    })
    .await;
    let token = app.staff("chen", "teller").await;
    let mut c = console(&app, &token).await;
    let opened = Instant::now();
    assert_eq!(c.expect_closed().await, Some(1008));
    assert!(opened.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_screen_neither_drives_identity_devices_nor_answers_their_calls() {
    let shipped = Settings::load_with_env(&Overrides::default(), false).unwrap();
    assert!(!shipped.live.screen_devices.iter().any(|d| d == "*"));
    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.live.screen_devices = shipped.live.screen_devices.clone()
    })
    .await;
    let caps = [
        "text",
        "choices",
        "device:id_card",
        "device:receipt_printer",
    ];
    // Alone, a screen's ID reader is refused (a stable code) and never registered.
    let token = app.kiosk("K002", "B001", PeerRole::Screen).await;
    let mut alone = hello(&app, "K002", &token, "screen", &caps).await;
    alone.expect_error("not_allowed_for_role").await;
    assert_eq!(
        app.state.broker.devices_of("K002"),
        vec!["receipt_printer".to_string()]
    );

    // With the adapter connected, the screen cannot answer the adapter's ID read.
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let mut adapter = hello(&app, "K001", &token, "devices", &["device:id_card"]).await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut screen = hello(&app, "K001", &token, "screen", &caps).await;
    screen.expect_error("not_allowed_for_role").await;
    screen.recv_type("bot.say").await;
    screen
        .send(json!({"type": "user.text", "text": "我的银行卡丢了，快帮我挂失"}))
        .await;
    let invoke = adapter.recv_type("device.invoke").await;
    assert_eq!(invoke["device"], "id_card");
    let forged = json!({"name": "李四", "id_number": "110101199003071234", "address": "某地",
        "valid_until": "2040-01-01", "photo_hash": "00"});
    screen.send(json!({"type": "device.result", "call_id": invoke["call_id"], "ok": true, "data": forged}))
        .await;
    let refused = screen.recv_type("error").await;
    assert_eq!(refused["code"], "not_allowed_for_role", "{refused}");
    // The call still waits for its adapter, which answers it.
    adapter
        .send(
            json!({"type": "device.result", "call_id": invoke["call_id"], "ok": false,
        "error": {"code": "no_card", "message": "no card"}}),
        )
        .await;
    screen.recv_type("bot.say").await;
    let code: Option<String> = sqlx::query_scalar("SELECT code FROM device_calls")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(code.as_deref(), Some("no_card"));
}

#[tokio::test]
async fn one_kiosk_holds_a_bounded_number_of_connections() {
    let app = spawn_app_with(Engine::Sqlite, |s| s.live.max_connections_per_kiosk = 2).await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut first = app.connect().await;
    first.hello("K001", &token, None).await;
    let mut second = app.connect().await;
    second.hello("K001", &token, None).await;
    let mut third = app.connect().await;
    third
        .send(json!({"type": "hello", "kiosk_id": "K001", "token": token}))
        .await;
    third.expect_error("rate_limited").await;
    assert_eq!(third.expect_closed().await, Some(1008));
    // Another kiosk is not affected, and a freed place is taken again.
    app.new_session("K002").await;
    first.ws.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = app.connect().await;
        again
            .send(json!({"type": "hello", "kiosk_id": "K001", "token": token}))
            .await;
        if again.recv().await["type"] == "welcome" {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_stuck_session_does_not_hold_up_the_ticket_events_of_others() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    // A live session whose inbox nobody reads (its turn worker is stuck).
    let (stuck_tx, _never_read) = tokio::sync::mpsc::channel(1);
    let kick = Kick::new();
    app.state
        .hub
        .take_over(
            "stuck-session",
            "K009",
            u64::MAX,
            kick.clone(),
            stuck_tx.clone(),
        )
        .await;
    let tickets = app.state.tickets.clone();
    let stuck = tickets
        .open(
            "handoff",
            "B001",
            Some("K009"),
            Some("stuck-session"),
            None,
            json!({}),
            &[],
            "test",
        )
        .await
        .unwrap();
    for _ in 0..3 {
        tickets
            .note(
                &stuck.id,
                NewEvent::note("note", "test", "again", json!({})),
            )
            .await
            .unwrap();
    }
    // Another customer asks for a person and is accepted: they hear of it at once.
    app.staff("chen", "teller").await;
    let (mut kiosk, _, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;
    kiosk
        .send(json!({"type": "user.text", "text": "我要找人工柜员"}))
        .await;
    let waiting = kiosk.recv_type("handoff").await;
    let number = waiting["ticket_number"].as_str().unwrap();
    let theirs = tickets.get(number).await.unwrap();
    let claimed = Instant::now();
    tickets.claim(&theirs.id, "chen").await.unwrap();
    let connected = kiosk.recv_type("handoff").await;
    assert_eq!(connected["status"], "connected", "{connected}");
    assert!(claimed.elapsed() < Duration::from_secs(3));
    // The stuck one was closed (it resumes from the store), and counted.
    assert_eq!(kick.reason(), Some("lagging"));
    assert!(app.state.hub.lagging_closed() >= 1);
}

#[tokio::test]
async fn a_half_open_kiosk_is_closed_and_the_others_go_on() {
    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.live.ping_secs = 1;
        s.live.dead_peer_secs = 3;
    })
    .await;
    // Connected, then never read from again (as if the network had dropped it).
    let (mut dead, dead_session, _) = app.new_session("K001").await;
    let silent_since = Instant::now();
    let (mut alive, _, _) = app.new_session("K002").await;
    alive.recv_type("bot.say").await;
    while !app.state.hub.inputs_of(&dead_session).is_empty() {
        assert!(
            silent_since.elapsed() < Duration::from_secs(12),
            "the silent kiosk is still connected"
        );
        // The live kiosk keeps talking (and answering pings) throughout.
        assert_eq!(alive.say("你好").await["type"], "bot.say");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(silent_since.elapsed() >= Duration::from_secs(3));
    assert_eq!(alive.say("你好").await["type"], "bot.say");
    // Read at last, its connection is over (a close frame, or a reset once the pongs it
    // owes hit the closed socket); a connection still open would time out here.
    dead.expect_closed().await;
}

#[tokio::test]
async fn supervisors_hear_only_their_own_branch_on_the_staff_websocket() {
    let app = spawn_app_with(Engine::Sqlite, |_| {}).await;
    // `supervisor` supervises every queue (deploy/config/tickets.yaml), for branch B001.
    let supervisor = app.staff("supervisor", "teller").await;
    concierge::access::staff::set_branch(&app.state.db, "supervisor", Some("B001"))
        .await
        .unwrap();
    let admin = app.staff("ops", "admin").await;
    let mut sup = console(&app, &supervisor).await;
    let mut all = console(&app, &admin).await;
    let tickets = app.state.tickets.clone();
    let open = |branch: &'static str| {
        let tickets = tickets.clone();
        async move {
            tickets
                .open(
                    "complaint",
                    branch,
                    None,
                    None,
                    None,
                    json!({}),
                    &[],
                    "test",
                )
                .await
                .unwrap()
        }
    };
    let other = open("B002").await;
    let own = open("B001").await;
    let heard = sup.recv_type("ticket.event").await;
    assert_eq!(heard["ticket"]["id"], own.id.as_str(), "{heard}");
    // An admin without a branch hears both.
    assert_eq!(
        all.recv_type("ticket.event").await["ticket"]["id"],
        other.id.as_str()
    );
}
