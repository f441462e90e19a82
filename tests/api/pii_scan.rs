//! The PII scanner of issue #17 ("Prove it"): after the whole conversation suite has run on
//! an app (SQLite and PostgreSQL), no test customer's full ID number, phone number or card
//! number is anywhere Concierge writes: every column of every table (as stored, nothing
//! decrypted), every JSON log line, every payload a webhook receiver was sent, and
//! `/metrics`. Values match in any spelling: every digit (ASCII, full-width, Chinese) is
//! read as ASCII, and digits joined by spaces, dashes, dots, slashes or commas count as one
//! number, so `138 1234 5678`, `１３８…` and `幺三八…` are all found; a letter, quote or colon
//! ends a number (so a JSON line's many small counts are not read as one long one). A
//! second test plants raw values and proves the scanner finds them.
//!
//! The customers are the sandbox bank's (`deploy/sandbox/customers.yaml`) plus every
//! identifier a conversation script types.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use concierge::store::Backend;
use sqlx::Row;

use crate::helpers::*;
use crate::outbox::Receiver;

on_both_engines!(
    the_conversation_suite_leaves_no_raw_identifier,
    the_scanner_finds_planted_raw_identifiers,
);

/// Where a raw identifier was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Column { table: String, column: String },
    Log,
    Webhook,
    Metrics,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Column { table, column } => write!(f, "{table}.{column}"),
            Place::Log => f.write_str("log"),
            Place::Webhook => f.write_str("webhook payload"),
            Place::Metrics => f.write_str("/metrics"),
        }
    }
}

/// One raw identifier found somewhere.
#[derive(Debug)]
struct Hit {
    place: Place,
    secret: String,
    excerpt: String,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} in `{}`", self.place, self.secret, self.excerpt)
    }
}

/// The digits of `text` written any way (ASCII, full-width, Chinese numerals), as ASCII;
/// everything else dropped.
fn digits_only(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '０'..='９' => Some(c as u32 - '０' as u32),
            _ => concierge::text::numbers::digit_value(c),
        })
        .filter_map(|d| char::from_digit(d, 10))
        .collect()
}

/// The digits that must never appear: phones and cards whole, an ID's first 17 digits
/// (its check character may be an X).
fn needle(identifier: &str) -> Option<String> {
    let digits = digits_only(identifier);
    let id = digits.len() == 18 || (digits.len() == 17 && identifier.ends_with(['X', 'x']));
    match digits.len() {
        _ if id => Some(digits[..17].to_string()),
        11 if digits.starts_with('1') => Some(digits),
        16..=19 => Some(digits),
        _ => None,
    }
}

/// The test customers' identifiers: the sandbox bank's and those the scripts type.
fn secrets() -> BTreeSet<String> {
    let text = std::fs::read_to_string(project_root().join("deploy/sandbox/customers.yaml"))
        .expect("customers.yaml");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("customers.yaml parses");
    let mut raw: Vec<String> = Vec::new();
    for customer in yaml["customers"].as_sequence().expect("customers") {
        for key in ["id_number", "phone"] {
            raw.extend(customer[key].as_str().map(String::from));
        }
        for card in customer["cards"].as_sequence().into_iter().flatten() {
            raw.extend(card["number"].as_str().map(String::from));
        }
    }
    // A typed identifier: digits in any spelling, grouped by separators.
    let typed = regex::Regex::new(r"[0-9０-９〇零一幺二两三四五六七八九](?:[\s\-./,，、]*[0-9０-９〇零一幺二两三四五六七八九])*[xX]?")
        .unwrap();
    for line in crate::conversations::customer_lines() {
        raw.extend(typed.find_iter(&line).map(|m| m.as_str().to_string()));
    }
    let secrets: BTreeSet<String> = raw.iter().filter_map(|r| needle(r)).collect();
    assert!(
        secrets.len() >= 10,
        "too few identifiers to look for: {secrets:?}"
    );
    secrets
}

/// The numbers written in `text`: runs of digits (any spelling, as ASCII) joined only by
/// separators a person types between digit groups.
fn numbers(text: &str) -> Vec<String> {
    let mut runs = vec![String::new()];
    for c in text.chars() {
        let digit = match c {
            '０'..='９' => Some(c as u32 - '０' as u32),
            _ => concierge::text::numbers::digit_value(c),
        };
        match digit.and_then(|d| char::from_digit(d, 10)) {
            Some(d) => runs.last_mut().expect("one run").push(d),
            None if c.is_whitespace() || "-－—./．／,，、·_".contains(c) => {}
            None => {
                if !runs.last().expect("one run").is_empty() {
                    runs.push(String::new());
                }
            }
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

fn look(place: Place, text: &str, secrets: &BTreeSet<String>, hits: &mut Vec<Hit>) {
    let numbers = numbers(text);
    for secret in secrets
        .iter()
        .filter(|s| numbers.iter().any(|n| n.contains(s.as_str())))
    {
        hits.push(Hit {
            place: place.clone(),
            secret: secret.clone(),
            excerpt: text.chars().take(300).collect(),
        });
    }
}

/// Every column of every table: (table, column, whether it is PostgreSQL `bytea`).
async fn columns(app: &TestApp) -> Vec<(String, String, bool)> {
    let db = &app.state.db;
    let sql = match db.backend {
        Backend::Sqlite => {
            "SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' ORDER BY m.name, p.cid"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = 'public' \
             ORDER BY table_name, ordinal_position"
        }
    };
    sqlx::query(sql)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let kind: String = r.get(2);
            (r.get(0), r.get(1), kind.eq_ignore_ascii_case("bytea"))
        })
        .collect()
}

/// Scans every table, the captured log lines, the webhook payloads and `/metrics`.
async fn scan(app: &TestApp, logs: &CapturedLogs, hook: &Receiver) -> Vec<Hit> {
    let secrets = secrets();
    let mut hits = Vec::new();
    let columns = columns(app).await;
    assert!(
        columns.len() > 50,
        "the scan must see the schema: {columns:?}"
    );
    for (table, column, bytea) in columns {
        let sql = match (app.state.db.backend, bytea) {
            (Backend::Sqlite, _) => format!(r#"SELECT CAST("{column}" AS BLOB) FROM "{table}""#),
            (Backend::Postgres, true) => format!(r#"SELECT "{column}" FROM "{table}""#),
            (Backend::Postgres, false) => {
                format!(r#"SELECT convert_to("{column}"::text, 'UTF8') FROM "{table}""#)
            }
        };
        let rows = sqlx::query(&sql)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        for row in rows {
            let value: Option<Vec<u8>> = row.get(0);
            let text = String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into_owned();
            let place = Place::Column {
                table: table.clone(),
                column: column.clone(),
            };
            look(place, &text, &secrets, &mut hits);
        }
    }
    for line in logs.lines() {
        look(Place::Log, &line, &secrets, &mut hits);
    }
    let payloads: Vec<Vec<u8>> = hook
        .shared
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.body.clone())
        .collect();
    for body in payloads {
        look(
            Place::Webhook,
            &String::from_utf8_lossy(&body),
            &secrets,
            &mut hits,
        );
    }
    let metrics = reqwest::get(app.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("concierge_"), "{metrics}");
    for line in metrics.lines() {
        look(Place::Metrics, line, &secrets, &mut hits);
    }
    hits
}

/// An app whose ticket events go to `hook`.
async fn app_with_hook(engine: Engine, hook: &Receiver) -> TestApp {
    let url = hook.url();
    spawn_app_with(engine, move |s| {
        s.outbox.webhooks = vec![concierge::config::WebhookSettings {
            name: "workflow".into(),
            url,
            secret: "pii-scan-secret".to_string().into(),
            reminders: false,
        }];
        s.outbox.poll_ms = 50;
    })
    .await
}

/// Waits until the outbox has delivered every row (or 20 s have passed).
async fn outbox_drained(app: &TestApp) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap();
        if pending == 0 || Instant::now() > until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn the_conversation_suite_leaves_no_raw_identifier(engine: Engine) {
    let (logs, _capture) = CapturedLogs::start();
    let hook = Receiver::up().await;
    let app = app_with_hook(engine, &hook).await;
    crate::conversations::run_every_script(&app).await;
    outbox_drained(&app).await;
    // The scan is only worth something if everything it reads was written.
    assert!(hook.count() > 0, "the suite should deliver ticket events");
    assert!(
        logs.lines().len() > 100,
        "the app's logs should be captured"
    );

    let hits = scan(&app, &logs, &hook).await;
    app.stop().await;
    let places: BTreeSet<String> = hits.iter().map(|h| h.place.to_string()).collect();
    assert!(
        hits.is_empty(),
        "raw identifiers found in {places:?}:\n{}",
        hits.iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn the_scanner_finds_planted_raw_identifiers(engine: Engine) {
    let (logs, _capture) = CapturedLogs::start();
    let hook = Receiver::up().await;
    let app = app_with_hook(engine, &hook).await;
    let (_kiosk, session, _) = app.new_session("KPLANT").await;
    let clean = scan(&app, &logs, &hook).await;
    assert!(
        clean.is_empty(),
        "{}",
        clean
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // 张三's phone, spelled two ways, planted in a column and in a log line.
    sqlx::query("UPDATE sessions SET end_reason = $1 WHERE id = $2")
        .bind("幺三八 1234－5678")
        .bind(&session)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    tracing::info!(note = "１３８.１２３４.５６７８", "planted");
    let hits = scan(&app, &logs, &hook).await;
    app.stop().await;
    let places: BTreeSet<String> = hits.iter().map(|h| h.place.to_string()).collect();
    let want: BTreeSet<String> = ["sessions.end_reason", "log"].map(String::from).into();
    assert_eq!(places, want, "{hits:?}");
    assert!(hits.iter().all(|h| h.secret == "13812345678"), "{hits:?}");
}
