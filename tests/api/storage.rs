//! The storage contract, run on SQLite and on PostgreSQL alike.

use concierge::access::kiosks::{self, KioskAuth};
use concierge::access::staff;
use concierge::dialog::SessionState;
use concierge::session::store::{self as sessions, NewLine, Speaker};
use concierge::store::{Backend, Db};
use kiosk_protocol::PeerRole;
use secrecy::SecretString;

use crate::helpers::{fresh_database, Engine};

async fn open(engine: Engine) -> (Db, tempfile::TempDir) {
    let (url, dir) = fresh_database(engine).await;
    let db = Db::connect(&SecretString::from(url), 4).await.unwrap();
    db.migrate().await.unwrap();
    (db, dir)
}

on_both_engines!(
    migrations_are_idempotent,
    kiosk_tokens_are_stored_hashed_and_checked,
    staff_passwords_and_tokens_work,
    sessions_and_transcripts_round_trip,
    a_failed_turn_write_leaves_no_half_turn,
    the_sandbox_bank_seeds_and_answers,
    retention_purges_only_what_is_old_enough,
    kiosk_tokens_rotate_without_downtime,
);

/// Rotation: a new token is issued beside the old ones, then all but the newest of each role
/// are revoked; the kiosk never has no valid token.
async fn kiosk_tokens_rotate_without_downtime(engine: Engine) {
    let (db, _dir) = open(engine).await;
    let old = kiosks::register(&db, "K1", "B1", PeerRole::Screen)
        .await
        .unwrap();
    let adapter = kiosks::register(&db, "K1", "B1", PeerRole::Devices)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let new = kiosks::register(&db, "K1", "B1", PeerRole::Screen)
        .await
        .unwrap();
    let ok = |auth: KioskAuth| matches!(auth, KioskAuth::Ok(_));
    assert_eq!(kiosks::revoke_older_tokens(&db, "K1").await.unwrap(), 1);
    assert!(!ok(kiosks::authenticate(
        &db,
        "K1",
        Some(&old),
        PeerRole::Screen
    )
    .await
    .unwrap()));
    assert!(ok(kiosks::authenticate(
        &db,
        "K1",
        Some(&new),
        PeerRole::Screen
    )
    .await
    .unwrap()));
    assert!(ok(kiosks::authenticate(
        &db,
        "K1",
        Some(&adapter),
        PeerRole::Devices
    )
    .await
    .unwrap()));
    assert_eq!(kiosks::revoke_older_tokens(&db, "K1").await.unwrap(), 0);
    assert!(kiosks::revoke_older_tokens(&db, "K9").await.is_err());
}

async fn the_sandbox_bank_seeds_and_answers(engine: Engine) {
    use concierge::ports::banking::sandbox::SandboxBank;
    let (db, _dir) = open(engine).await;
    let bank = SandboxBank::new(db.clone());
    let seed = crate::helpers::project_root().join("deploy/sandbox/customers.yaml");
    assert_eq!(bank.seed(&seed).await.unwrap(), (2, 3));
    // Seeding again replaces, it does not duplicate.
    assert_eq!(bank.seed(&seed).await.unwrap(), (2, 3));
    let zhang = bank
        .customer_by_id_number("11010519491231002x")
        .await
        .unwrap()
        .expect("张三 is found by ID number, whatever the case of X");
    assert_eq!(zhang.name, "张三");
    assert_eq!(zhang.phone_masked, "138****5678");
    assert!(bank.phone_matches(&zhang.id, "13812345678").await.unwrap());
    assert!(!bank.phone_matches(&zhang.id, "13812345679").await.unwrap());
    let cards = bank.cards(&zhang.id).await.unwrap();
    assert_eq!(cards.len(), 2);
    let debit = cards.iter().find(|c| c.last4 == "6789").unwrap();
    assert!(bank
        .pin_matches(&debit.handle, "9A3F1C0B7E2D4A68")
        .await
        .unwrap());
    assert!(!bank.pin_matches(&debit.handle, "000000").await.unwrap());
    assert_eq!(
        bank.balance_cents(&debit.handle).await.unwrap(),
        Some(5_238_075)
    );
    assert!(bank.freeze(&debit.handle, "客户挂失").await.unwrap());
    assert!(
        bank.freeze(&debit.handle, "客户挂失").await.unwrap(),
        "freezing twice is fine"
    );
    assert!(!bank.freeze("no-such-card", "x").await.unwrap());
    let after = bank.cards(&zhang.id).await.unwrap();
    assert_eq!(
        after.iter().find(|c| c.last4 == "6789").unwrap().status,
        "frozen"
    );
    // Nothing identifying is stored in clear.
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT id_number_hash || id_number_masked || phone_hash || phone_masked FROM bank_customers",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let cards_dump: Vec<String> =
        sqlx::query_scalar("SELECT card_hash || masked || pin_hash FROM bank_cards")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let all = format!("{dump:?}{cards_dump:?}");
    for secret in [
        "11010519491231002X",
        "13812345678",
        "6222021001123456789",
        "123456",
    ] {
        assert!(!all.contains(secret), "{secret} stored in clear");
    }
    assert!(bank
        .customer_by_id_number("110105194912310021")
        .await
        .unwrap()
        .is_none());
}

async fn migrations_are_idempotent(engine: Engine) {
    let (db, _dir) = open(engine).await;
    db.migrate().await.unwrap();
    assert!(db.ping().await);
    // A newer release migrated this database further (a rolling upgrade, a rollback):
    // this build still starts on it.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         SELECT 29991231000001, 'from a newer release', installed_on, TRUE, checksum, 1 \
         FROM _sqlx_migrations ORDER BY version DESC LIMIT 1",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db.migrate().await.unwrap();
    assert!(db.ping().await);
    assert_eq!(
        db.backend,
        if engine == Engine::Sqlite {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    );
}

async fn kiosk_tokens_are_stored_hashed_and_checked(engine: Engine) {
    let (db, _dir) = open(engine).await;
    let token = kiosks::register(&db, "K1", "B1", PeerRole::Screen)
        .await
        .unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM kiosk_tokens")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);
    assert!(matches!(
        kiosks::authenticate(&db, "K1", Some(&token), PeerRole::Screen)
            .await
            .unwrap(),
        KioskAuth::Ok(_)
    ));
    assert_eq!(
        kiosks::authenticate(&db, "K1", Some(&token), PeerRole::Devices)
            .await
            .unwrap(),
        KioskAuth::BadToken
    );
    assert_eq!(
        kiosks::authenticate(&db, "K2", Some(&token), PeerRole::Screen)
            .await
            .unwrap(),
        KioskAuth::UnknownKiosk
    );
    assert!(matches!(
        kiosks::register(&db, "K1", "B2", PeerRole::Screen).await,
        Err(kiosks::KioskError::BranchMismatch(..))
    ));
    assert_eq!(kiosks::revoke_tokens(&db, "K1").await.unwrap(), 1);
    assert_eq!(
        kiosks::authenticate(&db, "K1", Some(&token), PeerRole::Screen)
            .await
            .unwrap(),
        KioskAuth::BadToken
    );
    assert_eq!(kiosks::list(&db).await.unwrap().len(), 1);
}

async fn staff_passwords_and_tokens_work(engine: Engine) {
    let (db, _dir) = open(engine).await;
    staff::add_user(&db, "bob", "teller", "a long password")
        .await
        .unwrap();
    assert!(matches!(
        staff::add_user(&db, "bob", "teller", "a long password").await,
        Err(staff::StaffError::Exists(_))
    ));
    assert!(matches!(
        staff::add_user(&db, "eve", "boss", "a long password").await,
        Err(staff::StaffError::UnknownRole(_))
    ));
    assert!(matches!(
        staff::add_user(&db, "eve", "teller", "short").await,
        Err(staff::StaffError::WeakPassword)
    ));
    let settings =
        concierge::config::Settings::for_tests("sqlite::memory:", std::path::Path::new("."));
    let guard = concierge::access::throttle::LoginGuard::new(&settings.login);
    assert!(staff::login(&db, &guard, "bob", "wrong password", 60)
        .await
        .unwrap()
        .is_none());
    assert!(staff::login(&db, &guard, "nobody", "a long password", 60)
        .await
        .unwrap()
        .is_none());
    let (token, _, user) = staff::login(&db, &guard, "bob", "a long password", 60)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staff::authenticate(&db, &token).await.unwrap(), Some(user));
    let (expired, _, _) = staff::login(&db, &guard, "bob", "a long password", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staff::authenticate(&db, &expired).await.unwrap(), None);
    staff::logout(&db, &token).await.unwrap();
    assert_eq!(staff::authenticate(&db, &token).await.unwrap(), None);
}

async fn sessions_and_transcripts_round_trip(engine: Engine) {
    let (db, _dir) = open(engine).await;
    kiosks::register(&db, "K1", "B1", PeerRole::Screen)
        .await
        .unwrap();
    let s = sessions::create(&db, "K1", "B1", &SessionState::default())
        .await
        .unwrap();
    let state = SessionState {
        misunderstood: 1,
        ..SessionState::default()
    };
    let lines = [
        NewLine {
            speaker: Speaker::Customer,
            kind: "text",
            text: "手机13812345678",
            turn_id: Some("t1"),
        },
        NewLine {
            speaker: Speaker::Bot,
            kind: "text",
            text: "好的",
            turn_id: Some("t1"),
        },
    ];
    sessions::record(&db, &s.id, &lines, Some(&state), None)
        .await
        .unwrap();
    sessions::record(&db, &s.id, &lines[..1], None, Some("completed"))
        .await
        .unwrap();
    let loaded = sessions::load(&db, &s.id).await.unwrap().unwrap();
    assert_eq!(loaded.state, state);
    assert_eq!(loaded.status, "ended");
    let t = sessions::transcript(&db, &s.id).await.unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].text, "手机138****5678");
    assert_eq!(t[0].turn_id.as_deref(), Some("t1"));
    assert_eq!(t.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let turns: i64 = sqlx::query_scalar("SELECT turn_count FROM sessions WHERE id = $1")
        .bind(&s.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(turns, 2);
}

async fn a_failed_turn_write_leaves_no_half_turn(engine: Engine) {
    let (db, _dir) = open(engine).await;
    kiosks::register(&db, "K1", "B1", PeerRole::Screen)
        .await
        .unwrap();
    let s = sessions::create(&db, "K1", "B1", &SessionState::default())
        .await
        .unwrap();
    let lines = [NewLine {
        speaker: Speaker::Customer,
        kind: "text",
        text: "你好",
        turn_id: None,
    }];
    sessions::record(&db, &s.id, &lines, None, None)
        .await
        .unwrap();
    // A transcript line for a session that does not exist violates the foreign key: the
    // whole write is refused and nothing of it is kept.
    let err = sessions::record(&db, "no-such-session", &lines, None, None).await;
    assert!(err.is_err());
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transcript_lines")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// The retention purge deletes what is older than its policy, and nothing else: an ended
/// session with its transcript, old lines of a session still open (the session stays, but
/// ends as abandoned), expired staff tokens, dead webhook rows, past appointments (whose
/// sealed phone goes as soon as their day has passed); device calls kept longer stay;
/// days = 0 keeps everything.
async fn retention_purges_only_what_is_old_enough(engine: Engine) {
    use concierge::config::RetentionSettings;
    use concierge::retention::{purge, Purged};
    let (db, _dir) = open(engine).await;
    kiosks::register(&db, "K1", "B1", PeerRole::Screen)
        .await
        .unwrap();
    let line = [NewLine {
        speaker: Speaker::Customer,
        kind: "text",
        text: "你好",
        turn_id: Some("t1"),
    }];
    let ended = sessions::create(&db, "K1", "B1", &SessionState::default())
        .await
        .unwrap();
    sessions::record(&db, &ended.id, &line, None, Some("completed"))
        .await
        .unwrap();
    let open_one = sessions::create(&db, "K1", "B1", &SessionState::default())
        .await
        .unwrap();
    sessions::record(&db, &open_one.id, &line, None, None)
        .await
        .unwrap();
    let now = concierge::store::now_ms();
    sqlx::query(
        "INSERT INTO device_calls (id, kiosk_id, device, action, ok, duration_ms, result_masked, at) \
         VALUES ('d1', 'K1', 'printer', 'print', 1, 5, '{}', $1)",
    )
    .bind(now)
    .execute(&db.pool)
    .await
    .unwrap();
    staff::add_user(&db, "bob", "teller", "a long password")
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO staff_tokens (token_hash, user_id, created_at, expires_at) \
         SELECT 'h1', id, $1, $1 + 1000 FROM staff_users WHERE name = 'bob'",
    )
    .bind(now)
    .execute(&db.pool)
    .await
    .unwrap();
    let day = 24 * 3600 * 1000;
    // An appointment two days from now, and a webhook row that gave up.
    let in_two_days = chrono::DateTime::from_timestamp_millis(now + 2 * day)
        .unwrap()
        .with_timezone(&concierge::domain::clock::branch_offset())
        .format("%Y-%m-%d")
        .to_string();
    sqlx::query(
        "INSERT INTO appointments (code, branch_id, service, day, slot, phone_hash, phone_masked, \
         phone_sealed, status, created_at) VALUES ('A1', 'B1', 'account.open', $1, '10:00', 'h', \
         '138****5678', 'v1:k:x', 'booked', $2)",
    )
    .bind(&in_two_days)
    .bind(now)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (id, event_id, target, payload, state, attempts, next_attempt_at, \
         claimed_until, created_at) VALUES ('o1', 'e1', 'hook', '{}', 'dead', 8, 0, 0, $1)",
    )
    .bind(now)
    .execute(&db.pool)
    .await
    .unwrap();
    let policy = RetentionSettings {
        transcripts_days: 180,
        ended_sessions_days: 180,
        device_calls_days: 365,
        delivered_outbox_days: 30,
        expired_staff_tokens_days: 7,
        dead_outbox_days: 90,
        appointments_days: 90,
        abandoned_session_hours: 2,
        every_secs: 3600,
    };
    // Nothing is old enough yet.
    assert_eq!(
        purge(&db, &policy, now + 3_600_000).await.unwrap().total(),
        0
    );
    let keep_all = RetentionSettings {
        transcripts_days: 0,
        ended_sessions_days: 0,
        device_calls_days: 0,
        delivered_outbox_days: 0,
        expired_staff_tokens_days: 0,
        dead_outbox_days: 0,
        appointments_days: 0,
        abandoned_session_hours: 0,
        ..policy.clone()
    };
    // Keeping everything still forgets the sealed phone of an appointment whose day is over.
    assert_eq!(
        purge(&db, &keep_all, now + 1000 * day).await.unwrap(),
        Purged {
            appointment_phones: 1,
            ..Purged::default()
        }
    );
    let sealed: Option<String> =
        sqlx::query_scalar("SELECT phone_sealed FROM appointments WHERE code = 'A1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(sealed, None);

    let later = now + 181 * day;
    let p = purge(&db, &policy, later).await.unwrap();
    assert_eq!(
        p,
        Purged {
            transcript_lines: 2,
            sessions: 1,
            device_calls: 0,
            outbox: 1,
            staff_tokens: 1,
            appointments: 1,
            appointment_phones: 0,
            abandoned_sessions: 1,
        }
    );
    assert!(sessions::load(&db, &ended.id).await.unwrap().is_none());
    let still = sessions::load(&db, &open_one.id).await.unwrap().unwrap();
    assert_eq!(
        still.status, "ended",
        "an abandoned session ends, is not deleted"
    );
    assert!(sessions::transcript(&db, &open_one.id)
        .await
        .unwrap()
        .is_empty());
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_calls")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(calls, 1, "device calls are kept for a year");
    // A second purge finds nothing more.
    assert_eq!(purge(&db, &policy, later).await.unwrap().total(), 0);
}
