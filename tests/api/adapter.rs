//! The kiosk-adapter as the kiosk's device peer, driving devices through XFS4IoT: journeys
//! run end to end against a fake XFS4IoT service (card reader, PIN pad, printers, camera),
//! with the ID-card reader simulated, and every device call audited with masked results.

use std::sync::Arc;
use std::time::Duration;

use kiosk_adapter::drivers::{Driver, Drivers};
use kiosk_adapter::sim::SimulatedDevices;
use kiosk_adapter::xfs4iot::devices::XfsDevices;
use kiosk_adapter::xfs4iot::fake::FakeXfs;
use kiosk_protocol::PeerRole;
use serde_json::Value;

use crate::helpers::{spawn_app, Kiosk};

/// Bot replies until one contains `needle` (or shows it in a screen field).
async fn until(k: &mut Kiosk, needle: &str) -> Value {
    loop {
        let m = k.recv_type("bot.say").await;
        if m.to_string().contains(needle) {
            return m;
        }
    }
}

#[tokio::test]
async fn card_loss_and_balance_run_on_a_fake_xfs4iot_service() {
    let app = spawn_app().await;
    concierge::ports::banking::sandbox::SandboxBank::new(app.state.db.clone())
        .seed(&crate::helpers::project_root().join("deploy/sandbox/customers.yaml"))
        .await
        .unwrap();
    let fake = FakeXfs::start().await;
    let xfs = XfsDevices::discover(&fake.publisher_url(), Duration::from_secs(5))
        .await
        .expect("the fake's services are discovered");
    let kinds = xfs.kinds();
    for k in ["card_reader", "pin_pad", "receipt_printer"] {
        assert!(kinds.contains(&k), "{k} via XFS4IoT: {kinds:?}");
    }
    // XFS4IoT first; the ID-card reader (not an XFS4IoT class) simulated.
    let list: Vec<Arc<dyn Driver>> = vec![Arc::new(xfs), Arc::new(SimulatedDevices::new())];
    let drivers = Arc::new(Drivers::new(list));
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let config = kiosk_adapter::peer::PeerConfig {
        url: app.ws_url(),
        kiosk_id: "K001".into(),
        token,
    };
    tokio::spawn(async move { kiosk_adapter::peer::run(config, drivers).await });
    for _ in 0..200 {
        if !app.state.broker.devices_of("K001").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !app.state.broker.devices_of("K001").is_empty(),
        "the adapter connected"
    );

    let (mut k, session, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    // Card loss: ID card (simulated), phone, last four digits, confirm, receipt (XFS4IoT).
    k.send(serde_json::json!({"type": "user.text", "text": "我的银行卡丢了，快帮我挂失"}))
        .await;
    until(&mut k, "预留的手机号").await;
    k.send(serde_json::json!({"type": "user.text", "text": "13812345678"}))
        .await;
    until(&mut k, "后四位").await;
    k.send(serde_json::json!({"type": "user.text", "text": "尾号6789"}))
        .await;
    until(&mut k, "确认挂失").await;
    k.send(serde_json::json!({"type": "user.text", "text": "是的"}))
        .await;
    until(&mut k, "回执").await;
    let sent = fake.received();
    assert!(sent.iter().any(|c| c.starts_with("Printer.")), "{sent:?}");

    // Balance: card reader and PIN pad through XFS4IoT; the balance only on screen.
    k.send(serde_json::json!({"type": "user.text", "text": "帮我查一下卡里还有多少钱"}))
        .await;
    let shown = until(&mut k, "52380.75").await;
    assert_eq!(shown["ui"]["sensitive"], true, "{shown}");
    let sent = fake.received();
    for c in ["CardReader.ReadRawData", "Keyboard.PinEntry"] {
        assert!(sent.iter().any(|x| x == c), "{c} in {sent:?}");
    }

    // Every call audited; the card number only masked, the PIN block never.
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT device, action, ok, result_masked FROM device_calls WHERE session_id = $1",
    )
    .bind(&session)
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    let calls: Vec<String> = rows.iter().map(|r| format!("{}.{}", r.0, r.1)).collect();
    for c in [
        "id_card.read",
        "receipt_printer.print",
        "card_reader.read",
        "pin_pad.enter_pin",
    ] {
        assert!(calls.contains(&c.to_string()), "{c} audited: {calls:?}");
    }
    let all = format!("{rows:?}");
    assert!(!all.contains("6222021001123456789"), "{all}");
    assert!(!all.contains("9A3F1C0B7E2D4A68"), "{all}");
    assert!(
        !all.contains("张三") && !all.contains("建国路"),
        "names and addresses are not kept: {all}"
    );
    assert!(all.contains("6789"), "the masked card is: {all}");
    assert!(rows.iter().all(|r| r.2 == 1), "{rows:?}");
    app.stop().await;
}

#[tokio::test]
async fn device_events_from_while_disconnected_arrive_after_connecting() {
    let app = spawn_app().await;
    let (mut k, session, _) = app.new_session("K001").await;
    k.recv_type("bot.say").await;
    let drivers = Arc::new(Drivers::simulated(Arc::new(SimulatedDevices::new())));
    // The printer ran low while the adapter had no connection.
    drivers.push_event(kiosk_adapter::drivers::DeviceEvent {
        device: "receipt_printer".into(),
        event: "paper_low".into(),
        data: None,
    });
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let config = kiosk_adapter::peer::PeerConfig {
        url: app.ws_url(),
        kiosk_id: "K001".into(),
        token,
    };
    let d = drivers.clone();
    tokio::spawn(async move { kiosk_adapter::peer::run(config, d).await });
    let teller = app.staff("ops", "admin").await;
    let deadline = std::time::Instant::now() + crate::helpers::WAIT;
    loop {
        let t = app
            .get_json(&format!("/v1/sessions/{session}/transcript"), &teller)
            .await;
        if t.to_string().contains("receipt_printer: paper_low") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queued event never arrived: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And one while connected.
    drivers.push_event(kiosk_adapter::drivers::DeviceEvent {
        device: "receipt_printer".into(),
        event: "paper_out".into(),
        data: None,
    });
    loop {
        let t = app
            .get_json(&format!("/v1/sessions/{session}/transcript"), &teller)
            .await;
        if t.to_string().contains("receipt_printer: paper_out") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the live event never arrived: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
