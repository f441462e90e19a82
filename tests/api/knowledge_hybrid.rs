//! Hybrid knowledge retrieval through the real app: a publish stores the article's passage
//! vectors, a restart loads them instead of embedding again, and staff see BM25, dense and
//! fused scores. These run with whatever embedder the app is built with (none: BM25 only,
//! exactly as before); the storage round trip runs on both engines with a small
//! deterministic embedder of its own (the model itself is tested where it lives).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use concierge::embedding::{normalize, EmbedError, Embedder, Kind};
use concierge::knowledge::{Decision, Knowledge};
use concierge::store::Db;
use futures_util::future::BoxFuture;
use secrecy::SecretString;

use crate::helpers::{fresh_database, project_root, spawn_on, Engine};
use crate::knowledge::{call, publish, water_article};

on_both_engines!(
    a_publish_stores_vectors_and_a_restart_loads_them,
    vectors_round_trip_through_the_database,
);

async fn stored_vectors(db: &Db, article: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM kb_vectors WHERE article_id = $1")
        .bind(article)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn a_publish_stores_vectors_and_a_restart_loads_them(engine: Engine) {
    let (url, _dir) = fresh_database(engine).await;
    let app = spawn_on(&url, &project_root(), |_| {}).await;
    let kb = app.state.knowledge.clone();
    kb.embedded().await;
    let editor = app.staff("li", "content_editor").await;
    let reviewer = app.staff("wang", "content_reviewer").await;
    publish(&app, &editor, &reviewer, water_article()).await;
    let status = kb.embedding_status();
    let stored = stored_vectors(&app.state.db, "lobby-water").await;
    let (_, r) = call(
        &app,
        "GET",
        "/v1/knowledge/hit-test?q=饮水机在哪",
        &editor,
        None,
    )
    .await;
    let hit = &r["hits"][0];
    assert_eq!(hit["id"], "lobby-water", "{r}");
    assert!(
        hit["bm25"].as_f64().unwrap() > 0.0 && hit["fused"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert_eq!(r["kiosk"]["does"], "answer", "{r}");
    match &app.state.embedder {
        // Embedded before the approval returned: title, summary, 2 questions, 2 paragraphs.
        Some(_) => {
            assert_eq!(stored, 6);
            assert!(hit["dense"].as_f64().unwrap() > 0.0, "{r}");
            assert!(
                status.complete() && status.done == status.total,
                "{status:?}"
            );
        }
        None => {
            assert_eq!(stored, 0);
            assert!(hit["dense"].is_null(), "{r}");
            assert_eq!((status.model, status.total), (None, 0));
        }
    }
    let total = status.total;
    app.stop().await;

    // A restart reads the vectors back; nothing is embedded again.
    let again = spawn_on(&url, &project_root(), |_| {}).await;
    let kb = again.state.knowledge.clone();
    let status = kb.embedding_status();
    assert_eq!(status.done, total, "{status:?}");
    assert_eq!((status.loaded, status.embedded), (total, 0), "{status:?}");
    again.stop().await;
}

/// Hashed characters and character pairs (tests only).
struct PairEmbedder {
    model: String,
    texts: AtomicUsize,
}

impl Embedder for PairEmbedder {
    fn model_id(&self) -> &str {
        &self.model
    }
    fn dim(&self) -> usize {
        32
    }
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _kind: Kind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        let vectors = texts
            .iter()
            .map(|t| {
                let chars: Vec<char> = t.chars().collect();
                let mut v = vec![0f32; 32];
                for w in chars.windows(2).chain(chars.chunks(1)) {
                    let h = w.iter().fold(7u32, |h, c| h.wrapping_mul(31) ^ *c as u32);
                    v[(h % 32) as usize] += 1.0;
                }
                normalize(&mut v);
                v
            })
            .collect();
        Box::pin(async move { Ok(vectors) })
    }
}

async fn open(url: &str, model: &str) -> (Arc<Knowledge>, Arc<PairEmbedder>) {
    let db = Db::connect(&SecretString::from(url.to_string()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let embedder = Arc::new(PairEmbedder {
        model: model.into(),
        texts: AtomicUsize::new(0),
    });
    let mut settings = concierge::config::Settings::for_tests(url, &project_root()).knowledge;
    settings.seed_when_empty = false;
    let e: Arc<dyn Embedder> = embedder.clone();
    let kb = Knowledge::open(db, settings, Path::new("/nonexistent"), Some(e))
        .await
        .unwrap();
    (kb, embedder)
}

async fn vectors_round_trip_through_the_database(engine: Engine) {
    let (url, _dir) = fresh_database(engine).await;
    let (kb, first) = open(&url, "pairs@1").await;
    let draft: concierge::knowledge::model::ArticleDraft =
        serde_json::from_value(serde_json::json!({
            "title": "大堂饮水机的位置", "audience": "customer",
            "questions": ["饮水机在哪"],
            "body": "饮水机在大堂东侧休息区。\n\n纸杯在旁边的柜子里。"
        }))
        .unwrap();
    let saved = kb.save("li", "lobby-water", None, draft).await.unwrap();
    kb.submit("li", "lobby-water", saved.version, "")
        .await
        .unwrap();
    kb.approve(
        "wang",
        &[concierge::access::Role::ContentReviewer],
        "lobby-water",
        saved.version,
        None,
        &Decision::default(),
    )
    .await
    .unwrap();
    assert_eq!(first.texts.load(Ordering::SeqCst), 4);
    assert_eq!(kb.embedding_status().done, 4);

    // The same model again: read back, not embedded; the vectors score alike.
    let (back, second) = open(&url, "pairs@1").await;
    assert_eq!(second.texts.load(Ordering::SeqCst), 0);
    let s = back.embedding_status();
    assert_eq!((s.done, s.loaded, s.embedded), (4, 4, 0), "{s:?}");
    let ask = |kb: Arc<Knowledge>| async move {
        match kb.answer("饮水机在哪", "B001").await {
            concierge::knowledge::Answer::Found { hit, .. } => hit.dense.unwrap(),
            other => panic!("{other:?}"),
        }
    };
    assert!((ask(kb.clone()).await - ask(back).await).abs() < 1e-6);

    // Another model: its own rows.
    let (other, third) = open(&url, "pairs@2").await;
    other.embedded().await;
    assert_eq!(third.texts.load(Ordering::SeqCst), 4);
    assert_eq!(other.embedding_status().embedded, 4);
}
