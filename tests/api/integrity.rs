//! Integrity of what the tickets write: the HMAC anchor of the audit chain's head (an
//! insider who rewrites the whole chain in the database, recomputing every hash, which needs
//! no secret, passes the hash chain's own check but not the anchor's, whose key the database
//! does not hold), and durable SQLite commits (`synchronous = FULL`).

use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use concierge::store::Db;
use concierge::tickets::anchor::{self, AnchorCheck, AnchorKey};

use crate::helpers::*;

const SECRET: &str = "anchor-secret-for-tests";

on_both_engines!(every_event_seals_the_head_and_a_rewritten_chain_breaks_the_seal);

fn key() -> AnchorKey {
    AnchorKey::new(SecretString::from(SECRET.to_string())).unwrap()
}

/// Opens a ticket and claims it: two events, two links.
async fn two_events(app: &TestApp) {
    let tickets = app.state.tickets.clone();
    let t = tickets
        .open(
            "card_reissue",
            "B001",
            None,
            None,
            None,
            serde_json::json!({}),
            &[],
            "test",
        )
        .await
        .unwrap();
    tickets.claim(&t.id, "chen").await.unwrap();
}

/// What an insider with write access does: changes who did what, then recomputes every
/// link and the head the way the application does (`SHA-256` of the canonical JSON).
async fn rewrite_history(db: &Db) {
    let rows = sqlx::query(
        "SELECT ticket_id, seq, event_id, kind, from_state, to_state, actor, at, comment, \
         data_json, chain_seq FROM ticket_events ORDER BY chain_seq",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut prev = "0".repeat(64);
    for r in &rows {
        let data: Value = serde_json::from_str(&r.get::<String, _>("data_json")).unwrap();
        let chain_seq: i64 = r.get("chain_seq");
        let canonical = serde_json::json!([
            prev,
            r.get::<String, _>("ticket_id"),
            r.get::<i64, _>("seq"),
            r.get::<String, _>("event_id"),
            r.get::<String, _>("kind"),
            r.get::<Option<String>, _>("from_state"),
            r.get::<Option<String>, _>("to_state"),
            "mallory",
            r.get::<i64, _>("at"),
            r.get::<String, _>("comment"),
            data,
            chain_seq
        ]);
        let hash = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));
        sqlx::query(
            "UPDATE ticket_events SET actor = 'mallory', prev_hash = $1, hash = $2 \
             WHERE chain_seq = $3",
        )
        .bind(&prev)
        .bind(&hash)
        .bind(chain_seq)
        .execute(&db.pool)
        .await
        .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&db.pool)
        .await
        .unwrap();
}

async fn every_event_seals_the_head_and_a_rewritten_chain_breaks_the_seal(engine: Engine) {
    let app = spawn_app_with(engine, |s| {
        s.audit.anchor_secret = SecretString::from(SECRET.to_string());
    })
    .await;
    let db = app.state.db.clone();
    assert_eq!(
        anchor::check(&db, &key()).await.unwrap(),
        AnchorCheck::Empty
    );
    two_events(&app).await;
    let AnchorCheck::Sealed { count, .. } = anchor::check(&db, &key()).await.unwrap() else {
        panic!("every event seals the head")
    };
    assert_eq!(count, 2);

    rewrite_history(&db).await;
    // The hash chain alone is fooled...
    let (links, broken) = concierge::tickets::verify_chain(&db).await.unwrap();
    assert_eq!((links, broken), (2, None), "the rewrite is self-consistent");
    // ...the anchor is not.
    assert_eq!(
        anchor::check(&db, &key()).await.unwrap(),
        AnchorCheck::Mismatch { count: 2 }
    );
    // Removing the anchor does not help either.
    sqlx::query("UPDATE audit_head SET anchor = NULL WHERE id = 1")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        anchor::check(&db, &key()).await.unwrap(),
        AnchorCheck::Missing { count: 2 }
    );
    // An operator who vouches for the chain seals it again (e.g. after a key change).
    assert_eq!(anchor::seal_head(&db, &key()).await.unwrap(), 2);
    assert!(matches!(
        anchor::check(&db, &key()).await.unwrap(),
        AnchorCheck::Sealed { count: 2, .. }
    ));
    app.stop().await;
}

#[tokio::test]
async fn audit_verify_checks_the_anchor_with_the_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let app = spawn_on(&url, &project_root(), |s| {
        s.audit.anchor_secret = SecretString::from(SECRET.to_string());
    })
    .await;
    two_events(&app).await;
    app.stop().await;
    let db = Db::connect(&SecretString::from(url.clone()), 1)
        .await
        .unwrap();

    let run = |secret: Option<&str>, command: &str| {
        let mut c = concierge();
        c.args(["audit", command, "--database-url", &url]);
        match secret {
            Some(s) => c.env("CONCIERGE__AUDIT__ANCHOR_SECRET", s),
            None => c.env_remove("CONCIERGE__AUDIT__ANCHOR_SECRET"),
        };
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = run(Some(SECRET), "verify");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the anchor seals the head: link 2"), "{text}");

    rewrite_history(&db).await;
    let (code, text) = run(None, "verify");
    assert_eq!(
        code,
        Some(0),
        "without the secret only the chain is walked: {text}"
    );
    assert!(text.contains("not checked"), "{text}");
    let (code, text) = run(Some(SECRET), "verify");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does not match the head (link 2)"), "{text}");
    let (code, text) = run(Some("another secret"), "anchor");
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(Some(SECRET), "verify");
    assert_eq!(code, Some(1), "sealed with another secret: {text}");
    let (code, _) = run(None, "anchor");
    assert_eq!(code, Some(2), "anchor needs the secret");
}

/// Every connection of the application's SQLite pool commits durably: `synchronous = FULL`
/// (2), in WAL mode. With NORMAL a power cut could lose committed ticket events that a
/// webhook had already delivered.
#[tokio::test]
async fn every_sqlite_connection_commits_durably() {
    let app = spawn_app().await;
    let pool = app.state.db.pool.clone();
    // Every connection of the pool held at once: each one opened (and set up) separately.
    let mut held = Vec::new();
    for _ in 0..app.state.settings.database.max_connections.min(4) {
        held.push(pool.acquire().await.unwrap());
    }
    for conn in &mut held {
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!((sync, journal.as_str()), (2, "wal"), "2 = FULL");
    }
    drop(held);
    app.stop().await;
}

/// Not a check: what `synchronous = FULL` (the setting) costs a ticket write against NORMAL
/// on this machine's disk, for docs/benchmarks.md. Run it alone:
/// `cargo test -j2 --test api integrity::ticket_write_cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement for docs/benchmarks.md (prints, asserts nothing); run it alone"]
async fn ticket_write_cost_full_against_normal() {
    let app = spawn_app().await;
    let pool = app.state.db.pool.clone();
    let connections = app.state.settings.database.max_connections;
    for mode in ["FULL", "NORMAL", "FULL", "NORMAL"] {
        // Every connection of the pool held at once, so each gets the setting.
        let mut held = Vec::new();
        for _ in 0..connections {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query(&format!("PRAGMA synchronous = {mode}"))
                .execute(&mut *conn)
                .await
                .unwrap();
            held.push(conn);
        }
        drop(held);
        let mut ms = Vec::new();
        for _ in 0..200 {
            let started = std::time::Instant::now();
            two_events(&app).await;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        println!(
            "synchronous={mode}: ticket open + claim (2 write transactions): mean {mean:.2} ms, \
             p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            ms[100], ms[190], ms[198]
        );
    }
    app.stop().await;
}
