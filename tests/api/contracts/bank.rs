//! The core-banking port (`CoreBanking`): one contract for the sandbox bank (on SQLite and
//! PostgreSQL) and for the HTTP adapter against a fake core-banking host on loopback (the
//! real client code over real HTTP). Both serve the sandbox customers of
//! `deploy/sandbox/customers.yaml`. The HTTP adapter's own failures (host down, slow, 500,
//! garbage, wrong token) follow.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concierge::ports::banking::http::HttpBank;
use concierge::ports::banking::sandbox::SandboxBank;
use concierge::ports::banking::{BankError, CoreBanking};
use concierge::store::Db;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{fresh_database, project_root, Engine};

/// The bearer token the fake host expects.
pub const TOKEN: &str = "host-secret";

/// 张三 of the sandbox customers, as the contract knows him.
pub const ZHANG_ID_NUMBER: &str = "11010519491231002X";
const ZHANG_PHONE: &str = "13812345678";
const ZHANG_DEBIT_PIN_BLOCK: &str = "9A3F1C0B7E2D4A68";

// ---------------------------------------------------------------------------------------
// The contract.

/// What every implementation of `CoreBanking` does with the sandbox customers.
async fn bank_contract(bank: &dyn CoreBanking) {
    // Customers: found by ID number whatever the case of X, shown masked; unknown: None.
    let zhang = bank
        .customer_by_id_number(&ZHANG_ID_NUMBER.to_lowercase())
        .await
        .unwrap()
        .expect("张三 is found by his ID number");
    assert_eq!(zhang.name, "张三");
    assert!(!zhang.id.is_empty());
    assert!(!zhang.id_number_masked.contains(ZHANG_ID_NUMBER));
    assert!(zhang.id_number_masked.ends_with("002X"), "{zhang:?}");
    assert!(!zhang.phone_masked.contains(ZHANG_PHONE));
    assert!(zhang.phone_masked.ends_with("5678"), "{zhang:?}");
    let nobody = bank.customer_by_id_number("110105194912310021").await;
    assert_eq!(nobody.unwrap(), None, "a valid ID number of no customer");

    // The reserved phone matches, another does not, nor on an unknown customer.
    assert!(bank.phone_matches(&zhang.id, ZHANG_PHONE).await.unwrap());
    assert!(!bank.phone_matches(&zhang.id, "13812345679").await.unwrap());
    assert!(!bank.phone_matches("C9999", ZHANG_PHONE).await.unwrap());

    // Cards: masked, with an opaque handle, last four digits and status.
    let cards = bank.cards(&zhang.id).await.unwrap();
    let mut tails: Vec<(&str, &str, &str)> = cards
        .iter()
        .map(|c| (c.last4.as_str(), c.kind.as_str(), c.status.as_str()))
        .collect();
    tails.sort();
    assert_eq!(
        tails,
        [("1111", "credit", "inactive"), ("6789", "debit", "active")]
    );
    for c in &cards {
        assert!(c.masked.ends_with(&c.last4), "{c:?}");
        assert!(c.masked.contains('*'), "{c:?}");
        assert!(
            !c.handle.is_empty() && !c.handle.contains(&c.masked),
            "{c:?}"
        );
        assert!(!c.handle.contains("6222021001123456789"), "{c:?}");
    }
    assert!(bank.cards("C9999").await.unwrap().is_empty());
    let debit = cards.iter().find(|c| c.last4 == "6789").unwrap();

    // PIN, balance.
    assert!(bank
        .pin_matches(&debit.handle, ZHANG_DEBIT_PIN_BLOCK)
        .await
        .unwrap());
    assert!(!bank
        .pin_matches(&debit.handle, "0000000000000000")
        .await
        .unwrap());
    assert!(!bank
        .pin_matches("no-such-card", ZHANG_DEBIT_PIN_BLOCK)
        .await
        .unwrap());
    assert_eq!(
        bank.balance_cents(&debit.handle).await.unwrap(),
        Some(5_238_075)
    );
    assert_eq!(bank.balance_cents("no-such-card").await.unwrap(), None);

    // Freezing: done, idempotent, visible in the card list; an unknown card is false.
    assert!(bank.freeze(&debit.handle, "客户挂失").await.unwrap());
    assert!(
        bank.freeze(&debit.handle, "客户挂失").await.unwrap(),
        "freezing twice is fine"
    );
    assert!(!bank.freeze("no-such-card", "客户挂失").await.unwrap());
    let after = bank.cards(&zhang.id).await.unwrap();
    let status = |last4: &str| {
        let card = after.iter().find(|c| c.last4 == last4).unwrap();
        card.status.clone()
    };
    assert_eq!(status("6789"), "frozen");
    assert_eq!(status("1111"), "inactive", "only the card asked for");
}

on_both_engines!(the_sandbox_bank_meets_the_bank_contract);

async fn the_sandbox_bank_meets_the_bank_contract(engine: Engine) {
    let (url, _dir) = fresh_database(engine).await;
    let db = Db::connect(&SecretString::from(url), 4).await.unwrap();
    db.migrate().await.unwrap();
    let bank = SandboxBank::new(db);
    bank.seed(&project_root().join("deploy/sandbox/customers.yaml"))
        .await
        .expect("the sandbox customers seed");
    bank_contract(&bank).await;
}

#[tokio::test]
async fn the_http_adapter_meets_the_bank_contract() {
    let host = FakeHost::start().await;
    bank_contract(&client(&host.base_url(), TOKEN, 2000)).await;
    assert!(host.is_frozen("6789"), "the host froze the card");
}

// ---------------------------------------------------------------------------------------
// The HTTP adapter's failures: every one an error with its code, never an answer.

/// Runs one call of each kind; every one must fail with `code`.
async fn every_call_fails_with(bank: &HttpBank, code: &str) {
    let errors: Vec<BankError> = vec![
        bank.customer_by_id_number(ZHANG_ID_NUMBER)
            .await
            .unwrap_err(),
        bank.phone_matches("C0001", ZHANG_PHONE).await.unwrap_err(),
        bank.cards("C0001").await.unwrap_err(),
        bank.pin_matches("h", ZHANG_DEBIT_PIN_BLOCK)
            .await
            .unwrap_err(),
        bank.balance_cents("h").await.unwrap_err(),
        bank.freeze("h", "x").await.unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.code(), code, "{e}");
        let text = e.to_string();
        for secret in [ZHANG_ID_NUMBER, ZHANG_PHONE, "C0001", TOKEN] {
            assert!(!text.contains(secret), "{secret} in the error: {text}");
        }
    }
}

/// A fake host answering in `mode`, and the adapter for it with a limit per call.
async fn host_in(mode: Mode, timeout_ms: u64) -> (FakeHost, HttpBank) {
    let host = FakeHost::start().await;
    host.set(mode);
    let bank = client(&host.base_url(), TOKEN, timeout_ms);
    (host, bank)
}

#[tokio::test]
async fn a_host_that_is_down_is_unavailable() {
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bank = client(&format!("http://127.0.0.1:{port}/core"), TOKEN, 500);
    every_call_fails_with(&bank, "bank_unavailable").await;
    let e = bank.cards("C0001").await.unwrap_err();
    assert!(matches!(e, BankError::Unavailable(_)), "{e}");
}

#[tokio::test]
async fn a_host_slower_than_the_timeout_is_unavailable() {
    let (_host, bank) = host_in(Mode::Slow, 300).await;
    let started = Instant::now();
    let e = bank.phone_matches("C0001", ZHANG_PHONE).await.unwrap_err();
    assert!(matches!(e, BankError::Unavailable(_)), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "cut at 300 ms");
}

#[tokio::test]
async fn a_host_error_status_is_rejected() {
    let (host, bank) = host_in(Mode::Fail, 2000).await;
    every_call_fails_with(&bank, "bank_rejected").await;
    let e = bank.cards("C0001").await.unwrap_err();
    assert!(matches!(e, BankError::Rejected(_)), "{e}");
    assert!(e.to_string().contains("500"), "{e}");

    host.set(Mode::Normal);
    let wrong = client(&host.base_url(), "wrong-token", 2000);
    let e = wrong.cards("C0001").await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    every_call_fails_with(&wrong, "bank_rejected").await;
}

#[tokio::test]
async fn a_garbage_answer_is_a_bad_response() {
    let (_host, bank) = host_in(Mode::Garbage, 2000).await;
    every_call_fails_with(&bank, "bank_bad_response").await;
    let e = bank.cards("C0001").await.unwrap_err();
    assert!(matches!(e, BankError::BadResponse(_)), "{e}");

    // JSON of another shape: refused without quoting it (serde's messages would).
    let (_host, bank) = host_in(Mode::WrongShape, 2000).await;
    let e = bank.customer_by_id_number("C").await.unwrap_err();
    assert_eq!(e.code(), "bank_bad_response", "{e}");
    assert!(!e.to_string().contains(ZHANG_ID_NUMBER), "{e}");
}

#[test]
fn the_adapter_needs_an_http_url() {
    for bad in ["ftp://x", "not a url"] {
        let made = HttpBank::new(
            bad,
            SecretString::from("t".to_string()),
            Duration::from_secs(1),
        );
        assert!(made.is_err(), "{bad}");
    }
}

/// The HTTP adapter for `base`, with `token` and a limit per call.
pub fn client(base: &str, token: &str, timeout_ms: u64) -> HttpBank {
    HttpBank::new(
        base,
        SecretString::from(token.to_string()),
        Duration::from_millis(timeout_ms),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// The fake core-banking host: the endpoints of `ports::banking::http` over the sandbox
// customers, read from the seed file (with its own masking and handles).

/// How the fake host answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As a bank would.
    Normal,
    /// 500 to everything.
    Fail,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with JSON of the wrong shape: a string, 张三's ID number.
    WrongShape,
    /// Answers after 3 s.
    Slow,
}

struct HostState {
    /// The customers of the seed file, as JSON.
    customers: Vec<Value>,
    mode: Mutex<Mode>,
    /// Handles of the cards frozen.
    frozen: Mutex<HashSet<String>>,
    /// The `traceparent` header of each authorised request ("" when absent).
    traceparents: Mutex<Vec<String>>,
}

/// A fake core-banking host on 127.0.0.1.
#[derive(Clone)]
pub struct FakeHost {
    port: u16,
    state: Arc<HostState>,
}

/// A text field of a seed record.
fn text<'a>(record: &'a Value, key: &str) -> &'a str {
    record[key].as_str().unwrap_or_default()
}

/// All but the last four characters starred.
fn masked(s: &str) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

impl HostState {
    fn customer(&self, id: &str) -> Option<&Value> {
        self.customers.iter().find(|c| text(c, "id") == id)
    }

    /// Every card: the host's handle for it, its customer, the card.
    fn cards(&self) -> impl Iterator<Item = (String, &Value, &Value)> {
        self.customers.iter().flat_map(|c| {
            let cards = c["cards"].as_array().into_iter().flatten();
            cards
                .enumerate()
                .map(move |(i, card)| (format!("hnd-{}-{i}", text(c, "id")), c, card))
        })
    }

    fn card(&self, handle: &str) -> Option<&Value> {
        self.cards()
            .find(|(h, _, _)| h == handle)
            .map(|(_, _, card)| card)
    }

    fn cards_json(&self, customer_id: &str) -> Value {
        let frozen = self.frozen.lock().unwrap();
        let cards = self
            .cards()
            .filter(|(_, c, _)| text(c, "id") == customer_id);
        let cards: Vec<Value> = cards
            .map(|(handle, _, card)| {
                let number = text(card, "number");
                let status = match card["status"].as_str() {
                    _ if frozen.contains(&handle) => "frozen",
                    Some(s) => s,
                    None => "active",
                };
                json!({"handle": handle, "last4": &number[number.len() - 4..],
                       "masked": masked(number), "kind": card["kind"], "status": status})
            })
            .collect();
        Value::Array(cards)
    }
}

type Host = State<Arc<HostState>>;

async fn lookup(State(host): Host, Json(b): Json<Value>) -> Result<Json<Value>, StatusCode> {
    let wanted = b["id_number"].as_str().unwrap_or_default();
    let c = host
        .customers
        .iter()
        .find(|c| text(c, "id_number") == wanted);
    let c = c.ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({"id": c["id"], "name": c["name"],
        "id_number_masked": masked(text(c, "id_number")),
        "phone_masked": masked(text(c, "phone"))})))
}

async fn verify_phone(
    State(host): Host,
    Path(id): Path<String>,
    Json(b): Json<Value>,
) -> Json<Value> {
    let matched = host.customer(&id).is_some_and(|c| b["phone"] == c["phone"]);
    Json(json!({ "match": matched }))
}

async fn cards(State(host): Host, Path(id): Path<String>) -> Json<Value> {
    Json(host.cards_json(&id))
}

async fn verify_pin(State(host): Host, Path(h): Path<String>, Json(b): Json<Value>) -> Json<Value> {
    let matched = host
        .card(&h)
        .is_some_and(|c| b["pin_block"] == c["pin_block"]);
    Json(json!({ "match": matched }))
}

async fn balance(State(host): Host, Path(h): Path<String>) -> Result<Json<Value>, StatusCode> {
    let amount = text(host.card(&h).ok_or(StatusCode::NOT_FOUND)?, "balance");
    let (yuan, fen) = amount.split_once('.').unwrap_or((amount, "0"));
    let cents = yuan.parse::<i64>().unwrap() * 100 + format!("{fen:0<2}").parse::<i64>().unwrap();
    Ok(Json(json!({ "balance_cents": cents })))
}

async fn freeze(State(host): Host, Path(h): Path<String>) -> StatusCode {
    if host.card(&h).is_none() {
        return StatusCode::NOT_FOUND;
    }
    host.frozen.lock().unwrap().insert(h);
    StatusCode::OK
}

/// The bearer token first, then the mode decides.
async fn gate(State(host): Host, request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if bearer != Some(format!("Bearer {TOKEN}").as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    host.traceparents.lock().unwrap().push(traceparent);
    let mode = *host.mode.lock().unwrap();
    match mode {
        Mode::Normal => next.run(request).await,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::WrongShape => Json(json!(ZHANG_ID_NUMBER)).into_response(),
        Mode::Garbage => {
            ([("content-type", "application/json")], "<html>oops</html>").into_response()
        }
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            next.run(request).await
        }
    }
}

impl FakeHost {
    /// Listening on a free port, serving the sandbox customers.
    pub async fn start() -> FakeHost {
        let yaml =
            std::fs::read_to_string(project_root().join("deploy/sandbox/customers.yaml")).unwrap();
        let seed: Value = serde_norway::from_str(&yaml).unwrap();
        let state = Arc::new(HostState {
            customers: seed["customers"].as_array().unwrap().clone(),
            mode: Mutex::new(Mode::Normal),
            frozen: Mutex::default(),
            traceparents: Mutex::default(),
        });
        let app = Router::new()
            .route("/core/customers/lookup", post(lookup))
            .route("/core/customers/{id}/verify-phone", post(verify_phone))
            .route("/core/customers/{id}/cards", get(cards))
            .route("/core/cards/{card}/verify-pin", post(verify_pin))
            .route("/core/cards/{card}/balance", get(balance))
            .route("/core/cards/{card}/freeze", post(freeze))
            .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeHost { port, state }
    }

    /// The base URL to configure (`banking.base_url`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/core", self.port)
    }

    /// The `traceparent` header of each request so far, in order ("" when absent).
    pub fn traceparents(&self) -> Vec<String> {
        self.state.traceparents.lock().unwrap().clone()
    }

    /// How it answers from now on.
    pub fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Whether a card with these last four digits was frozen.
    pub fn is_frozen(&self, last4: &str) -> bool {
        let frozen = self.state.frozen.lock().unwrap();
        self.state.cards().any(|(handle, _, card)| {
            text(card, "number").ends_with(last4) && frozen.contains(&handle)
        })
    }
}
