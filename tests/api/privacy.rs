//! No raw identifiers at rest: a journey that collects an ID number (the card reader), a
//! phone and a card number leaves them sealed or masked in `sessions.state`; appointments
//! find phones by a keyed hash and keep the number only sealed, for the reminder, which the
//! outbox opens only into the request to the SMS gateway; cancelling takes the confirmation
//! code; `concierge keys rotate` moves everything to a new key; two nodes racing for the
//! last seat of a slot book it once.

use std::time::Duration;

use futures_util::StreamExt;
use kiosk_adapter::sim::SimulatedDevices;
use kiosk_protocol::PeerRole;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::outbox::Receiver;

const ID: &str = "11010519491231002X";
const PHONE: &str = "13812345678";
const CARD: &str = "6222021001123456789";

on_both_engines!(
    a_journey_leaves_no_raw_identifier_at_rest,
    appointments_keep_phones_keyed_and_sealed
);

/// Says `text` and reads the replies until the kiosk is
/// quiet, answering device calls from the simulated devices; the reply texts joined.
async fn turn(k: &mut Kiosk, devices: &SimulatedDevices, text: &str) -> String {
    k.send(json!({"type": "user.text", "text": text})).await;
    let mut said = Vec::new();
    loop {
        let quiet = if said.is_empty() {
            WAIT
        } else {
            Duration::from_millis(400)
        };
        let Ok(Some(Ok(Message::Text(frame)))) = tokio::time::timeout(quiet, k.ws.next()).await
        else {
            break;
        };
        let m: Value = serde_json::from_str(&frame).unwrap();
        if m["type"] == "bot.say" {
            said.push(m["text"].as_str().unwrap_or_default().to_string());
        } else if m["type"] == "device.invoke" {
            let call = m["call_id"].as_str().unwrap_or_default();
            let result = devices.handle(
                call,
                m["device"].as_str().unwrap_or_default(),
                m["action"].as_str().unwrap_or_default(),
                &m["args"],
            );
            let reply = match result {
                Ok(data) => {
                    json!({"type": "device.result", "call_id": call, "ok": true, "data": data})
                }
                Err(e) => {
                    json!({"type": "device.result", "call_id": call, "ok": false, "error": e})
                }
            };
            k.send(reply).await;
        }
    }
    said.join(" / ")
}

/// A kiosk that declares the simulated devices, in a new session; its session id.
async fn kiosk_with_devices(app: &TestApp, kiosk_id: &str) -> (Kiosk, String) {
    let token = app.kiosk(kiosk_id, "B001", PeerRole::Screen).await;
    let mut k = app.connect().await;
    let mut caps = vec!["text".to_string(), "choices".to_string()];
    caps.extend(SimulatedDevices::capabilities());
    k.send(json!({"type": "hello", "kiosk_id": kiosk_id, "token": token, "capabilities": caps}))
        .await;
    let welcome = k.recv_type("welcome").await;
    k.recv_type("bot.say").await;
    (k, welcome["session_id"].as_str().unwrap().to_string())
}

async fn stored_state(app: &TestApp, session: &str) -> String {
    sqlx::query_scalar("SELECT state FROM sessions WHERE id = $1")
        .bind(session)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

/// Fails naming the identifier found in `text` (any of them, digits as written).
fn assert_no_identifier(what: &str, text: &str) {
    for raw in [ID, &ID.to_lowercase(), &ID[..17], PHONE, CARD] {
        assert!(!text.contains(raw), "{what} holds {raw} in clear: {text}");
    }
}

async fn seed_sandbox(app: &TestApp) {
    concierge::ports::banking::sandbox::SandboxBank::new(app.state.db.clone())
        .seed(&project_root().join("deploy/sandbox/customers.yaml"))
        .await
        .expect("sandbox seeds");
}

async fn a_journey_leaves_no_raw_identifier_at_rest(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    seed_sandbox(&app).await;
    let (mut k, session) = kiosk_with_devices(&app, "KPII").await;
    let devices = SimulatedDevices::new();
    let said = turn(
        &mut k,
        &devices,
        &format!("我的银行卡丢了，卡号{CARD}，快帮我挂失"),
    )
    .await;
    assert!(said.contains("预留的手机号"), "{said}");
    let said = turn(&mut k, &devices, PHONE).await;
    assert!(said.contains("确认挂失尾号6789"), "the card said: {said}");

    // Mid-journey: the ID read, the phone and the card number said are all held.
    let state = stored_state(&app, &session).await;
    assert_no_identifier("sessions.state", &state);
    let parsed: Value = serde_json::from_str(&state).unwrap();
    let slots = &parsed["stack"][0]["slots"];
    for slot in ["id_number", "phone", "card_number"] {
        let v = slots[slot].as_str().unwrap_or_default();
        assert!(v.starts_with("v1:test:"), "{slot} is sealed: {state}");
    }
    assert!(
        slots["question"]
            .as_str()
            .unwrap()
            .contains("622202*********6789"),
        "the customer's words are kept masked: {state}"
    );
    // ... and the state round-trips: a node that loads it has the values back.
    let loaded = concierge::session::store::load(&app.state.db, &session)
        .await
        .unwrap()
        .unwrap();
    let frame = &loaded.state.stack[0];
    assert_eq!(frame.slots["phone"], PHONE);
    assert_eq!(frame.slots["id_number"], ID);
    assert_eq!(frame.slots["card_number"], CARD);

    // The journey ends: its identifiers go with it.
    let said = turn(&mut k, &devices, "算了，不弄了").await;
    assert!(said.contains("取消"), "{said}");
    let state = stored_state(&app, &session).await;
    assert!(!state.contains("v1:"), "nothing sealed is left: {state}");
    assert_no_identifier("sessions.state", &state);

    // Nothing in clear in the transcript or the sandbox bank either, whose hashes are keyed.
    let lines: Vec<String> =
        sqlx::query_scalar("SELECT text FROM transcript_lines WHERE session_id = $1")
            .bind(&session)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    assert_no_identifier("transcript_lines", &lines.join("\n"));
    let phone_hash: String =
        sqlx::query_scalar("SELECT phone_hash FROM bank_customers WHERE id = 'C0001'")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_ne!(
        phone_hash,
        hex::encode(Sha256::digest(PHONE)),
        "not bare SHA-256"
    );
    assert_eq!(phone_hash, test_ring().lookup_hash(PHONE));
    app.stop().await;
}

/// The keyring of `Settings::for_tests`.
fn test_ring() -> concierge::domain::vault::Keyring {
    let (keys, active, lookup) = concierge::domain::vault::test_keyring_parts();
    concierge::domain::vault::Keyring::from_encoded(&keys, &active, &lookup).unwrap()
}

/// Books 开户 next Wednesday at 10:00 for `phone` over the kiosk; the confirmation code.
async fn book(k: &mut Kiosk, phone: &str) -> String {
    let reply = k.say("帮我预约下周三上午十点来开户").await;
    assert!(
        reply["text"].as_str().unwrap().contains("手机号"),
        "{reply}"
    );
    let reply = k.say(phone).await;
    assert!(
        reply["text"].as_str().unwrap().contains("确认吗"),
        "{reply}"
    );
    let reply = k.say("确认").await;
    let text = reply["text"].as_str().unwrap();
    let code = regex::Regex::new("确认码是([2-9A-Z]{6})")
        .unwrap()
        .captures(text)
        .unwrap_or_else(|| panic!("booked: {text}"))[1]
        .to_string();
    code
}

/// Sends the reminders of every appointment in the next ten days to the `sms` webhook now.
async fn remind_now(app: &TestApp) -> usize {
    let now = concierge::store::now_ms();
    let hooks = vec!["sms".to_string()];
    concierge::branch::appointments::remind(&app.state.db, now, 24 * 10, &hooks)
        .await
        .unwrap()
}

async fn appointments_keep_phones_keyed_and_sealed(engine: Engine) {
    let sms = Receiver::up().await;
    let workflow = Receiver::up().await;
    let app = spawn_app_with(engine, |s| {
        s.outbox.webhooks = vec![
            concierge::config::WebhookSettings {
                name: "sms".into(),
                url: sms.url(),
                secret: "k".to_string().into(),
                reminders: true,
            },
            concierge::config::WebhookSettings {
                name: "workflow".into(),
                url: workflow.url(),
                secret: "k".to_string().into(),
                reminders: false,
            },
        ];
        s.outbox.poll_ms = 50;
    })
    .await;
    let (mut k, _, _) = app.new_session("KAPPT").await;
    k.recv_type("bot.say").await;
    let code = book(&mut k, PHONE).await;
    let db = &app.state.db;

    // The row: a keyed hash, the masked form and the sealed number; nothing in clear.
    let row: (String, String, String, String) = sqlx::query_as(
        "SELECT phone_hash, phone_masked, phone_sealed, status FROM appointments WHERE code = $1",
    )
    .bind(&code)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_ne!(
        row.0,
        hex::encode(Sha256::digest(PHONE)),
        "not bare SHA-256"
    );
    assert_eq!(row.0, test_ring().lookup_hash(PHONE));
    assert_eq!(row.1, "138****5678");
    assert!(row.2.starts_with("v1:test:"), "{}", row.2);
    assert_no_identifier("appointments", &format!("{row:?}"));

    // The reminder: sealed in the outbox table, the number only in the request to the
    // gateway, never to the other receivers.
    assert_eq!(app.state.branch.remind_within(24 * 10).await.unwrap(), 1);
    let hooks: Vec<String> = sqlx::query_scalar("SELECT target FROM outbox WHERE event_id = $1")
        .bind(format!("appointment-reminder-{code}"))
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(hooks, ["sms"]);
    let stored: String = sqlx::query_scalar("SELECT payload FROM outbox WHERE event_id = $1")
        .bind(format!("appointment-reminder-{code}"))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_no_identifier("outbox.payload", &stored);
    assert!(
        stored.contains("v1:test:") && stored.contains(&code),
        "{stored}"
    );
    let deadline = std::time::Instant::now() + WAIT;
    while sms.count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reminder never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered: Value = serde_json::from_slice(&sms.shared.log.lock().unwrap()[0].body).unwrap();
    assert_eq!(delivered["appointment"]["phone"], PHONE, "{delivered}");

    // Finding by phone never tells the code; cancelling needs it.
    let reply = k.say("查一下我的预约").await;
    assert!(
        reply["text"].as_str().unwrap().contains("手机号"),
        "{reply}"
    );
    let reply = k.say(PHONE).await;
    let text = reply["text"].as_str().unwrap();
    assert!(
        text.contains("查到您有1个预约") && !text.contains(&code),
        "{text}"
    );
    let branch = &app.state.branch;
    let phone = concierge::domain::pii::Phone::new(PHONE);
    assert!(
        !branch.cancel("", &phone).await.unwrap(),
        "no code, no cancel"
    );
    let other = concierge::domain::pii::Phone::new("13900001111");
    assert!(
        !branch.cancel(&code, &other).await.unwrap(),
        "another phone"
    );
    assert!(k.say("我要取消预约").await["text"]
        .as_str()
        .unwrap()
        .contains("手机号"));
    assert!(k.say(PHONE).await["text"]
        .as_str()
        .unwrap()
        .contains("确认码"));
    let typed = format!("确认码是 {}", code.to_lowercase());
    assert!(k.say(&typed).await["text"]
        .as_str()
        .unwrap()
        .contains("确定要取消"));
    let reply = k.say("是的").await;
    assert!(
        reply["text"].as_str().unwrap().contains("已经帮您取消"),
        "{reply}"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM appointments WHERE code = $1")
        .bind(&code)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "cancelled");
    app.stop().await;
}

/// `concierge keys rotate` with the test key and `k2` (active), as an operator runs it.
fn rotate(url: &str, keys: &[(&str, &str)], active: &str) -> String {
    let (_, _, lookup) = concierge::domain::vault::test_keyring_parts();
    rotate_with(
        url,
        keys,
        active,
        secrecy::ExposeSecret::expose_secret(&lookup),
    )
}

/// `concierge keys rotate` with these keys and this lookup secret.
fn rotate_with(url: &str, keys: &[(&str, &str)], active: &str, lookup: &str) -> String {
    let mut cmd = concierge();
    cmd.args(["keys", "rotate", "--database-url", url])
        .env("CONCIERGE__SECURITY__ACTIVE_KEY", active)
        .env("CONCIERGE__SECURITY__LOOKUP_SECRET", lookup);
    for (id, key) in keys {
        cmd.env(
            format!("CONCIERGE__SECURITY__DATA_KEYS__{}", id.to_uppercase()),
            key,
        );
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text
}

#[tokio::test]
async fn keys_rotate_moves_everything_to_the_new_key_and_sessions_still_resume() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let app = spawn_on(&url, &project_root(), |s| {
        s.outbox.webhooks = vec![concierge::config::WebhookSettings {
            name: "sms".into(),
            url: "http://127.0.0.1:9/down".into(),
            secret: "k".to_string().into(),
            reminders: true,
        }];
    })
    .await;
    let (mut k, _, _) = app.new_session("KROT").await;
    k.recv_type("bot.say").await;
    let code = book(&mut k, PHONE).await;
    assert_eq!(remind_now(&app).await, 1);
    // A second booking, left at its confirmation with the phone held.
    let token = app.kiosk("KROT2", "B001", PeerRole::Screen).await;
    let mut k2 = app.connect().await;
    let (session, _) = k2.hello("KROT2", &token, None).await;
    k2.recv_type("bot.say").await;
    k2.say("帮我预约下周四上午十点来开户").await;
    let reply = k2.say("13900001111").await;
    assert!(
        reply["text"].as_str().unwrap().contains("确认吗"),
        "{reply}"
    );
    app.stop().await;

    let b64 = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    let (test_key, new_key) = (b64(7), b64(42));
    let text = rotate(&url, &[("test", &test_key), ("k2", &new_key)], "k2");
    for want in [
        "sessions: 1",
        "appointments: 1",
        "outbox: 1",
        "under key k2",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let again = rotate(&url, &[("test", &test_key), ("k2", &new_key)], "k2");
    for want in ["sessions: 0", "appointments: 0", "outbox: 0"] {
        assert!(again.contains(want), "idempotent: {want}: {again}");
    }

    // The old key is gone from the ring: the session resumes and the booking goes through
    // with the phone it held, sealed under k2 only.
    let app = spawn_on(&url, &project_root(), |s| {
        s.security.data_keys = [("k2".to_string(), new_key.clone().into())].into();
        s.security.active_key = "k2".into();
    })
    .await;
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM sessions UNION ALL SELECT phone_sealed FROM appointments \
         WHERE phone_sealed IS NOT NULL UNION ALL SELECT payload FROM outbox",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    let dump = dump.join("\n");
    assert!(
        !dump.contains("v1:test:") && dump.contains("v1:k2:"),
        "{dump}"
    );
    let mut k2 = app.connect().await;
    let (resumed, was_resumed) = k2.hello("KROT2", &token, Some(&session)).await;
    assert!(was_resumed && resumed == session);
    k2.recv_type("bot.say").await;
    let reply = k2.say("确认").await;
    assert!(
        reply["text"].as_str().unwrap().contains("预约成功"),
        "the phone survived the rotation: {reply}"
    );
    let phone = concierge::domain::pii::Phone::new(PHONE);
    assert_eq!(
        app.state.branch.upcoming(&phone).await.unwrap()[0].code,
        code
    );
    app.stop().await;
}

/// A new lookup secret: until `keys rotate` has re-keyed the hashes, phones are not found;
/// after it they are again.
#[tokio::test]
async fn keys_rotate_rekeys_phone_lookups_under_a_new_lookup_secret() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let app = spawn_on(&url, &project_root(), |_| {}).await;
    let (mut k, _, _) = app.new_session("KLOOK").await;
    k.recv_type("bot.say").await;
    let code = book(&mut k, PHONE).await;
    app.stop().await;

    let new_lookup = base64::engine::general_purpose::STANDARD.encode([11u8; 32]);
    let test_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let root = project_root();
    let start = || {
        let secret = new_lookup.clone();
        spawn_on(&url, &root, move |s| {
            s.security.lookup_secret = secret.into();
        })
    };
    let phone = concierge::domain::pii::Phone::new(PHONE);
    let app = start().await;
    assert!(app.state.branch.upcoming(&phone).await.unwrap().is_empty());
    app.stop().await;
    let text = rotate_with(&url, &[("test", &test_key)], "test", &new_lookup);
    assert!(text.contains("appointments: 1"), "{text}");
    let app = start().await;
    assert_eq!(
        app.state.branch.upcoming(&phone).await.unwrap()[0].code,
        code
    );
    app.stop().await;
}

#[tokio::test]
async fn two_nodes_racing_for_the_last_seat_book_it_once() {
    use concierge::branch::BookRequest;
    let url = fresh_postgres().await;
    let a = spawn_on(&url, &project_root(), |_| {}).await;
    let b = spawn_on(&url, &project_root(), |_| {}).await;
    // wealth.consult has one seat per slot; a day far enough ahead, not a holiday.
    let rules = &a.state.branch.rules.calendar;
    let mut day = concierge::domain::clock::now_local().date_naive() + chrono::Duration::days(30);
    while rules.holidays.contains(&day) {
        day += chrono::Duration::days(1);
    }
    let date = day.to_string();
    for hour in 9..17 {
        let time = format!("{hour:02}:00");
        let request = |n: usize| BookRequest {
            branch: "B001",
            service: "wealth.consult",
            date: &date,
            time: &time,
            phone: concierge::domain::pii::Phone::new(format!("1390000{n:04}")),
            session_id: "race",
        };
        let (r1, r2, r3, r4) = (request(1), request(2), request(3), request(4));
        let results = tokio::join!(
            a.state.branch.book(&r1),
            b.state.branch.book(&r2),
            a.state.branch.book(&r3),
            b.state.branch.book(&r4),
        );
        let won = [results.0, results.1, results.2, results.3]
            .into_iter()
            .filter(|r| r.as_ref().unwrap().is_ok())
            .count();
        assert_eq!(won, 1, "{date} {time}: one seat, {won} bookings");
    }
    a.stop().await;
    b.stop().await;
}

#[test]
fn without_keys_postgresql_refuses_and_sqlite_generates_a_private_keyring_once() {
    let out = concierge()
        .args([
            "migrate",
            "--database-url",
            "postgres://127.0.0.1:1/nowhere",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("security.data_keys") && err.contains("CONCIERGE__SECURITY__DATA_KEYS__"),
        "{err}"
    );
    // A lookup secret too short is named once, not once per layer of the error.
    let out = concierge()
        .args([
            "migrate",
            "--database-url",
            "postgres://127.0.0.1:1/nowhere",
        ])
        .env(
            "CONCIERGE__SECURITY__DATA_KEYS__K1",
            "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        )
        .env("CONCIERGE__SECURITY__ACTIVE_KEY", "k1")
        .env("CONCIERGE__SECURITY__LOOKUP_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("lookup secret").count(), 1, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let list = || {
        concierge()
            .args(["kiosk", "list", "--database-url", &url])
            .output()
            .unwrap()
    };
    let first = list();
    assert!(first.status.success());
    let logs = String::from_utf8_lossy(&first.stdout).to_string()
        + &String::from_utf8_lossy(&first.stderr);
    let file = dir.path().join("keys.toml");
    assert!(
        logs.contains("generated a keyring file") && logs.contains("keys.toml"),
        "{logs}"
    );
    let keys = std::fs::read_to_string(&file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
    }
    let second = list();
    assert!(second.status.success());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        keys,
        "generated once"
    );
    assert!(!String::from_utf8_lossy(&second.stderr).contains("generated a keyring file"));
}
