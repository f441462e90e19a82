//! The kiosk WebSocket protocol: hello, turns, bad input, identity.

use kiosk_protocol::PeerRole;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_kiosk_is_welcomed_and_greeted_with_choices() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut k = app.connect().await;
    let (sid, resumed) = k.hello("K001", &token, None).await;
    assert!(!resumed);
    assert_eq!(sid.len(), 36);
    let opening = k.recv().await;
    assert_eq!(opening["type"], "bot.say");
    assert!(opening["text"].as_str().unwrap().contains("您好"));
    assert!(opening["ui"]["choices"].as_array().unwrap().len() >= 2);
}

#[tokio::test]
async fn a_typed_greeting_and_a_tapped_choice_are_answered() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    let reply = k.say("您好！").await;
    assert_eq!(reply["text"], "您好！请问有什么可以帮您？");
    assert!(reply["turn_id"].as_str().is_some());
    k.send(json!({"type": "user.choice", "value": "help"}))
        .await;
    let reply = k.recv_type("bot.say").await;
    assert!(
        reply["text"].as_str().unwrap().contains("我可以帮您"),
        "{reply}"
    );
}

#[tokio::test]
async fn the_first_message_must_be_hello() {
    let app = spawn_app().await;
    let mut k = app.connect().await;
    k.send(json!({"type": "user.text", "text": "你好"})).await;
    k.expect_error("hello_required").await;
    assert_eq!(k.expect_closed().await, Some(1008));
}

#[tokio::test]
async fn a_wrong_token_is_rejected_and_the_connection_closed() {
    let app = spawn_app().await;
    app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": "ck_wrong"}))
        .await;
    k.expect_error("unauthorized").await;
    assert_eq!(k.expect_closed().await, Some(1008));
}

#[tokio::test]
async fn a_missing_token_is_rejected() {
    let app = spawn_app().await;
    app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001"})).await;
    k.expect_error("unauthorized").await;
}

#[tokio::test]
async fn a_revoked_token_is_rejected() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    concierge::access::kiosks::revoke_tokens(&app.state.db, "K001")
        .await
        .unwrap();
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token}))
        .await;
    k.expect_error("unauthorized").await;
}

#[tokio::test]
async fn a_token_of_another_kiosk_or_role_is_rejected() {
    let app = spawn_app().await;
    app.kiosk("K001", "B001", PeerRole::Screen).await;
    let other = app.kiosk("K002", "B001", PeerRole::Screen).await;
    let devices = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": other}))
        .await;
    k.expect_error("unauthorized").await;
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": devices, "role": "screen"}))
        .await;
    k.expect_error("unauthorized").await;
}

#[tokio::test]
async fn an_unknown_kiosk_gets_the_same_answer_as_a_wrong_token() {
    let app = spawn_app().await;
    app.kiosk("K001", "B001", PeerRole::Screen).await;
    // Kiosk ids cannot be enumerated: unknown, malformed or registered, one answer.
    let mut answers = Vec::new();
    for kiosk in ["K404", "not a kiosk id!", "K001"] {
        let mut k = app.connect().await;
        k.send(json!({"type": "hello", "kiosk_id": kiosk, "token": "ck_x"}))
            .await;
        let m = k.recv().await;
        assert_eq!(m["code"], "unauthorized", "{kiosk}: {m}");
        answers.push(m);
        assert_eq!(k.expect_closed().await, Some(1008));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

#[tokio::test]
async fn the_token_may_come_in_the_authorization_header() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut req = app.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut k = Kiosk { ws };
    k.send(json!({"type": "hello", "kiosk_id": "K001"})).await;
    assert_eq!(k.recv().await["type"], "welcome");
}

#[tokio::test]
async fn malformed_json_gets_an_error_and_the_connection_survives() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send_raw("{this is not json").await;
    k.expect_error("malformed_message").await;
    k.send(json!({"type": "user.text"})).await;
    k.expect_error("malformed_message").await;
    k.send_raw("[1, 2, 3]").await;
    k.expect_error("malformed_message").await;
    assert_eq!(k.say("你好").await["type"], "bot.say");
}

#[tokio::test]
async fn an_unknown_message_type_gets_an_error_and_the_connection_survives() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "user.dance", "style": "tango"}))
        .await;
    k.expect_error("unknown_message_type").await;
    assert_eq!(k.say("你好").await["type"], "bot.say");
}

#[tokio::test]
async fn a_text_frame_over_the_limit_is_refused_and_the_connection_survives() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    let huge = "啊".repeat(70 * 1024 / 3 + 10);
    k.send(json!({"type": "user.text", "text": huge})).await;
    k.expect_error("text_frame_too_large").await;
    assert_eq!(k.say("你好").await["type"], "bot.say");
}

#[tokio::test]
async fn user_text_that_is_empty_or_too_long_is_refused() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "user.text", "text": "   "})).await;
    k.expect_error("invalid_text").await;
    k.send(json!({"type": "user.text", "text": "好".repeat(501)}))
        .await;
    k.expect_error("invalid_text").await;
}

#[tokio::test]
async fn a_choice_that_was_never_offered_is_refused_and_the_session_goes_on() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    // An article id the kiosk was never shown, then a made-up value.
    for value in ["b-anti-fraud", "not-a-choice"] {
        k.send(json!({"type": "user.choice", "value": value})).await;
        k.expect_error("invalid_text").await;
    }
    // Offered values still work: first a service from the menu, then one of the buttons
    // the bot just showed.
    let reply = k.say("防诈骗").await;
    let offered = reply["ui"]["choices"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    k.send(json!({"type": "user.choice", "value": offered}))
        .await;
    let reply = k.recv_type("bot.say").await;
    assert!(reply["ui"]["article"]["id"].as_str().is_some(), "{reply}");
}

#[tokio::test]
async fn a_binary_frame_over_the_limit_is_refused_and_the_connection_survives() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "audio.start", "sample_rate": 16000}))
        .await;
    k.send_binary(vec![0u8; 256 * 1024 + 2]).await;
    k.expect_error("binary_frame_too_large").await;
    assert_eq!(k.say("你好").await["type"], "bot.say");
}

#[tokio::test]
async fn audio_needs_audio_start_at_16_khz() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send_binary(vec![0u8; 3200]).await;
    k.expect_error("invalid_audio").await;
    k.send(json!({"type": "audio.start", "sample_rate": 8000}))
        .await;
    k.expect_error("invalid_audio").await;
    k.send(json!({"type": "audio.end"})).await;
    k.expect_error("invalid_audio").await;
}

#[tokio::test]
async fn an_utterance_is_buffered_and_told_that_recognition_is_off() {
    let app = spawn_app().await;
    let (mut k, sid, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "audio.start", "sample_rate": 16000}))
        .await;
    for _ in 0..10 {
        k.send_binary(vec![0u8; 3200]).await;
    }
    k.send(json!({"type": "audio.end"})).await;
    k.expect_error("asr_unavailable").await;
    let lines = concierge::session::store::transcript(&app.state.db, &sid)
        .await
        .unwrap();
    let audio = lines
        .iter()
        .find(|l| l.kind == "audio")
        .expect("an audio line");
    assert!(audio.text.contains("1000 毫秒"), "{audio:?}");
}

#[tokio::test]
async fn an_utterance_longer_than_the_limit_is_dropped_with_an_error() {
    let app = spawn_app_with(Engine::Sqlite, |s| s.kiosk.max_utterance_secs = 1).await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "audio.start", "sample_rate": 16000}))
        .await;
    for _ in 0..11 {
        k.send_binary(vec![0u8; 3200]).await;
    }
    k.expect_error("audio_too_long").await;
    k.send(json!({"type": "audio.end"})).await;
    k.expect_error("invalid_audio").await;
}

#[tokio::test]
async fn a_device_result_for_an_unknown_call_id_is_refused() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "device.result", "call_id": "nope", "ok": true, "data": {}}))
        .await;
    k.expect_error("unknown_call_id").await;
    assert_eq!(k.say("你好").await["type"], "bot.say");
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let app = spawn_app().await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "ping", "nonce": "n1"})).await;
    let pong = k.recv().await;
    assert_eq!(pong, json!({"type": "pong", "nonce": "n1"}));
}

#[tokio::test]
async fn a_second_hello_is_an_error() {
    let app = spawn_app().await;
    let (mut k, _, token) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token}))
        .await;
    k.expect_error("hello_required").await;
}

#[tokio::test]
async fn too_many_messages_too_fast_are_rate_limited() {
    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.kiosk.rate_per_sec = 1;
        s.kiosk.rate_burst = 3;
    })
    .await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    for i in 0..6 {
        k.send(json!({"type": "ping", "nonce": i.to_string()}))
            .await;
    }
    let mut codes = Vec::new();
    for _ in 0..6 {
        let m = k.recv().await;
        codes
            .push(m["type"].as_str().unwrap().to_string() + ":" + m["code"].as_str().unwrap_or(""));
    }
    assert_eq!(
        codes.iter().filter(|c| c.starts_with("pong")).count(),
        3,
        "{codes:?}"
    );
    assert!(
        codes.contains(&"error:rate_limited".to_string()),
        "{codes:?}"
    );
}

#[tokio::test]
async fn a_foreign_browser_origin_is_refused_at_the_handshake() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let mut req = app.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut req = app.ws_url().into_client_request().unwrap();
    let own = format!("http://127.0.0.1:{}", app.port);
    req.headers_mut().insert("origin", own.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test]
async fn a_device_peer_may_not_speak_for_the_customer() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token, "role": "devices", "capabilities": ["device:camera"]}))
        .await;
    let w = k.recv().await;
    assert_eq!(w["type"], "welcome");
    assert!(w.get("session_id").is_none(), "{w}");
    k.send(json!({"type": "user.text", "text": "你好"})).await;
    k.expect_error("not_allowed_for_role").await;
}

#[tokio::test]
async fn an_operator_device_call_is_run_by_the_kiosk_adapter() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let devices = std::sync::Arc::new(kiosk_adapter::sim::SimulatedDevices::new());
    let config = kiosk_adapter::peer::PeerConfig {
        url: app.ws_url(),
        kiosk_id: "K001".into(),
        token,
    };
    let d = std::sync::Arc::new(kiosk_adapter::drivers::Drivers::simulated(devices.clone()));
    tokio::spawn(async move { kiosk_adapter::peer::run(config, d).await });
    let admin = app.staff("ops", "admin").await;
    let client = reqwest::Client::new();
    // Wait until the adapter is connected.
    for _ in 0..100 {
        if !app.state.broker.devices_of("K001").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let res = client
        .post(app.http("/v1/admin/kiosks/K001/devices/invoke"))
        .bearer_auth(&admin)
        .json(&json!({"device": "receipt_printer", "action": "print", "args": {"fields": {"title": "测试页"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(devices.printed(), 1);

    devices.fail_next("receipt_printer", "paper_out");
    let body: serde_json::Value = client
        .post(app.http("/v1/admin/kiosks/K001/devices/invoke"))
        .bearer_auth(&admin)
        .json(&json!({"device": "receipt_printer", "action": "print"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["code"], "paper_out");

    let res = client
        .post(app.http("/v1/admin/kiosks/K002/devices/invoke"))
        .bearer_auth(&admin)
        .json(&json!({"device": "queue_printer", "action": "print_ticket"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "device_not_connected");
}

#[tokio::test]
async fn a_device_that_never_answers_times_out_and_its_late_result_is_refused() {
    let app = spawn_app().await;
    let (mut peer, call) = device_peer_with_call(&app, "document_printer", "print", 300).await;
    let invoke = peer.recv_type("device.invoke").await;
    assert_eq!(invoke["device"], "document_printer");
    assert_eq!(invoke["timeout_ms"], 300);
    let res = call.await.unwrap();
    assert_eq!(res.status(), 504);
    peer.send(
        json!({"type": "device.result", "call_id": invoke["call_id"], "ok": true, "data": {}}),
    )
    .await;
    peer.expect_error("unknown_call_id").await;
}

#[tokio::test]
async fn duplicate_and_malformed_device_results_are_refused_and_the_call_completes_once() {
    let app = spawn_app().await;
    let (mut peer, call) = device_peer_with_call(&app, "receipt_printer", "print", 5000).await;
    let invoke = peer.recv_type("device.invoke").await;
    // A result without `ok`: malformed, the call still waits for a proper one.
    peer.send(json!({"type": "device.result", "call_id": invoke["call_id"]}))
        .await;
    peer.expect_error("malformed_message").await;
    peer.send(json!({"type": "device.result", "call_id": invoke["call_id"], "ok": true, "data": {"printed": true}}))
        .await;
    let res = call.await.unwrap();
    assert_eq!(res.status(), 200);
    // The same result again: the call is over.
    peer.send(json!({"type": "device.result", "call_id": invoke["call_id"], "ok": true, "data": {"printed": true}}))
        .await;
    peer.expect_error("unknown_call_id").await;
}

#[tokio::test]
async fn a_device_result_without_its_fields_takes_the_error_path() {
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Screen).await;
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token, "capabilities": ["text", "choices", "device:id_card"]}))
        .await;
    let w = k.recv().await;
    assert_eq!(w["type"], "welcome", "{w}");
    let session = w["session_id"].as_str().unwrap().to_string();
    k.recv_type("bot.say").await;
    k.send(json!({"type": "user.text", "text": "我的银行卡丢了，快帮我挂失"}))
        .await;
    let invoke = k.recv_type("device.invoke").await;
    assert_eq!(invoke["device"], "id_card");
    // A driver bug: no ID number, no address.
    k.send(json!({"type": "device.result", "call_id": invoke["call_id"], "ok": true, "data": {"name": "张三"}}))
        .await;
    let said = k.recv_type("bot.say").await;
    assert!(
        said["text"].as_str().unwrap().contains("没有读到"),
        "{said}"
    );
    let code: Option<String> =
        sqlx::query_scalar("SELECT code FROM device_calls WHERE session_id = $1")
            .bind(&session)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(code.as_deref(), Some("bad_result"));
}

/// A devices peer of K001 serving `device`, and an operator's call of `action` on it
/// (the HTTP response arrives when the call completes or times out).
async fn device_peer_with_call(
    app: &crate::helpers::TestApp,
    device: &str,
    action: &str,
    timeout_ms: u64,
) -> (
    crate::helpers::Kiosk,
    tokio::task::JoinHandle<reqwest::Response>,
) {
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let mut peer = app.connect().await;
    peer.send(json!({"type": "hello", "kiosk_id": "K001", "token": token, "role": "devices", "capabilities": [format!("device:{device}")]}))
        .await;
    peer.recv_type("welcome").await;
    let admin = app.staff("ops", "admin").await;
    let url = app.http("/v1/admin/kiosks/K001/devices/invoke");
    let body = json!({"device": device, "action": action, "timeout_ms": timeout_ms});
    let call = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .unwrap()
    });
    (peer, call)
}

#[tokio::test]
async fn a_flood_of_tiny_audio_frames_is_rate_limited_by_audio_time() {
    // Real time (speed 1): a burst of 10 s of audio; each frame counts as at least 10 ms.
    let app = spawn_app_with(Engine::Sqlite, |s| s.kiosk.max_audio_speed = 1).await;
    let (mut k, _, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    k.send(json!({"type": "audio.start", "sample_rate": 16000}))
        .await;
    for _ in 0..1500 {
        k.send_binary(vec![0u8; 2]).await;
    }
    k.expect_error("rate_limited").await;
}
