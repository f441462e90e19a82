//! The core-banking port: the HTTP adapter against a fake bank host on loopback (the real
//! client code over real HTTP), checked with the same expectations as the sandbox bank.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use concierge::ports::banking::http::HttpBank;
use concierge::ports::banking::CoreBanking;
use secrecy::SecretString;
use serde_json::{json, Value};

const TOKEN: &str = "host-secret";

#[derive(Clone, Default)]
struct Host {
    frozen: Arc<Mutex<bool>>,
}

fn authorized(h: &HeaderMap) -> Result<(), StatusCode> {
    match h.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(v) if v == format!("Bearer {TOKEN}") => Ok(()),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

/// A fake bank host with one customer (张三) and one card; ID "500…" makes it fail, and
/// customer "SLOW" answers after 3 s.
async fn fake_host() -> (String, Host) {
    let host = Host::default();
    let app = Router::new()
        .route(
            "/core/customers/lookup",
            post(|h: HeaderMap, Json(b): Json<Value>| async move {
                authorized(&h)?;
                match b["id_number"].as_str() {
                    Some("11010519491231002X") => Ok(Json(json!({
                        "id": "C0001", "name": "张三",
                        "id_number_masked": "110105********002X", "phone_masked": "138****5678"}))),
                    Some(id) if id.starts_with("500") => Err(StatusCode::INTERNAL_SERVER_ERROR),
                    _ => Err(StatusCode::NOT_FOUND),
                }
            }),
        )
        .route(
            "/core/customers/{id}/verify-phone",
            post(
                |h: HeaderMap, Path(id): Path<String>, Json(b): Json<Value>| async move {
                    authorized(&h)?;
                    if id == "SLOW" {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    Ok::<_, StatusCode>(Json(
                        json!({"match": id == "C0001" && b["phone"] == "13812345678"}),
                    ))
                },
            ),
        )
        .route(
            "/core/customers/{id}/cards",
            get(|h: HeaderMap, Path(id): Path<String>| async move {
                authorized(&h)?;
                if id != "C0001" {
                    return Ok(Json(json!([])));
                }
                Ok::<_, StatusCode>(Json(json!([{"handle": "card-1", "last4": "6789",
                    "masked": "622202*********6789", "kind": "debit", "status": "active"}])))
            }),
        )
        .route(
            "/core/cards/{card}/verify-pin",
            post(
                |h: HeaderMap, Path(card): Path<String>, Json(b): Json<Value>| async move {
                    authorized(&h)?;
                    Ok::<_, StatusCode>(Json(
                        json!({"match": card == "card-1" && b["pin_block"] == "9A3F1C0B7E2D4A68"}),
                    ))
                },
            ),
        )
        .route(
            "/core/cards/{card}/balance",
            get(|h: HeaderMap, Path(card): Path<String>| async move {
                authorized(&h)?;
                if card != "card-1" {
                    return Err(StatusCode::NOT_FOUND);
                }
                Ok(Json(json!({"balance_cents": 5_238_075})))
            }),
        )
        .route(
            "/core/cards/{card}/freeze",
            post(
                |State(host): State<Host>, h: HeaderMap, Path(card): Path<String>| async move {
                    authorized(&h)?;
                    if card != "card-1" {
                        return Err(StatusCode::NOT_FOUND);
                    }
                    *host.frozen.lock().unwrap() = true;
                    Ok(StatusCode::OK)
                },
            ),
        )
        .with_state(host.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/core"), host)
}

fn client(base: &str, token: &str, timeout_ms: u64) -> HttpBank {
    HttpBank::new(
        base,
        SecretString::from(token.to_string()),
        Duration::from_millis(timeout_ms),
    )
    .unwrap()
}

#[tokio::test]
async fn the_http_adapter_speaks_to_the_host() {
    let (base, host) = fake_host().await;
    let bank = client(&base, TOKEN, 2000);
    let c = bank
        .customer_by_id_number("11010519491231002x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.id.as_str(), c.name.as_str()), ("C0001", "张三"));
    assert!(bank.phone_matches("C0001", "13812345678").await.unwrap());
    assert!(!bank.phone_matches("C0001", "13800000000").await.unwrap());
    let cards = bank.cards("C0001").await.unwrap();
    assert_eq!(cards[0].last4, "6789");
    assert!(bank
        .pin_matches("card-1", "9A3F1C0B7E2D4A68")
        .await
        .unwrap());
    assert!(!bank
        .pin_matches("card-1", "0000000000000000")
        .await
        .unwrap());
    assert_eq!(bank.balance_cents("card-1").await.unwrap(), Some(5_238_075));
    assert_eq!(bank.balance_cents("nope").await.unwrap(), None);
    assert!(bank.freeze("card-1", "客户挂失").await.unwrap());
    assert!(*host.frozen.lock().unwrap());
    assert!(!bank.freeze("nope", "x").await.unwrap());
    assert!(bank
        .customer_by_id_number("110105194912310021")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn host_failures_are_errors_not_answers() {
    let (base, _) = fake_host().await;
    let bank = client(&base, TOKEN, 500);
    let e = bank
        .customer_by_id_number("500000000000000000")
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("500"), "{e:#}");
    let e = bank.phone_matches("SLOW", "13812345678").await.unwrap_err();
    assert!(format!("{e:#}").contains("no answer"), "{e:#}");
    let wrong = client(&base, "wrong-token", 2000);
    assert!(wrong
        .customer_by_id_number("11010519491231002X")
        .await
        .is_err());
    let nobody = client("http://127.0.0.1:9/core", TOKEN, 500);
    assert!(nobody.cards("C0001").await.is_err());
    assert!(HttpBank::new(
        "ftp://x",
        SecretString::from("t".to_string()),
        Duration::from_secs(1)
    )
    .is_err());
}

/// The card-loss journey over the kiosk protocol with the app configured for the HTTP host.
#[tokio::test]
async fn a_journey_runs_against_the_http_host() {
    let (base, host) = fake_host().await;
    let app = crate::helpers::spawn_app_with(crate::helpers::Engine::Sqlite, |s| {
        s.banking.backend = concierge::config::BankBackend::Http;
        s.banking.base_url = base.clone();
        s.banking.api_token = SecretString::from(TOKEN.to_string());
    })
    .await;
    let mut k = app.connect().await;
    let token = app
        .kiosk("K001", "B001", kiosk_protocol::PeerRole::Screen)
        .await;
    let mut caps = vec!["text".to_string()];
    caps.extend(kiosk_adapter::sim::SimulatedDevices::capabilities());
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token, "capabilities": caps}))
        .await;
    k.recv_type("welcome").await;
    k.recv_type("bot.say").await;
    let devices = kiosk_adapter::sim::SimulatedDevices::new();
    let mut said = String::new();
    for text in ["我的卡丢了，帮我挂失", "13812345678", "尾号6789", "确认"] {
        k.send(json!({"type": "user.text", "text": text})).await;
        let mut replies = 0;
        loop {
            let wait = if replies == 0 { 10_000 } else { 400 };
            let next = tokio::time::timeout(Duration::from_millis(wait), k.recv()).await;
            let Ok(m) = next else { break };
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
                    k.send(
                        json!({"type": "device.result", "call_id": call, "ok": true, "data": r}),
                    )
                    .await;
                }
                Some("bot.say") => {
                    replies += 1;
                    said.push_str(m["text"].as_str().unwrap_or_default());
                }
                _ => {}
            }
        }
    }
    assert!(said.contains("挂失成功"), "{said}");
    assert!(*host.frozen.lock().unwrap(), "the host froze the card");
}
