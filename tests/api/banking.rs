//! Banking journeys against the HTTP adapter: the app configured for a fake core-banking
//! host on loopback ([`crate::contracts::bank::FakeHost`]; the port itself is checked by
//! `contracts::bank`), over the kiosk protocol with kiosk-adapter's simulated devices.

use std::time::Duration;

use concierge::config::BankBackend;
use secrecy::SecretString;
use serde_json::json;

use crate::contracts::bank::{FakeHost, Mode, TOKEN};
use crate::helpers::{spawn_app_with, Engine, Kiosk, TestApp};

/// An app whose banking journeys run against `host`, with a limit of `timeout_ms` a call.
async fn app_for(host: &FakeHost, timeout_ms: u64) -> TestApp {
    let base = host.base_url();
    spawn_app_with(Engine::Sqlite, move |s| {
        s.banking.backend = BankBackend::Http;
        s.banking.base_url = base;
        s.banking.api_token = SecretString::from(TOKEN.to_string());
        s.banking.timeout_ms = timeout_ms;
    })
    .await
}

/// A kiosk with the simulated devices, greeted.
async fn kiosk(app: &TestApp) -> (Kiosk, String) {
    let token = app
        .kiosk("K001", "B001", kiosk_protocol::PeerRole::Screen)
        .await;
    let mut caps = vec!["text".to_string()];
    caps.extend(kiosk_adapter::sim::SimulatedDevices::capabilities());
    let mut k = app.connect().await;
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token, "capabilities": caps}))
        .await;
    let welcome = k.recv_type("welcome").await;
    k.recv_type("bot.say").await;
    (k, welcome["session_id"].as_str().unwrap().to_string())
}

/// Says `text`, answering device calls as the simulated devices do, until the bot says
/// something containing `until`; returns everything the bot said meanwhile.
async fn say_until(k: &mut Kiosk, text: &str, until: &str) -> String {
    let devices = kiosk_adapter::sim::SimulatedDevices::new();
    k.send(json!({"type": "user.text", "text": text})).await;
    let mut said = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !said.contains(until) {
        let next = tokio::time::timeout_at(deadline, k.recv()).await;
        let m = next.unwrap_or_else(|_| panic!("never said {until:?}; said {said:?}"));
        match m["type"].as_str() {
            Some("device.invoke") => {
                let call = m["call_id"].as_str().unwrap();
                let r = devices
                    .handle(
                        call,
                        m["device"].as_str().unwrap(),
                        m["action"].as_str().unwrap(),
                        &m["args"],
                    )
                    .unwrap();
                k.send(json!({"type": "device.result", "call_id": call, "ok": true, "data": r}))
                    .await;
            }
            Some("bot.say") => said.push_str(m["text"].as_str().unwrap_or_default()),
            _ => {}
        }
    }
    said
}

/// The card-loss journey over the kiosk protocol with the app configured for the HTTP host.
#[tokio::test]
async fn a_journey_runs_against_the_http_host() {
    let host = FakeHost::start().await;
    let app = app_for(&host, 5000).await;
    let (mut k, _) = kiosk(&app).await;
    say_until(&mut k, "我的卡丢了，帮我挂失", "手机号").await;
    say_until(&mut k, "13812345678", "后四位").await;
    say_until(&mut k, "尾号6789", "确认挂失").await;
    say_until(&mut k, "确认", "挂失成功").await;
    assert!(host.is_frozen("6789"), "the host froze the card");
}

/// A host that does not answer in time reaches the flow as `bank_unavailable` (its
/// `on_error` path, here the card-loss flow's handoff), not as an internal failure.
#[tokio::test]
async fn a_bank_timeout_reaches_the_flow_as_bank_unavailable() {
    let host = FakeHost::start().await;
    host.set(Mode::Slow);
    let app = app_for(&host, 300).await;
    let (mut k, sid) = kiosk(&app).await;
    // The card-loss flow's `on_error` path after `banking.identify`.
    say_until(&mut k, "我的卡丢了，帮我挂失", "没有查到您在我行的信息").await;
    // The transcript notes the step's failure with its code (written with the turn).
    let noted = |t: &String| t.contains("banking.identify") && t.contains("bank_unavailable");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let lines = concierge::session::store::transcript(&app.state.db, &sid)
            .await
            .unwrap();
        let text: Vec<String> = lines.into_iter().map(|l| l.text).collect();
        if text.iter().any(noted) || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.iter().any(noted), "{text:#?}");
    assert!(!text.iter().any(|t| t.contains("internal")), "{text:#?}");
    assert!(!host.is_frozen("6789"));
}
